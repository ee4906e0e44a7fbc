"""Examples that run against this checkout: sample data and the scripts that make it."""
