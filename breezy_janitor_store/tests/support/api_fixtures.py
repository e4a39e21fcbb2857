"""Stores with real history for the API, browse and metrics tests.

A store is built once per test process (``brz selftest`` ignores
``setUpClass``, so it is cached here instead) by pushing branches with the
real ``brz`` to a running store; tests only read from it.  Local branches
are built in-process with breezy's ``BranchBuilder`` (fast, deterministic
timestamps); every byte reaches the store through a real ``brz push``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import ClassVar

import breezy.bzr  # noqa: F401 - registers the bzr formats
from breezy import branchbuilder, urlutils
from breezy.branch import Branch
from breezy.transport import get_transport_from_url

from .fixtures import RunningStore, brz

__all__ = ["CAMPAIGNS", "COMMITTER", "SharedStore", "big_store", "hello_store"]

#: The committer of the fixtures' revisions: generated revision ids contain
#: its e-mail address, "+" included.
COMMITTER = "Jane Doe <jane+janitor@example.com>"
CAMPAIGNS = ["lintian-fixes", "fresh-releases"]
EPOCH = 1_700_000_000


class SharedStore:
    """A running store in its own directory, kept until the process exits."""

    _cache: ClassVar[dict[str, SharedStore]] = {}
    _lock = threading.Lock()

    def __init__(self, **store_kwargs) -> None:
        self.tmp = tempfile.mkdtemp(prefix="bjs-shared-")
        home = os.path.join(self.tmp, "home")
        os.mkdir(home)
        self.env = dict(
            os.environ,
            HOME=home,
            BRZ_HOME=os.path.join(home, ".config", "breezy"),
            XDG_CONFIG_HOME=os.path.join(home, ".config"),
            XDG_CACHE_HOME=os.path.join(home, ".cache"),
            BRZ_EMAIL=COMMITTER,
            BRZ_LOG=os.path.join(self.tmp, "brz.log"),
        )
        self.storage_dir = os.path.join(self.tmp, "store")
        os.mkdir(self.storage_dir)
        self.store = RunningStore(self.storage_dir, **store_kwargs)
        self.revisions: dict[str, bytes] = {}
        atexit.register(self.close)

    @classmethod
    def get(cls, name: str, build: Callable[[SharedStore], None]) -> SharedStore:
        """The store ``name``, built by ``build()`` on first use."""
        with cls._lock:
            shared = cls._cache.get(name)
            if shared is None:
                shared = build()
                cls._cache[name] = shared
            return shared

    def close(self) -> None:
        self.store.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts: str) -> str:
        return os.path.join(self.tmp, *parts)

    def builder(self, name: str, branch: Branch | None = None):
        """A BranchBuilder for a new local branch ``name`` (or ``branch``)."""
        if branch is not None:
            return branchbuilder.BranchBuilder(branch=branch)
        url = urlutils.local_path_to_url(self.path(name))
        return branchbuilder.BranchBuilder(get_transport_from_url(url), format="2a")

    def snapshot(self, builder, name: str, parents, actions, message: str) -> bytes:
        """Commit with ``builder``; remember the revision id as ``name``."""
        n = len(self.revisions)
        revid = builder.build_snapshot(
            parents,
            actions,
            message=message,
            committer=COMMITTER,
            timestamp=EPOCH + 3600 * n,
            timezone=3600,
        )
        self.revisions[name] = revid
        return revid

    def push(self, local: str, location: str, *args: str) -> None:
        """``brz push`` the local branch to ``location`` on the admin face."""
        url = "bzr+" + self.store.admin + "/" + location
        brz("push", "-q", "-d", self.path(local), url, *args, env=self.env)


def _build_hello() -> SharedStore:
    """Codebase ``hello``: a 4-revision ``lintian-fixes`` branch (tag v1.0 at
    r2), its ``upstream`` role at r2 and a ``fresh-releases`` branch that
    diverged after r2; plus things that are not codebases."""
    shared = SharedStore(campaigns=CAMPAIGNS)
    main = shared.builder("main")
    main.start_series()
    try:
        r1 = shared.snapshot(
            main,
            "r1",
            None,
            [
                ("add", ("", None, "directory", None)),
                ("add", ("file", None, "file", b"one\n")),
                ("add", ("dir", None, "directory", None)),
                ("add", ("dir/sub.txt", None, "file", b"sub\n")),
            ],
            "Initial import",
        )
        r2 = shared.snapshot(
            main, "r2", [r1], [("modify", ("file", b"one\ntwo\n"))], "Add a second line"
        )
        shared.snapshot(
            main,
            "r3",
            [r2],
            [("modify", ("dir/sub.txt", b"sub\nmore\n"))],
            "Extend sub",
        )
        shared.snapshot(
            main,
            "r4",
            None,
            [("add", ("notes.txt", None, "file", b"<b>bold</b> & more\n"))],
            'Fix <b>bold</b> & "quotes"\n\nA longer description <script>x</script>.',
        )
    finally:
        main.finish_series()
    main_branch = main.get_branch()
    main_branch.tags.set_tag("v1.0", r2)
    feature_dir = main_branch.controldir.sprout(
        urlutils.local_path_to_url(shared.path("feature")), revision_id=r2
    )
    feature = shared.builder("feature", feature_dir.open_branch())
    feature.start_series()
    try:
        shared.snapshot(
            feature,
            "f1",
            None,
            [("modify", ("file", b"one\ntwo\nthree\n"))],
            "Feature one",
        )
        shared.snapshot(
            feature,
            "f2",
            None,
            [("add", ("feature.txt", None, "file", b"f\n"))],
            "Feature two",
        )
    finally:
        feature.finish_series()
    shared.push("main", "hello/lintian-fixes")
    shared.push("main", "hello/lintian-fixes/upstream", "-r", "revid:" + r2.decode())
    shared.push("feature", "hello/fresh-releases")
    # Not codebases: a directory without a repository, a stray file, a
    # dot-directory and a badly named directory holding repositories.
    store = shared.storage_dir
    os.mkdir(os.path.join(store, "norepo"))
    with open(os.path.join(store, "README.txt"), "w") as f:
        f.write("not a codebase\n")
    for name in (".hidden", "Bad_Name"):
        shutil.copytree(
            os.path.join(store, "hello", ".bzr"), os.path.join(store, name, ".bzr")
        )
    return shared


def hello_store() -> SharedStore:
    """The shared store with codebase ``hello`` (see :func:`_build_hello`)."""
    return SharedStore.get("hello", _build_hello)


def _build_big() -> SharedStore:
    """Codebase ``big``: one revision adding a file of 200,000 lines."""
    shared = SharedStore(campaigns=["lintian-fixes"])
    builder = shared.builder("big")
    builder.start_series()
    try:
        text = b"".join(b"line %d\n" % i for i in range(200_000))
        shared.snapshot(
            builder,
            "big",
            None,
            [
                ("add", ("", None, "directory", None)),
                ("add", ("big.txt", None, "file", text)),
            ],
            "A big file",
        )
    finally:
        builder.finish_series()
    shared.push("big", "big/lintian-fixes")
    return shared


def big_store() -> SharedStore:
    """The shared store with codebase ``big`` (a diff of about 2.5 MB)."""
    return SharedStore.get("big", _build_big)
