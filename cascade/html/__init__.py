"""Reports as self-contained HTML pages: ``cascade report --html`` and ``cascade bench --report``.

One ``index.html`` per report, with its charts drawn inline as SVG and nothing to fetch, so it
opens offline from a folder or an artifact store.
"""
