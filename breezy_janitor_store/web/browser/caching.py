"""HTTP validators of the public face's pages.

Every page built from what it shows has an ``ETag`` derived from it (the
revision ids it shows, the tip, the tags, the page asked for, and a
digest of the code and templates that make pages, so a new release never
serves an old page); a request
whose ``If-None-Match`` holds it is answered ``304`` before the page is
made.  Pages addressed by a revision id (trees, files, raw bytes,
annotations, histories of a file, tarballs, revision pages) cannot change
(a revision, once in a repository, is never rewritten) and are sent with
:data:`IMMUTABLE`, unless they show a ghost (:func:`unsettled`); pages of branches are revalidated (:data:`REVALIDATE`),
so none is stale after a push.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from importlib import resources

from .. import validators
from ..http import Request

__all__ = ["IMMUTABLE", "REVALIDATE", "etag", "not_modified", "unsettled"]

IMMUTABLE = validators.IMMUTABLE
REVALIDATE = validators.REVALIDATE


def _page_code_digest() -> bytes:
    """Digest of what makes pages: the browser's modules, ``browse`` and
    the templates (a release changing any of them changes every ETag)."""
    web = resources.files("breezy_janitor_store.web")
    digest = hashlib.sha256()
    for folder in (web / "browser", web / "templates"):
        for item in sorted(folder.iterdir(), key=lambda i: i.name):
            if item.is_file() and not item.name.endswith(".pyc"):
                digest.update(item.name.encode() + b"\0" + item.read_bytes())
    digest.update((web / "browse.py").read_bytes())
    return digest.digest()


#: Every ETag starts from it.
_CODE = _page_code_digest()


def etag(*parts: object) -> str:
    """A strong validator of ``parts`` (bytes or text)."""
    return validators.seeded_tag(_CODE, *parts)


def not_modified(
    req: Request, tag: str, cache: tuple[str, str] = IMMUTABLE
) -> list[bytes] | None:
    """The ``304`` answer when the client holds ``tag``; else the page from
    :data:`PAGES` if it is there; else None."""
    answer = validators.not_modified(req, tag, cache)
    if answer is not None:
        return answer
    found = PAGES.get(req, tag)
    if found is not None:
        headers, body = found
        req.respond(200, None, headers)
        return [body]
    return None


def unsettled(tag: str) -> tuple[str, tuple[str, str]]:
    """The ETag and caching of a page addressed by revision ids that shows
    a ghost (a revision missing from the repository): it changes once the
    ghost arrives, so it is revalidated, and its ETag is not the one
    checked before the page is made (that would answer 304 after the
    ghost arrived) nor the key it is kept under in :data:`PAGES`."""
    return etag(tag, "unsettled"), REVALIDATE


def headers(tag: str, cache: tuple[str, str] = IMMUTABLE) -> list[tuple[str, str]]:
    """The validator and caching headers of a page (which has a JSON twin:
    its representation depends on ``Accept``)."""
    return [("ETag", tag), cache, ("Vary", "Accept")]


def pairs(items: Iterable[tuple[object, object]]) -> list[object]:
    """``items`` flattened, for :func:`etag`."""
    return [x for item in items for x in item]


class PageCache:
    """Rendered pages by their ``ETag``: at most ``max_bytes`` of bodies in
    all (least recently used out first), none larger than ``max_page``.  A
    page's ETag is derived from all it shows, so a hit is that page (the
    view computes the ETag, having checked the codebase, revision or tip,
    before it asks)."""

    def __init__(
        self, max_bytes: int = 32 * 1024 * 1024, max_page: int = 1024 * 1024
    ) -> None:
        self.max_bytes = max_bytes
        self.max_page = max_page
        self._pages: OrderedDict[tuple, tuple[list[tuple[str, str]], bytes]] = (
            OrderedDict()
        )
        self._size = 0
        self._lock = threading.Lock()

    def get(self, req: Request, tag: str) -> tuple[list[tuple[str, str]], bytes] | None:
        """``(headers, body)`` of the page, or None."""
        key = (req.environ.get("SCRIPT_NAME", ""), tag)
        with self._lock:
            found = self._pages.get(key)
            if found is not None:
                self._pages.move_to_end(key)
            return found

    def put(
        self, req: Request, headers: Iterable[tuple[str, str]], body: bytes
    ) -> None:
        """Keep the page under its ETag (which names all it shows); pages
        are kept per mount point (``SCRIPT_NAME``: their links)."""
        headers = list(headers)
        if len(body) > self.max_page:
            return
        tag = next((v for k, v in headers if k == "ETag"), None)
        if tag is None:
            return
        tag = (req.environ.get("SCRIPT_NAME", ""), tag)
        with self._lock:
            old = self._pages.pop(tag, None)
            if old is not None:
                self._size -= len(old[1])
            self._pages[tag] = (headers, body)
            self._size += len(body)
            while self._size > self.max_bytes:
                _, (_, dropped) = self._pages.popitem(last=False)
                self._size -= len(dropped)


#: The process's cache of immutable pages.
PAGES = PageCache()


class TextCache:
    """Results of a pure function of a text, by a key naming the function's
    other arguments and the text's digest: at most ``max_bytes`` of results
    in all (as ``size`` reckons them; least recently used out first), none
    larger than ``max_item``."""

    def __init__(
        self, max_bytes: int = 16 * 1024 * 1024, max_item: int = 2 * 1024 * 1024
    ) -> None:
        self.max_bytes = max_bytes
        self.max_item = max_item
        self._items: OrderedDict[tuple, tuple[int, tuple]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(name: str, text: str) -> tuple[str, bytes]:
        """The key of ``text`` under ``name``."""
        return name, hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: tuple) -> tuple | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[1]

    def put(self, key: tuple, value: tuple, size: int) -> None:
        if size > self.max_item:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= old[0]
            self._items[key] = (size, value)
            self._size += size
            while self._size > self.max_bytes:
                _, (dropped, _) = self._items.popitem(last=False)
                self._size -= dropped


#: Highlighted lines of the texts shown lately (file views and annotations
#: of the same text share them).
HIGHLIGHTS = TextCache()
