"""Credentials files and Basic authentication for the tests' stores."""

from __future__ import annotations

import base64
import os

from breezy import bedding

from .fixtures import http_request


def basic(user: str, password: str) -> dict[str, str]:
    """An ``Authorization: Basic`` header."""
    raw = f"{user}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def write_authentication_conf(url: str, user: str, password: str) -> str:
    """breezy's ``authentication.conf`` (in the test's own config dir) with
    credentials for the host and port of ``url``; returns its path."""
    host, port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    path = bedding.authentication_config_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(
            f"[janitor-store]\nscheme = http\nhost = {host}\nport = {port}\n"
            f"user = {user}\npassword = {password}\n"
        )
    os.chmod(path, 0o600)
    return path


def record_statuses(app) -> list[int]:
    """Status codes of every response ``app`` (a StoreApp) sends from now on."""
    statuses: list[int] = []
    inner = app._wsgi

    def recording(environ, start_response):
        def start(status, headers, exc_info=None):
            statuses.append(int(status.split()[0]))
            return start_response(status, headers, exc_info)

        return inner(environ, start)

    app._wsgi = recording
    return statuses


def credential_probe(store, location: str, headers: dict) -> int:
    """Status of a (deliberately incomplete) smart request on the public face
    with ``headers``: 401 if the credentials are refused, else 200 (with
    breezy's smart error for an incomplete request)."""
    return http_request(
        f"{store.public}/{location}/.bzr/smart", data=b"bzr", headers=headers
    )[0]
