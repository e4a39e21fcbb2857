"""A file's text from a ``2a`` repository in pieces, never whole in memory.

breezy gives a text as one string: it reads the text's whole compressed
group from its pack, decompresses the group up to the text's end (keeping it
in a per-repository cache of groups), and copies the text out of it.  For a
20 MB file that is three copies of it and more.  :func:`text_chunks` instead
reads a large text that is stored whole in its group (a *fulltext* record:
how a large new file is stored) straight from the pack file, through the
repository's own transport, decompressing as it goes: it holds one piece of
compressed input and one of output, whatever the file's size.  It checks
the text's length and SHA-1 against the tree's inventory before handing
out its last piece, and never hands out more bytes than the inventory's
size: callers send that size as the answer's ``Content-Length``, so a
text that does not match gives a cut answer, never a whole wrong one.

Texts below :data:`STREAM_FROM` bytes, texts stored as a delta against
other texts of their group, other repository formats, and anything this
module does not recognise are read through breezy's public
``RevisionTree.iter_files_bytes`` and cut into pieces.

breezy private names read (check them on a breezy upgrade):
``GroupCompressVersionedFiles._index`` (its ``get_build_details``) and
``._access`` (``_DirectPackAccess._indices``, the pack file of an index).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from breezy.transport import NoSuchFile

__all__ = ["CHUNK", "STREAM_FROM", "TextCorrupt", "text_chunks"]

#: Texts at least this long are streamed from their pack when they can be.
STREAM_FROM = 1024 * 1024
#: The largest piece handed out, and the compressed bytes read at a time.
CHUNK = 1024 * 1024

_BLOCK_HEADER = b"gcb1z\n"


class TextCorrupt(ValueError):
    """A stored text does not match what its inventory says of it."""


def text_chunks(repo, tree, path: str, chunk: int = CHUNK) -> Iterator[bytes]:
    """The text of the file at ``path`` in ``tree`` (a revision tree of
    ``repo``, read-locked by the caller) in pieces of at most ``chunk``
    bytes; never more bytes than the inventory's size (:class:`TextCorrupt`
    instead)."""
    size = tree.get_file_size(path)
    sha1 = tree.get_file_sha1(path)
    if size is not None and size >= STREAM_FROM:
        opened = _open_fulltext(repo, tree, path, size)
        if opened is not None:
            return _stream(*opened, size, sha1, path, chunk)
    return _via_breezy(tree, path, chunk, size, sha1)


def _via_breezy(
    tree, path: str, chunk: int, size: int | None, sha1: bytes | str | None
) -> Iterator[bytes]:
    """breezy's text, cut into pieces: a text below :data:`STREAM_FROM`
    (whole in memory anyway) is checked against its inventory before its
    first piece, a longer one as it ends, and never more than ``size``
    bytes of it are handed out."""
    for _, content in tree.iter_files_bytes([(path, None)]):
        if size is None or size < STREAM_FROM:
            text = b"".join(content)
            _check_digest(hashlib.sha1(text), len(text), size, sha1, path)
            yield from _cut(text, chunk)
            continue
        digest = hashlib.sha1()
        sent = 0
        for piece in content:
            if sent + len(piece) > size:
                raise _corrupt(path)
            digest.update(piece)
            sent += len(piece)
            if sent == size:  # checked before the last piece: see _stream
                _check_digest(digest, sent, size, sha1, path)
            yield from _cut(piece, chunk)
        _check_digest(digest, sent, size, sha1, path)


def _cut(piece: bytes, chunk: int) -> Iterator[bytes]:
    if len(piece) <= chunk:
        yield piece
        return
    view = memoryview(piece)
    for start in range(0, len(piece), chunk):
        yield bytes(view[start : start + chunk])


def _check_digest(digest, sent: int, size: int | None, sha1, path: str) -> None:
    expected = sha1.decode("ascii") if isinstance(sha1, bytes) else sha1
    if (size is not None and sent != size) or (
        expected and digest.hexdigest() != expected
    ):
        raise _corrupt(path)


def _corrupt(path: str) -> TextCorrupt:
    return TextCorrupt(f"{path}: the stored text does not match its inventory")


class _Inflater:
    """The decompressed bytes of one group, read from ``pack`` in pieces."""

    def __init__(self, pack: BinaryIO, remaining: int, chunk: int) -> None:
        self.pack = pack
        self.remaining = remaining  # compressed bytes not read yet
        self.chunk = chunk
        self.zlib = zlib.decompressobj()
        self.pending = b""  # decompressed, not handed out

    def read(self, n: int) -> bytes:
        """At most ``n`` (<= chunk) bytes; fewer only at the group's end."""
        while len(self.pending) < n and not self.zlib.eof:
            data = self.zlib.unconsumed_tail
            if not data:
                if self.remaining <= 0:
                    break
                data = self.pack.read(min(self.chunk, self.remaining))
                if not data:
                    break
                self.remaining -= len(data)
            self.pending += self.zlib.decompress(data, self.chunk)
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def skip(self, n: int) -> bool:
        """Pass over ``n`` bytes; False when the group is shorter."""
        while n > 0:
            got = self.read(min(n, self.chunk))
            if not got:
                return False
            n -= len(got)
        return True


def _open_fulltext(repo, tree, path: str, size: int):
    """``(pack, inflater)`` positioned at the first byte of the text, or
    None when it is not a fulltext record this module can stream."""
    try:
        texts = repo.texts
        key = (tree.path2id(path), tree.get_file_revision(path))
        details = texts._index.get_build_details([key])
        memo = details[key][0]
        index, start, length, basis_end, delta_end = memo
        transport, name = texts._access._indices[index]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    try:
        pack = transport.get(name)
    except NoSuchFile:  # a pack retired since: breezy's path reloads
        return None
    try:
        inflater = _seek_text(pack, start, length, basis_end, delta_end, size)
    except Exception:
        pack.close()
        raise
    if inflater is None:
        pack.close()
        return None
    return pack, inflater


def _seek_text(pack, start, length, basis_end, delta_end, size):
    if not (hasattr(pack, "seek") and hasattr(pack, "read")):
        return None
    pack.seek(start)
    head = pack.read(min(length, 4096))
    # The pack container's record: b"B" LENGTH "\n", name lines, "\n".
    if not head.startswith(b"B"):
        return None
    end = head.find(b"\n\n")
    if end < 0:
        return None
    try:
        body = int(head[1 : head.index(b"\n")])
    except ValueError:
        return None
    first = end + 2
    if first + body != length or not head.startswith(_BLOCK_HEADER, first):
        return None
    pos = first + len(_BLOCK_HEADER)
    lines = head[pos:].split(b"\n", 2)
    if len(lines) < 3:
        return None
    try:
        z_length, content_length = int(lines[0]), int(lines[1])
    except ValueError:
        return None
    pos += len(lines[0]) + len(lines[1]) + 2
    if pos + z_length != length or not 0 <= basis_end < delta_end <= content_length:
        return None
    pack.seek(start + pos)
    inflater = _Inflater(pack, z_length, CHUNK)
    if not inflater.skip(basis_end):
        return None
    record = inflater.read(11)
    if record[:1] != b"f":
        return None  # a delta: its source is the group before it
    declared, used = _base128(record[1:])
    if declared != size or basis_end + 1 + used + size != delta_end:
        return None
    inflater.pending = record[1 + used :] + inflater.pending
    return inflater


def _base128(data: bytes) -> tuple[int, int]:
    """The base-128 integer at the start of ``data`` and its length."""
    value = shift = 0
    for used, byte in enumerate(data, 1):
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, used
        shift += 7
    return -1, 0


def _stream(
    pack,
    inflater: _Inflater,
    size: int,
    sha1: bytes | str | None,
    path: str,
    chunk: int,
) -> Iterator[bytes]:
    digest = hashlib.sha1()
    sent = 0
    try:
        while sent < size:
            piece = inflater.read(min(chunk, size - sent))
            if not piece:
                break
            digest.update(piece)
            sent += len(piece)
            if sent == size:
                # checked before the last piece goes out: a text that does
                # not match ends its answer short of its Content-Length
                # (the client sees a cut answer, never wrong bytes whole)
                _check_digest(digest, sent, size, sha1, path)
            yield piece
    finally:
        pack.close()
    _check_digest(digest, sent, size, sha1, path)
