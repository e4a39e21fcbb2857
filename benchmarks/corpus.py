"""A deterministic synthetic codebase to benchmark against, cached on disk.

The history is a single line of ``revisions`` commits over ``files`` text
files of a few KB, built with breezy's API from a seeded random generator:
fixed revision ids, timestamps and committer, so every build of the same
parameters yields the same revisions (and the same packed bytes, up to
compression).  ``big=True`` builds the memory-test corpus instead: few
revisions adding files of incompressible bytes.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass

import breezy.bzr  # noqa: F401 - registers the bzr formats
from breezy import branchbuilder, controldir, urlutils
from breezy.transport import get_transport_from_url

__all__ = ["CAMPAIGN", "CODEBASE", "Corpus", "build"]

#: Names the corpus is stored under in every server's directory.
CODEBASE = "bench"
CAMPAIGN = "lintian-fixes"
COMMITTER = "Janitor Benchmark <bench@example.com>"
EPOCH = 1_600_000_000
_WORDS = 16384
#: Revisions of the "10 new revisions" push.
EXTRA_REVISIONS = 10
#: Version of the corpus recipe: bump it to invalidate caches.
RECIPE = 1


@dataclass(frozen=True)
class Corpus:
    """Where a built corpus lives.

    ``source``: standalone branch with the whole history (what is pushed);
    ``extra``: ``source`` plus :data:`EXTRA_REVISIONS` more revisions;
    ``store``: a storage directory holding ``CODEBASE/CAMPAIGN`` at the tip
    of ``source`` (copied for each server).
    """

    root: str
    revisions: int

    @property
    def source(self) -> str:
        return os.path.join(self.root, "source")

    @property
    def extra(self) -> str:
        return os.path.join(self.root, "extra")

    @property
    def store(self) -> str:
        return os.path.join(self.root, "store")

    def packed_bytes(self) -> int:
        packs = os.path.join(self.store, CODEBASE, ".bzr", "repository", "packs")
        return sum(
            os.path.getsize(os.path.join(packs, n)) for n in os.listdir(packs)
        ) + sum(
            os.path.getsize(os.path.join(packs, "..", "indices", n))
            for n in os.listdir(os.path.join(packs, "..", "indices"))
        )


def _url(path: str) -> str:
    return urlutils.local_path_to_url(path)


class _Text:
    """Seeded generator of source-like lines."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = [
            "".join(
                rng.choice("abcdefghijklmnopqrstuvwxyz_")
                for _ in range(rng.randint(2, 12))
            )
            for _ in range(_WORDS)
        ]

    def line(self) -> bytes:
        rng = self.rng
        n = rng.randint(3, 14)
        indent = b"    " * rng.randint(0, 3)
        words = [rng.choice(self.words) for _ in range(n)]
        words[rng.randrange(n)] = f"0x{rng.getrandbits(48):012x}"
        return indent + " ".join(words).encode() + b"\n"


def _history(revisions: int, files: int, seed: int):
    """Yield ``(revision_id, actions)`` for each commit of the corpus."""
    rng = random.Random(seed)
    text = _Text(rng)
    paths = [f"src/mod{i % 20:02d}/file{i:03d}.c" for i in range(files)]
    contents: list[list[bytes]] = []
    actions = [("add", ("", b"root-id", "directory", None))]
    for d in sorted({os.path.dirname(p) for p in paths} | {"src"}):
        actions.append(("add", (d, d.replace("/", "-").encode(), "directory", None)))
    for i, p in enumerate(paths):
        lines = [text.line() for _ in range(rng.randint(30, 90))]
        contents.append(lines)
        actions.append(("add", (p, f"file-{i:04d}".encode(), "file", b"".join(lines))))
    yield b"rev-00001", actions
    for r in range(2, revisions + 1):
        actions = []
        for i in rng.sample(range(files), 10):
            lines = contents[i]
            at = rng.randrange(len(lines))
            cut = rng.randint(0, 10) if len(lines) > 40 else 0
            lines[at : at + cut] = [text.line() for _ in range(rng.randint(4, 16))]
            if len(lines) > 120:
                del lines[rng.randrange(len(lines) - 20) :][:20]
            actions.append(("modify", (paths[i], b"".join(lines))))
        yield f"rev-{r:05d}".encode(), actions


def _big_history(megabytes: int, seed: int):
    """Yield commits adding ``megabytes`` of incompressible files in total."""
    rng = random.Random(seed)
    per_revision = 10  # files of 1 MiB each
    yield (
        b"rev-00001",
        [
            ("add", ("", b"root-id", "directory", None)),
            ("add", ("data", b"data-dir", "directory", None)),
        ],
    )
    n = 0
    r = 1
    while n < megabytes:
        r += 1
        actions = []
        for _ in range(min(per_revision, megabytes - n)):
            actions.append(
                (
                    "add",
                    (
                        f"data/blob{n:04d}.bin",
                        f"blob-{n:04d}".encode(),
                        "file",
                        rng.randbytes(1024 * 1024),
                    ),
                )
            )
            n += 1
        yield f"rev-{r:05d}".encode(), actions


def _build_branch(path: str, history) -> None:
    builder = branchbuilder.BranchBuilder(
        get_transport_from_url(_url(path)), format="2a"
    )
    builder.start_series()
    try:
        parent = None
        for n, (revid, actions) in enumerate(history):
            builder.build_snapshot(
                [parent] if parent else [],
                actions,
                message=f"change {n + 1}",
                timestamp=EPOCH + 60 * n,
                timezone=0,
                committer=COMMITTER,
                revision_id=revid,
            )
            parent = revid
    finally:
        builder.finish_series()


def _pack(repo) -> None:
    """Pack ``repo`` into one pack file, dropping the superseded ones."""
    repo.pack()
    repo.controldir.transport.clone("repository").delete_tree("obsolete_packs")
    repo.controldir.transport.clone("repository").mkdir("obsolete_packs")


def build(
    cache: str,
    revisions: int = 2000,
    files: int = 300,
    seed: int = 1,
    big_megabytes: int = 0,
    log=print,
) -> Corpus:
    """Build (or reuse from ``cache``) the corpus with these parameters."""
    if big_megabytes:
        name = f"big-{big_megabytes}mb-s{seed}-v{RECIPE}"
    else:
        name = f"r{revisions}-f{files}-s{seed}-v{RECIPE}"
    corpus = Corpus(os.path.join(cache, name), revisions)
    marker = os.path.join(corpus.root, "complete")
    if os.path.exists(marker):
        with open(marker) as f:
            fields = f.read().split()
        # "NAME REVISIONS" (older caches: "NAME" alone, of ``revisions``)
        return Corpus(corpus.root, int(fields[1]) if len(fields) > 1 else revisions)
    log(f"building corpus {name} in {corpus.root} (cached for later runs)")
    shutil.rmtree(corpus.root, ignore_errors=True)
    os.makedirs(corpus.root)
    if big_megabytes:
        history = list(_big_history(big_megabytes, seed))
        corpus = Corpus(corpus.root, len(history))
        _build_branch(corpus.source, iter(history))
    else:
        _build_branch(corpus.source, _history(revisions, files, seed))
    source = controldir.ControlDir.open(corpus.source).open_branch()
    _pack(source.repository)
    # The store: CODEBASE is a shared repository, CAMPAIGN a branch in it.
    fmt = controldir.format_registry.make_controldir("2a")
    os.makedirs(os.path.join(corpus.store, CODEBASE))
    repo_dir = fmt.initialize_on_transport(
        get_transport_from_url(_url(os.path.join(corpus.store, CODEBASE)))
    )
    repo = repo_dir.create_repository(shared=True)
    repo.set_make_working_trees(False)
    source.controldir.sprout(
        _url(os.path.join(corpus.store, CODEBASE, CAMPAIGN)), create_tree_if_local=False
    )
    _pack(repo)
    # ``extra``: the campaign branch plus a few more revisions.
    extra = source.controldir.sprout(
        _url(corpus.extra), create_tree_if_local=False
    ).open_branch()
    rng = random.Random(seed + 1)
    text = _Text(rng)
    builder = branchbuilder.BranchBuilder(branch=extra)
    builder.start_series()
    try:
        tree = extra.basis_tree()
        with tree.lock_read():
            files_in_tree = sorted(
                p for p, _, kind, _ in tree.list_files() if kind == "file"
            )
            base = {p: tree.get_file_text(p) for p in files_in_tree[:EXTRA_REVISIONS]}
        for n, (path, content) in enumerate(base.items()):
            builder.build_snapshot(
                None,
                [("modify", (path, content + b"".join(text.line() for _ in range(5))))],
                message=f"extra change {n + 1}",
                timestamp=EPOCH + 60 * (corpus.revisions + n),
                timezone=0,
                committer=COMMITTER,
                revision_id=f"extra-{n + 1:02d}".encode(),
            )
    finally:
        builder.finish_series()
    with open(marker, "w") as f:
        f.write(f"{name} {corpus.revisions}\n")
    return corpus
