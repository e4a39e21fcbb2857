"""Client paths as segments and back, kept for the paths asked again and again.

A :class:`~.transport.StoreTransport` turns every relative path a client
sends into virtual segments below its codebase (:func:`resolve`) and every
on-disk path into a URL-escaped relative path (:func:`join`).  breezy asks
for the same few paths many times per request, so results are kept in
bounded memos; long (hostile, say) arguments are computed, never kept.
"""

from __future__ import annotations

import functools

from breezy import errors, urlutils

__all__ = [
    "MEMO_LIMIT",
    "MEMO_SIZE",
    "directory_url",
    "display",
    "join",
    "join_kept",
    "join_path",
    "resolve",
    "resolve_kept",
    "resolve_path",
]


def resolve(base: tuple[str, ...], relpath: str) -> tuple[str, ...]:
    """Virtual segments of ``relpath`` (URL-escaped) from ``base``: ``..``
    stops at the root, absolute paths start there.

    :raises errors.PermissionDenied: a segment that escapes its place.
    """
    try:
        return resolve_kept(base, relpath)
    except Unkept as e:
        return e.value


#: Longest arguments (in characters) a path function's results are kept
#: for, and how many results each keeps: breezy asks for the same few paths
#: again and again; long (hostile, say) ones are computed, not kept.
MEMO_LIMIT = 512
MEMO_SIZE = 4096

escape_kept = functools.lru_cache(maxsize=MEMO_SIZE)(urlutils.escape)


class Unkept(Exception):
    """Carries a result with too long arguments out of its memo, unkept
    (``lru_cache`` keeps every value returned, no exception raised)."""

    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value


def join(segments: tuple[str, ...]) -> str:
    """URL-escaped relative path of ``segments``."""
    try:
        return join_kept(segments)
    except Unkept as e:
        return e.value


def resolve_path(base: tuple[str, ...], relpath: str) -> tuple[str, ...]:
    segments = [] if relpath.startswith("/") else list(base)
    for part in relpath.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if segments:
                segments.pop()
            continue
        try:
            name = urlutils.unescape(part)
        except (urlutils.InvalidURL, UnicodeError) as e:
            raise errors.PermissionDenied(display(segments), "invalid path") from e
        if name in (".", "..") or "/" in name or "\x00" in name:
            raise errors.PermissionDenied(
                display(segments), "path escapes are not allowed"
            )
        segments.append(name)
    return tuple(segments)


def join_path(segments: tuple[str, ...]) -> str:
    return "/".join(map(escape_kept, segments)) or "."


@functools.lru_cache(maxsize=MEMO_SIZE)
def resolve_kept(base: tuple[str, ...], relpath: str) -> tuple[str, ...]:
    """:func:`resolve_path`, kept unless its arguments are long (the length
    is counted on a miss only: a hit costs one lookup)."""
    segments = resolve_path(base, relpath)
    if len(relpath) + sum(map(len, base)) > MEMO_LIMIT:
        raise Unkept(segments)
    return segments


@functools.lru_cache(maxsize=MEMO_SIZE)
def join_kept(segments: tuple[str, ...]) -> str:
    """:func:`join_path`, kept unless ``segments`` are long."""
    joined = join_path(segments)
    if sum(map(len, segments)) > MEMO_LIMIT:
        raise Unkept(joined)
    return joined


def directory_url(segments: tuple[str, ...]) -> str:
    """:func:`_join` as a directory: with a trailing slash, empty at the root."""
    return join(segments) + "/" if segments else ""


def display(segments) -> str:
    return "".join("/" + s for s in segments) or "/"
