"""Paths of the browser's views below the public face's ``/bzr``.

A revision is named by its id in the ``rev`` query parameter (percent
encoded); a path in a tree is the rest of the URL path, percent encoded.
"""

from __future__ import annotations

import urllib.parse

__all__ = ["annotate", "file", "filelog", "quote_path", "raw", "tarball", "tree"]


def quote_path(path: str) -> str:
    """A tree path for a URL path."""
    return urllib.parse.quote(path, safe="/@:+-._~")


def _rev(revid: bytes) -> str:
    # ("+" quoted: the query is read without turning "+" into a space)
    return urllib.parse.quote(revid, safe="@:-._~")


def _view(kind: str, codebase: str, revid: bytes, path: str, query: str = "") -> str:
    return f"/{codebase}/+{kind}/{quote_path(path)}?rev={_rev(revid)}{query}"


def tree(codebase: str, revid: bytes, path: str = "") -> str:
    return _view("tree", codebase, revid, path)


def file(codebase: str, revid: bytes, path: str) -> str:
    return _view("file", codebase, revid, path)


def raw(codebase: str, revid: bytes, path: str) -> str:
    return _view("raw", codebase, revid, path)


def annotate(codebase: str, revid: bytes, path: str) -> str:
    return _view("annotate", codebase, revid, path)


def filelog(codebase: str, revid: bytes, path: str, page: int = 1) -> str:
    return _view("log", codebase, revid, path, f"&page={page}" if page > 1 else "")


def tarball(codebase: str, revid: bytes) -> str:
    return f"/{codebase}/+tarball?rev={_rev(revid)}"
