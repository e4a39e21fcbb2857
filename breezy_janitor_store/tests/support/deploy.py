"""The example deploy files (nginx, units) and waiting for a port."""

from __future__ import annotations

import os
import socket

from .fixtures import (
    PROJECT_ROOT,
)

DEPLOY = os.path.join(PROJECT_ROOT, "examples", "deploy")


#: Where the units expect the store's virtualenv.
PREFIX = "/opt/janitor-store/bin/"


NGINX_CONF = os.path.join(DEPLOY, "nginx-janitor-store.conf")


#: Debian's default site, which answers requests no other server names.
DEBIAN_DEFAULT_SITE = "/etc/nginx/sites-available/default"


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
