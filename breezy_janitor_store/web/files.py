"""Plain HTTP reads: the layout directories and the files of ``.bzr``.

A stock breezy client given an ``http://`` URL reads branches as files when
there is no smart server (``nosmart+http://``), and probes directories with
``HEAD`` (``Transport.has``) before it creates anything.  On both faces
(below ``/bzr`` on the public one):

* ``CODEBASE[/CAMPAIGN[/ROLE]]`` with or without a trailing slash is a
  directory: ``200`` while it exists on disk, or implicitly where a writer
  of this face may create it (a codebase the policy lists, such as a row of
  the janitor's database, not on disk yet; without such a list, any
  codebase, to the writer of the request only; a known campaign; a role),
  else ``404`` naming what is unknown (``401`` to an anonymous ``HEAD``
  where only a writer would see it, see :func:`_codebase_root`).  The public face
  answers with its browse page (an empty one for an implicit directory),
  the admin face with the names it holds, one a line;
* ``CODEBASE[/CAMPAIGN[/ROLE]]/.bzr/PATH`` is read through the codebase's
  jailed, read-only transport (:meth:`Storage.transport`): a file with its
  ``Content-Length`` (byte ranges, as breezy's ``readv`` asks for them, are
  answered ``206``, several as ``multipart/byteranges``), a directory as its
  names, one a line.
"""

from __future__ import annotations

import re
import secrets
import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING

from breezy import errors, urlutils

from ..policy.policies import is_listed
from ..store import layout
from ..store.transport import StoreTransport
from . import browse, validators
from .http import HTTPError, Request

if TYPE_CHECKING:
    from .face import Face

__all__ = [
    "ADMIN_DIRECTORY_PATH",
    "CONTROL_PATH",
    "DIRECTORY_PATH",
    "control_file",
    "directory",
]

_NAME = layout.NAME_RE.pattern.removesuffix(r"\Z")


def _directory_path(not_campaign: str = "") -> str:
    return (
        rf"/(?P<codebase>{_NAME})"
        rf"(?:/{not_campaign}(?P<campaign>{_NAME})(?:/(?P<role>{_NAME}))?)?/?"
    )


#: Route regex (after the face's prefix) of a layout directory.
DIRECTORY_PATH = _directory_path()
#: :data:`DIRECTORY_PATH` on the admin face, where ``CODEBASE/NAME`` of an
#: API endpoint is not a campaign.
ADMIN_DIRECTORY_PATH = _directory_path(
    r"(?!(?:diff|revision-info|remotes|locks)(?:/|\Z))"
)
#: Route regex (after the face's prefix) of a path in a ``.bzr`` directory.
CONTROL_PATH = (
    rf"/(?P<codebase>{_NAME})/(?P<path>(?:{_NAME}/){{0,2}}\.bzr(?:/(?!smart\Z).*)?)"
)
#: Bytes sent at a time from a file.
CHUNK = 64 * 1024
_RANGE_SPEC = re.compile(r"(\d*)-(\d*)")
#: Most byte ranges answered in parts; more get the whole file.
MAX_RANGES = 200
_ACCEPT_RANGES = ("Accept-Ranges", "bytes")
_BINARY = "application/octet-stream"
_TEXT = "text/plain; charset=utf-8"


def _codebase_root(
    face: Face, req: Request, codebase: str, *, directory: bool = False
) -> StoreTransport:
    """The codebase's read-only jail (nothing is created); 404 unless the
    codebase is on disk or, not yet, may be created by a writer.

    A codebase the policy lists (a row of the janitor's database) is
    implicit for anyone on a face with writers.  One a policy admitting any
    name has not on disk is implicit for a writer of this request, and only
    as a ``directory``; an anonymous ``HEAD`` of it, on a face whose writers
    answer a challenge, gets the ``401`` challenge: ``HEAD`` is breezy's
    ``Transport.has``, which ``ensure_base`` asks before creating a
    directory over plain ``http://``, and only a challenge makes breezy send
    the worker's credentials.  An anonymous ``GET`` gets the ``404``.
    """
    policy = face.codebase_policy
    if face.storage.has_repository(codebase):
        if not policy.codebase_exists(codebase):
            raise HTTPError(404, f"no such codebase: {codebase}")
    elif is_listed(policy, codebase):
        if not face.may_create(req.environ):
            raise HTTPError(404, f"no such codebase: {codebase}")
    elif not (directory and policy.codebase_exists(codebase)):
        raise HTTPError(404, f"no such codebase: {codebase}")
    elif not face.may_write(req.environ):
        if req.method == "HEAD" and face.realm is not None:
            raise HTTPError(
                401,
                f"authentication required to create codebase: {codebase}",
                face.challenge(),
            )
        raise HTTPError(404, f"no such codebase: {codebase}")
    return face.storage.transport(
        codebase, writable=False, is_campaign=face.is_campaign
    )


def directory(
    face: Face,
    req: Request,
    codebase: str,
    campaign: str | None = None,
    role: str | None = None,
) -> list[bytes]:
    """A codebase, campaign or role directory."""
    # (the names' length included: the route patterns do not bound it)
    face.names(codebase, campaign, role)
    root = _codebase_root(face, req, codebase, directory=True)
    face.admit_campaign(campaign)
    segments = layout.branch_segments(campaign, role) if campaign else ()
    where = root.clone(_escaped(segments))
    on_disk = _exists(where, layout.CONTROL)
    # Campaign and role directories are implicit where a writer may create
    # them (as the writable transport sees them).
    implicit = not segments or face.may_create(req.environ)
    if not (on_disk or implicit or _exists(where, ".")):
        raise HTTPError(404, f"no such branch: {'/'.join((codebase, *segments))}")
    if face.is_public:
        if on_disk and not segments:
            return browse.codebase_page(face, req, codebase)
        if on_disk:
            return browse.branch_page(face, req, codebase, campaign, role)
        return browse.empty_directory_page(face, req, codebase, segments)
    # (a directory of a codebase without repository holds nothing of it)
    listed = face.storage.has_repository(codebase) and _exists(where, ".")
    return _text(req, _names(where) if listed else [])


def control_file(face: Face, req: Request, codebase: str, path: str) -> list[bytes]:
    """A file or directory in a ``.bzr`` directory, read-only."""
    parts = tuple(path.split("/"))
    if any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        raise HTTPError(404, f"no such file: {path}")
    parts = tuple(p for p in parts if p)
    control = parts.index(layout.CONTROL)
    face.names(codebase, *parts[:control])
    face.admit_campaign(parts[0] if control > 0 else None)
    root = _codebase_root(face, req, codebase)
    relpath = _escaped(parts)
    try:
        status = root.stat(relpath)
        if not _is_file(status):
            return _text(req, _names(root.clone(relpath)))
        etag = validators.file_tag(status)
        cache = validators.IMMUTABLE if _named_by_content(parts) else validators.REVALIDATE
        cached = validators.not_modified(req, etag, cache)
        if cached is not None:
            return cached
        size = status.st_size
        ranges = _ranges(req.environ.get("HTTP_RANGE", ""), size)
        f = root.get(relpath)
    except (errors.PathError, errors.TransportError):
        # TransportError: no such name on this filesystem (too long, say)
        raise HTTPError(404, f"no such file: {codebase}/{path}") from None
    common = [_ACCEPT_RANGES, ("ETag", etag), cache]
    if ranges is None:
        req.respond(200, _BINARY, [("Content-Length", str(size)), *common])
        return _FileBody(f, [(b"", 0, size)])
    if len(ranges) == 1:
        [(start, end)] = ranges
        req.respond(
            206,
            _BINARY,
            [
                ("Content-Length", str(end - start)),
                ("Content-Range", f"bytes {start}-{end - 1}/{size}"),
                *common,
            ],
        )
        return _FileBody(f, [(b"", start, end)])
    # several ranges: multipart/byteranges (RFC 9110, 14.6)
    boundary = secrets.token_hex(16)
    pieces = [
        (
            (
                f"\r\n--{boundary}\r\nContent-Type: {_BINARY}\r\n"
                f"Content-Range: bytes {start}-{end - 1}/{size}\r\n\r\n"
            ).encode("ascii"),
            start,
            end,
        )
        for start, end in ranges
    ]
    pieces.append((f"\r\n--{boundary}--\r\n".encode("ascii"), 0, 0))
    length = sum(len(head) + end - start for head, start, end in pieces)
    req.respond(
        206,
        f"multipart/byteranges; boundary={boundary}",
        [("Content-Length", str(length)), *common],
    )
    return _FileBody(f, pieces)


class _FileBody:
    """Parts of an open file, each ``(head, start, end)``: the bytes ``head``
    then the file's bytes ``start:end``, in chunks; closes the file."""

    def __init__(self, f, parts: list[tuple[bytes, int, int]]) -> None:
        self._file, self._parts = f, parts

    def __iter__(self) -> Iterator[bytes]:
        for head, start, end in self._parts:
            if head:
                yield head
            self._file.seek(start)
            left = end - start
            while left > 0:
                chunk = self._file.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"file shorter than {end} bytes")
                left -= len(chunk)
                yield chunk

    def close(self) -> None:
        self._file.close()


def _ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges ``[start, end)`` a ``Range`` header asks for; ``None``
    for the whole file: no header, one this does not understand, more than
    :data:`MAX_RANGES` ranges or more bytes than the file has (overlaps).

    :raises HTTPError: 416 when none of them lies within the file.
    """
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip():
        return None
    ranges = []
    for spec in specs.split(","):
        m = _RANGE_SPEC.fullmatch(spec.strip())
        if m is None:
            return None
        first, last = (_number(g) for g in m.groups())
        if first:
            start = int(first)
            end = min(int(last) + 1, size) if last else size
        elif last:
            start, end = max(size - int(last), 0), size
        else:
            return None
        if start < end:
            ranges.append((start, end))
    if not ranges:
        raise HTTPError(
            416,
            f"no range within the file of {size} bytes",
            [("Content-Range", f"bytes */{size}")],
        )
    if len(ranges) > MAX_RANGES or sum(e - s for s, e in ranges) > size:
        return None  # overlapping or too many: never more than the file
    return ranges


#: Digits of a range's number read as written; a longer one is past any file.
_RANGE_DIGITS = 18


def _number(digits: str) -> str:
    """``digits`` as written, or a number past any file for more digits than
    :data:`_RANGE_DIGITS` (never a conversion of thousands of digits)."""
    if digits:
        digits = digits.lstrip("0") or "0"
    return digits if len(digits) <= _RANGE_DIGITS else "9" * (_RANGE_DIGITS + 1)


def _escaped(segments: tuple[str, ...]) -> str:
    return "/".join(urlutils.escape(s) for s in segments) or "."


def _exists(t: StoreTransport, relpath: str) -> bool:
    try:
        return bool(t.has(relpath))
    except (errors.PathError, errors.TransportError):
        return False


def _is_file(st) -> bool:
    return not stat.S_ISDIR(st.st_mode)


def _names(t: StoreTransport) -> list[str]:
    """Names in the directory of ``t``, directories with a trailing slash."""
    try:
        entries = sorted(urlutils.unescape(e) for e in t.list_dir("."))
    except (errors.PathError, errors.TransportError):
        return []
    names = []
    for name in entries:
        try:
            is_dir = not _is_file(t.stat(urlutils.escape(name)))
        except (errors.PathError, errors.TransportError):
            continue
        names.append(name + "/" if is_dir else name)
    return names


def _text(req: Request, names: list[str]) -> list[bytes]:
    body = "".join(n + "\n" for n in names).encode("utf-8")
    return validators.buffered(req, _TEXT, body)


def _named_by_content(parts: tuple[str, ...]) -> bool:
    """Whether ``parts`` names a pack or index of a repository: breezy names
    them by their content's digest, so such a file never changes."""
    return (
        len(parts) >= 4
        and parts[-4:-2] == (layout.CONTROL, "repository")
        and parts[-2] in ("packs", "indices")
    )
