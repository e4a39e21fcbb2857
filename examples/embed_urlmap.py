"""Mount the store inside another WSGI application with ``paste.urlmap``.

The admin face answers under ``/store/`` and the public face under
``/pub/`` (its branches at ``/pub/bzr/...``); everything else goes to the
host application.  Run it with::

    python examples/embed_urlmap.py /srv/bzr 8080
"""

from __future__ import annotations

import sys

from paste.urlmap import URLMap

from breezy_janitor_store import StoreApp


def host_app(environ, start_response):
    """The application the store is embedded in."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the host application\n"]


def make_app(directory: str) -> URLMap:
    """A WSGI stack with both faces of the store mounted in it."""
    mapping = URLMap()
    mapping["/store"] = StoreApp(directory, face="admin")
    mapping["/pub"] = StoreApp(directory, face="public")
    mapping["/"] = host_app
    return mapping


if __name__ == "__main__":
    from paste import httpserver

    httpserver.serve(make_app(sys.argv[1]), host="127.0.0.1", port=sys.argv[2])
