"""The walkthrough's logged traffic and the fake models that answer it."""
