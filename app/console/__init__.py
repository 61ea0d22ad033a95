"""The console at ``/console/``: server-rendered pages for operators (docs/contract.md, section 15).

Pages are Jinja2 templates rendered by the gateway; the only script is htmx 2.0.11 (Zero-Clause BSD, its
licence beside it in ``static/``), served by the gateway itself. Everything works without it: forms post and
redirect as plain HTML.
"""
