"""Serve a store from a few lines of Python, with the standard library only.

    python examples/minimal_server.py /srv/bzr 8080

then ``brz push bzr+http://localhost:8080/CODEBASE/CAMPAIGN``.
"""

import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from breezy_janitor_store import StoreApp


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # keep the example's output short
        pass


def main(directory: str, port: int = 0) -> None:
    app = StoreApp(directory, campaigns=["lintian-fixes"])  # the admin face
    with make_server("127.0.0.1", port, app, handler_class=QuietHandler) as httpd:
        print(f"http://127.0.0.1:{httpd.server_port}/", flush=True)
        httpd.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
