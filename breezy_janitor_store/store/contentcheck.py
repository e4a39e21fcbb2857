"""An insert stream is stored only if its content is what its revisions say.

breezy stores what a stream carries under the keys the stream gives, and a
key already stored is kept as it is (the new copy is dropped).  So before a
write group commits (or is suspended), :func:`insert_stream` checks, over
the keys the stream carried:

* every CHK page's key is the SHA-1 of its bytes (checked as it arrives);
* every revision sent equals the stored copy under its id (a revision
  already stored, by another writer, with other content is a *conflict*);
* every revision's ``inventory_sha1`` is the SHA-1 of its stored
  inventory, and an inventory sent equals the stored one; an inventory
  sent without its revision being stored is refused;
* every file text sent is the one its revision's inventory names: the
  inventory of the text's revision has the entry, introduced by that
  revision, with the text's SHA-1 and size (empty for directories and
  symlinks); a text whose revision's inventory is not stored is refused,
  and so is a text sent twice with different content (breezy keeps one
  copy of a key, not necessarily the last).

Everything stored then hangs off a revision whose SHA-1 binds it all: the
revision names its inventory's SHA-1, the inventory names its CHK root
pages by content hash, the pages name each text's SHA-1.  Two copies of a
revision are equal content exactly when their revision texts are equal.

On a refusal the write group is aborted (its upload pack removed): nothing
changes on disk.  Memory: the keys and SHA-1s of the revisions,
inventories and texts the stream carried (no content is held beyond one
record at a time), and one inventory at a time while texts are checked.

The commit itself happens under the codebase's commit lock
(:func:`breezy_janitor_store.store.provenance.commit_lock`), after checking, in a
fresh view of the committed repository, that no other writer committed one
of the same revisions with other content meanwhile (two write groups may
both store a revision new to each).  Then the writer's record of verified
revisions is updated (:mod:`breezy_janitor_store.store.provenance`).

breezy private names used (check them on a breezy upgrade):
``Repository._get_sink``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator

from breezy import errors, osutils
from breezy.bzr.btree_index import BTreeGraphIndex
from breezy.repository import Repository

from . import provenance

__all__ = ["ContentRefused", "StreamWatch", "insert_stream"]

logger = logging.getLogger(__name__)

#: Keys read back from the repository at a time.
BATCH = 200
_EMPTY_SHA1 = osutils.sha_string(b"")
_CHECKED = ("revisions", "inventories", "texts", "chk_bytes")


class ContentRefused(errors.PermissionDenied):
    """An insert refused because its content is not what it claims."""


class StreamWatch:
    """Watches an insert stream go by: SHA-1 and size of each revision,
    inventory and text; CHK pages are checked at once."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.revisions: dict[bytes, bytes] = {}
        self.inventories: dict[bytes, bytes] = {}
        self.texts: dict[tuple[bytes, bytes], tuple[bytes, int]] = {}

    def refuse(self, reason: str) -> ContentRefused:
        return ContentRefused(self.where, reason)

    def wrap(self, stream: Iterable) -> Iterator:
        for kind, substream in stream:
            if kind not in (*_CHECKED, "signatures"):
                raise self.refuse(
                    f"the store takes streams of its own format (2a) only, not "
                    f"{kind!s}; upgrade the local repository (brz upgrade --2a)"
                )
            yield kind, self._records(kind, substream)

    def _records(self, kind: str, records: Iterable) -> Iterator:
        for record in records:
            if kind in _CHECKED and record.storage_kind != "absent":
                chunks = record.get_bytes_as("chunked")
                sha1 = osutils.sha_strings(chunks)
                key = record.key
                if kind == "chk_bytes":
                    if key != (b"sha1:" + sha1,):
                        raise self.refuse(
                            f"CHK page {_shown(key[0])} is not the SHA-1 of its content"
                        )
                elif kind == "revisions":
                    self.revisions[key[0]] = sha1
                elif kind == "inventories":
                    self.inventories[key[0]] = sha1
                else:
                    text = (sha1, sum(map(len, chunks)))
                    if self.texts.setdefault(tuple(key), text) != text:
                        # breezy stores one copy (which depends on how the
                        # stream is cut into groups), this check the last
                        raise self.refuse(
                            f"file text {_shown(key[0])} of {_shown(key[-1])} "
                            "sent twice with different content"
                        )
                del chunks
            yield record


def _shown(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _batches(items: list, size: int = BATCH) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stored_sha1s(versioned_files, ids: Iterable[bytes]) -> dict[bytes, bytes]:
    """SHA-1 of the stored texts of ``ids`` (one-element keys), read back."""
    found: dict[bytes, bytes] = {}
    for batch in _batches([(i,) for i in ids]):
        for record in versioned_files.get_record_stream(batch, "unordered", True):
            if record.storage_kind != "absent":
                found[record.key[0]] = osutils.sha_strings(
                    record.get_bytes_as("chunked")
                )
    return found


def _inventory_sha1s(repo: Repository, ids: Iterable[bytes]) -> dict[bytes, bytes]:
    """The ``inventory_sha1`` the stored revisions ``ids`` name."""
    found: dict[bytes, bytes] = {}
    for batch in _batches(sorted(ids)):
        for revision in repo.iter_revisions(batch):
            revision_id, rev = revision
            if rev is not None:
                found[revision_id] = rev.inventory_sha1
    return found


def verify(repo: Repository, watch: StreamWatch) -> None:
    """Check what ``watch`` saw against what ``repo`` (in its write group)
    now stores; raise :class:`ContentRefused` at the first mismatch."""
    # revisions: the stored copy is the one sent
    stored = _stored_sha1s(repo.revisions, watch.revisions)
    for revision_id, sha1 in watch.revisions.items():
        if stored.get(revision_id) != sha1:
            _conflict(watch, "revision", revision_id)
    # inventories: each names the SHA-1 its revision says
    ids = set(watch.revisions) | set(watch.inventories)
    expected = _inventory_sha1s(repo, ids)
    for revision_id in watch.inventories:
        if revision_id not in expected:
            raise watch.refuse(
                f"the inventory of {_shown(revision_id)} came without its revision"
            )
    stored = _stored_sha1s(repo.inventories, ids)
    for revision_id in ids:
        if stored.get(revision_id) != expected[revision_id]:
            raise watch.refuse(
                f"revision {_shown(revision_id)} does not match its inventory "
                "(inventory_sha1)"
            )
        sent = watch.inventories.get(revision_id)
        if sent is not None and sent != stored[revision_id]:
            _conflict(watch, "inventory", revision_id)
    # texts: each is the one its revision's inventory names
    by_revision: dict[bytes, list[bytes]] = defaultdict(list)
    for file_id, revision_id in watch.texts:
        by_revision[revision_id].append(file_id)
    for batch in _batches(sorted(by_revision)):
        present = repo.inventories.get_parent_map([(r,) for r in batch])
        for revision_id in batch:
            if (revision_id,) not in present:
                raise watch.refuse(
                    f"file texts of {_shown(revision_id)} came without its inventory"
                )
        for inventory in repo.iter_inventories(batch):
            revision_id = inventory.revision_id
            for file_id in by_revision.pop(revision_id):
                sha1, size = watch.texts[(file_id, revision_id)]
                _check_text(watch, inventory, file_id, revision_id, sha1, size)


def _check_text(
    watch: StreamWatch, inventory, file_id: bytes, revision_id: bytes, sha1, size
) -> None:
    try:
        entry = inventory.get_entry(file_id)
    except errors.NoSuchId:
        entry = None
    if entry is None or entry.revision != revision_id:
        raise watch.refuse(
            f"file text {_shown(file_id)} of {_shown(revision_id)} is not one "
            "its inventory introduces"
        )
    if entry.kind == "file":
        expected = (entry.text_sha1, entry.text_size)
    else:
        expected = (_EMPTY_SHA1, 0)
    if (sha1, size) != expected:
        raise watch.refuse(
            f"file text {_shown(file_id)} of {_shown(revision_id)} does not "
            "match its inventory (SHA-1 or size)"
        )


def _conflict(watch: StreamWatch, what: str, revision_id: bytes) -> None:
    writer = provenance.current()
    logger.warning(
        "forged or conflicting %s %s refused from %s in %s",
        what,
        _shown(revision_id),
        writer.shown() if writer is not None else "an unknown writer",
        watch.where,
    )
    raise watch.refuse(
        f"the store already holds {what} {_shown(revision_id)} with other "
        "content (another writer stored it); this push was refused and "
        "logged for the operator"
    )


def _resumed_revisions(repo: Repository, tokens: list[str]) -> list[bytes]:
    """Ids of the revisions in the suspended write group ``tokens``."""
    upload = repo.controldir.get_repository_transport(None).clone("upload")
    found: list[bytes] = []
    for token in tokens:
        name = token + ".rix"
        index = BTreeGraphIndex(upload, name, upload.stat(name).st_size)
        found.extend(node[1][0] for node in index.iter_all_entries())
    return found


def _committed(repo: Repository, revision_ids: Iterable[bytes]) -> dict[bytes, bytes]:
    """SHA-1 of the committed copies of ``revision_ids``, read in a fresh
    view of the repository (without the write group in progress)."""
    fresh = repo.controldir.open_repository()
    with fresh.lock_read():
        present = fresh.revisions.get_parent_map([(r,) for r in revision_ids])
        return _stored_sha1s(fresh.revisions, [k[0] for k in present])


def _committed_equal(repo: Repository, revisions: dict[bytes, bytes]) -> list[bytes]:
    """Those of ``revisions`` committed with the SHA-1 given."""
    committed = _committed(repo, revisions)
    return [r for r, sha1 in committed.items() if revisions[r] == sha1]


def _check_committed(repo: Repository, revisions: dict[bytes, bytes], watch) -> None:
    """No revision of ``revisions`` is committed with other content than
    the SHA-1 given (another write group may have committed it meanwhile)."""
    for revision_id, sha1 in _committed(repo, revisions).items():
        if revisions[revision_id] != sha1:
            _conflict(watch, "revision", revision_id)


def insert_stream(
    repo: Repository, stream, src_format, tokens: list[str], where: str
) -> tuple[list[str], set]:
    """Insert ``stream`` into ``repo`` as breezy's ``StreamSink.insert_stream``
    does, checking its content first (see the module's docstring).

    :param where: the codebase, as errors name it.
    :return: resume tokens and missing keys, as breezy's sink returns them.
    """
    writer = provenance.current()
    sink = repo._get_sink()
    watch = StreamWatch(where)
    with repo.lock_write():
        if tokens:
            repo.resume_write_group(tokens)
        else:
            repo.start_write_group()
        try:
            missing = sink.insert_stream_without_locking(
                watch.wrap(stream), src_format, bool(tokens)
            )
            verify(repo, watch)
            if missing:
                tokens = repo.suspend_write_group()
                if writer is not None:  # those equal to committed copies
                    provenance.record_verified(
                        writer, _committed_equal(repo, watch.revisions)
                    )
                return tokens, missing
            revisions = dict(watch.revisions)
            if tokens:  # what earlier parts stored, checked when they ended
                resumed = _resumed_revisions(repo, tokens)
                revisions.update(_stored_sha1s(repo.revisions, resumed))
            if writer is None:
                repo.commit_write_group()
                return [], set()
            with provenance.commit_lock(writer.codebase_dir):
                _check_committed(repo, revisions, watch)
                repo.commit_write_group()
        except BaseException:
            if repo.is_in_write_group():
                repo.abort_write_group(suppress_errors=True)
            raise
    provenance.record_verified(writer, revisions)
    return [], set()
