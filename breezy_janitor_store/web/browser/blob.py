"""One file of a revision: highlighted, and as its exact bytes.

``GET /bzr/CODEBASE/+file/PATH?rev=REVID`` shows a text file highlighted
with Pygments, each line numbered with an anchor ``#LN``; only its first
:data:`VIEW_BYTES` bytes (and :data:`VIEW_LINES` lines) are read from the
repository's stream and shown, with a note when the file is longer.  A
file with a NUL byte in its first :data:`SNIFF_BYTES` is binary: the page
offers it as a download.

``GET /bzr/CODEBASE/+raw/PATH?rev=REVID`` sends the file's bytes as the
repository holds them, read in pieces (:mod:`...store.textstream`): ``text/plain`` (inline) for text, else
``application/octet-stream`` (as an attachment), never a type a browser
would run.  Files over :data:`HEAVY_BYTES` take a slot of the stream
budget while they are read.
"""

from __future__ import annotations

import posixpath
import re
import sys
import urllib.parse
from typing import TYPE_CHECKING

from pygments.lexers import get_lexer_for_filename
from pygments.lexers.special import TextLexer
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

from ...store import history, textstream
from ..http import HTTPError, Request
from . import caching, common, render, urls

if TYPE_CHECKING:
    from ..face import Face

__all__ = [
    "HEAVY_BYTES",
    "SNIFF_BYTES",
    "VIEW_BYTES",
    "VIEW_LINES",
    "file_view",
    "highlight",
    "raw_file",
]

#: Bytes of a file read and shown on its page.
VIEW_BYTES = 256 * 1024
#: Lines of a file shown on its page.
VIEW_LINES = 5000
#: Bytes looked at for a NUL (binary file).
SNIFF_BYTES = 8192
#: Files larger than this take a slot of the stream budget to be read.
HEAVY_BYTES = 1024 * 1024
#: Response headers of raw bytes: nothing in them runs, nothing is sniffed.
RAW_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; sandbox"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
]


def open_file(face: Face, req: Request, codebase: str, path: str | None):
    """``(repository, tree, path, size)`` of the file a request names;
    the repository is left read-locked (the caller unlocks it)."""
    repo = common.repository(face, codebase)
    revid = common.revision_arg(req)
    path = common.tree_path(req, path)
    repo.lock_read()
    try:
        tree = common.revision_tree(repo, revid)
        kind = common.kind(tree, path)
        if kind != "file":
            raise HTTPError(404, f"not a file: {path}")
        size = tree.get_file_size(path)
    except BaseException:
        repo.unlock()
        raise
    return repo, tree, path, revid, size


def read_prefix(repo, tree, path: str, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of the file, and whether there are more;
    the rest of its text is not read."""
    chunks, size = [], 0
    stream = textstream.text_chunks(repo, tree, path)
    try:
        for chunk in stream:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    finally:
        stream.close()
    data = b"".join(chunks)
    return data[:limit], len(data) > limit


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:SNIFF_BYTES]


def _css_class(ttype) -> str:
    while ttype not in STANDARD_TYPES:
        ttype = ttype.parent
    return STANDARD_TYPES[ttype]


def highlight(name: str, text: str) -> list[render.Markup]:
    """``text`` as highlighted lines of markup (Pygments' lexer for the
    file name, else plain text), kept in :data:`.caching.HIGHLIGHTS`."""
    key = caching.HIGHLIGHTS.key(name, text)
    found = caching.HIGHLIGHTS.get(key)
    if found is None:
        found = tuple(_highlight(name, text))
        size = sum(sys.getsizeof(line) + 8 for line in found)
        caching.HIGHLIGHTS.put(key, found, size)
    return list(found)


def _highlight(name: str, text: str) -> list[render.Markup]:
    try:
        lexer = get_lexer_for_filename(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    lines: list[list[str]] = [[]]
    for ttype, value in lexer.get_tokens(text):
        cls = _css_class(ttype)
        for i, part in enumerate(value.split("\n")):
            if i:
                lines.append([])
            if part:
                shown = render.esc(part)
                lines[-1].append(
                    f'<span class="{cls}">{shown}</span>' if cls else shown
                )
    if len(lines) > 1 and not lines[-1]:
        lines.pop()
    return [render.markup("".join(line)) for line in lines]


def file_view(
    face: Face, req: Request, codebase: str, path: str | None = None
) -> list[bytes]:
    repo, tree, path, revid, size = open_file(face, req, codebase, path)
    as_json = common.wants_json(req)
    tag = caching.etag(
        "file", codebase, revid, path, as_json, *common.scope(face, repo)
    )
    cached = caching.not_modified(req, tag)
    if cached is not None:
        repo.unlock()
        return cached
    try:
        slot = common.heavy_slot(face) if size and size > HEAVY_BYTES else None
        try:
            data, more = read_prefix(repo, tree, path, VIEW_BYTES)
            last_changed = tree.get_file_revision(path)
        finally:
            if slot is not None:
                slot.release()
    finally:
        repo.unlock()
    binary = is_binary(data)
    lines: list[render.Markup] = []
    if not binary:
        text = data.decode("utf-8", "replace")
        if more:  # the last line may be cut anywhere: leave it out
            text = text.rsplit("\n", 1)[0] + "\n" if "\n" in text else text
        head = text.split("\n", VIEW_LINES)
        if len(head) > VIEW_LINES:
            more = True
            text = "\n".join(head[:VIEW_LINES]) + "\n"
        if as_json:
            return _file_json(req, tag, codebase, revid, path, size, False, more, text)
        lines = highlight(posixpath.basename(path), text)
    elif as_json:
        return _file_json(req, tag, codebase, revid, path, size, True, more, "")
    b = common.base(face, req)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    body = render.render(
        "file.html",
        title=f"{codebase}: {path}",
        crumbs=common.crumbs(
            face, req, codebase, ("files", b + urls.tree(codebase, revid)), (path, None)
        ),
        highlight=not binary,
        base=b,
        codebase=codebase,
        revid=revid,
        path=path,
        size=size,
        binary=binary,
        lines=lines,
        cut=more,
        last_changed=last_changed,
        directory_href=b + urls.tree(codebase, revid, parent),
        raw_href=b + urls.raw(codebase, revid, path),
        annotate_href=b + urls.annotate(codebase, revid, path),
        history_href=b + urls.filelog(codebase, revid, path),
        revision_href=b + history.revision_path(codebase, revid),
    )
    return render.respond(req, body, headers=caching.headers(tag))


def _file_json(
    req: Request,
    tag: str,
    codebase: str,
    revid: bytes,
    path: str,
    size: int | None,
    binary: bool,
    cut: bool,
    text: str,
) -> list[bytes]:
    """The file page's JSON twin: what the page says of the file, and the
    lines it shows as text (none for a binary file)."""
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    value = {
        "codebase": codebase,
        "revision": common.revid_text(revid),
        "path": path,
        "size": size,
        "binary": binary,
        "cut": cut,
        "lines": lines,
    }
    return common.json_response(req, value, caching.headers(tag))


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]")


def content_disposition(kind: str, name: str) -> str:
    """``Content-Disposition`` of a download named ``name`` (an ASCII
    fallback and the UTF-8 name, RFC 6266)."""
    fallback = _SAFE_NAME.sub("_", name) or "download"
    quoted = urllib.parse.quote(name, safe="")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


def raw_file(
    face: Face, req: Request, codebase: str, path: str | None = None
) -> common.Released:
    repo, tree, path, revid, size = open_file(face, req, codebase, path)
    tag = caching.etag("raw", codebase, revid, path, *common.scope(face, repo))
    cached = caching.not_modified(req, tag)
    if cached is not None:
        repo.unlock()
        return cached
    slot = None
    try:
        slot = common.heavy_slot(face) if size and size > HEAVY_BYTES else None
        head, _ = read_prefix(repo, tree, path, SNIFF_BYTES)
    except BaseException:
        if slot is not None:
            slot.release()
        repo.unlock()
        raise
    binary = is_binary(head)
    kind = "application/octet-stream" if binary else "text/plain; charset=utf-8"
    name = posixpath.basename(path)
    req.respond(
        200,
        kind,
        [
            ("Content-Length", str(size)),
            (
                "Content-Disposition",
                content_disposition("attachment" if binary else "inline", name),
            ),
            *RAW_HEADERS,
            *caching.headers(tag),
        ],
    )

    def release() -> None:
        try:
            if slot is not None:
                slot.release()
        finally:
            repo.unlock()

    return common.Released(textstream.text_chunks(repo, tree, path), release)
