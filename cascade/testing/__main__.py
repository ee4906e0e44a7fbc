"""``python -m cascade.testing``: serve a :class:`~cascade.testing.FakeOpenAI` until killed.

It prints its base URL first, for a benchmark or a test in another process to point at;
:func:`~cascade.testing.serve_in_subprocess` starts it so.
"""

from cascade.testing.fake_openai import main

main()
