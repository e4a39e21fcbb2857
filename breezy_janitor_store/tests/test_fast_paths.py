"""Shortcuts on the per-request path agree with what they stand for.

* :func:`breezy_janitor_store.web.filters._escapes` finds exactly what the
  path-escape regular expression finds;
* the transport's kept path results (:func:`_resolve_kept`,
  :func:`_join_kept`) are those computed afresh, kept for short arguments
  only.
"""

from __future__ import annotations

import itertools
import unittest

from breezy.transport import get_transport_from_path

from ..store import paths, transport
from ..web import filters

#: Pieces of request paths, hostile ones among them.
PIECES = [
    "",
    "/",
    "//",
    ".",
    "..",
    "...",
    ".bzr",
    "a",
    "smart",
    "%",
    "%2e",
    "%2E",
    "%2f",
    "%5C",
    "%00",
    "%25",
    "\\",
    "\x00",
    "\x1f",
    "\x7f",
    "\n",
    "\u00a0",
    "\u2028",
    "é",
    "?",
]


def _paths(length: int):
    for parts in itertools.product(PIECES, repeat=length):
        yield "".join(parts)
        yield "/" + "/".join(parts)


class EscapesTests(unittest.TestCase):
    def test_same_as_the_regular_expression(self) -> None:
        differ = [
            path
            for length in (1, 2, 3)
            for path in _paths(length)
            if filters._escapes(path) != (filters._PATH_ESCAPE.search(path) is not None)
        ]
        self.assertEqual(differ, [])

    def test_store_paths_pass(self) -> None:
        for path in (
            "/cb/lintian-fixes/.bzr/smart",
            "/bzr/cb/lintian-fixes/main/.bzr/branch/last-revision",
            "/cb/.../x",
            "/",
            "",
        ):
            self.assertFalse(filters._escapes(path), path)

    def test_escapes_found(self) -> None:
        for path in ("/cb/../x", "/cb/./x", "..", "/a/..", "/a%2Fb", "/a//b", "/a\x01"):
            self.assertTrue(filters._escapes(path), path)


class KeptPathTests(unittest.TestCase):
    def test_kept_results_are_computed_ones(self) -> None:
        base = ("lintian-fixes", "main")
        for relpath in ("", ".", "..", "../..", "/x", ".bzr/branch", "a%20b", "x/../y"):
            self.assertEqual(
                paths.resolve_kept(base, relpath),
                paths.resolve_path(base, relpath),
            )
        for segments in ((), ("a b", "c"), ("lintian-fixes", ".bzr")):
            self.assertEqual(paths.join(segments), paths.join_path(segments))

    def test_long_arguments_computed_not_kept(self) -> None:
        long = ("d" * (paths.MEMO_LIMIT + 1),)
        paths.join_kept.cache_clear()
        self.assertEqual(paths.join(long), paths.join_path(long))
        self.assertEqual(paths.join_kept.cache_info().currsize, 0)
        paths.resolve_kept.cache_clear()
        t = transport.StoreTransport(_jail(), long)
        self.assertEqual(t._resolve("x"), (*long, "x"))
        self.assertEqual(paths.resolve_kept.cache_info().currsize, 0)


def _jail():
    """A jail for path arithmetic only (nothing on disk is touched)."""
    return transport._Jail(
        get_transport_from_path("/nonexistent/cb"), "cb", False, lambda name: False
    )
