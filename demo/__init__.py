"""The bundled sample site and its loopback HTTP server.

- ``demo.server``: ``SiteServer`` and ``Route``, a small threaded HTTP/1.1 server for
  127.0.0.x that tests reuse.
- ``demo.routes``: ``start_demo_servers()``, the sample site (``demo/site``) plus two
  stand-in outside sites, with every planted problem (see ``demo/PLANTED.md``).
- ``demo.serve``: ``python -m demo.serve`` serves the demo until Ctrl-C.
"""
