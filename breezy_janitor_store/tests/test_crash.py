"""Crash tests: no acknowledged push is lost, whatever the crash point.

The store serves a storage directory on :mod:`.support.crashfs`, a FUSE filesystem
keeping, besides what processes see, only what was synced.  A series of
pushes runs (new codebase, branch, tags, a second branch, enough pushes
for an autopack); after each one ``brz`` reports done, a marker is
recorded.  Then, for every sync event (a crash point), the state a crash
right after it leaves is written out, and: ``check`` finds nothing wrong,
every branch opens, and the tip of every push acknowledged before the
crash point is there (or a later one's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from breezy import branch as _branch  # noqa: F401 - branch formats
from breezy.tests import features as breezy_features

from ..store.check import check_store
from ..store.storage import Storage
from .support import features
from .support.fixtures import StoreTestCase, brz, python_env, wait_for


class _Fuse(breezy_features.Feature):
    """FUSE usable here: ``/dev/fuse``, ``fusermount3``, ``mfusepy`` with libfuse."""

    def _probe(self) -> bool:
        if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
            return False
        try:
            import mfusepy  # noqa: F401
        except (ImportError, OSError):
            return False
        return True

    def feature_name(self) -> str:
        return "FUSE (/dev/fuse, fusermount3, mfusepy)"


FUSE = features.Needed(_Fuse(), "apt-get install fuse3; pip install mfusepy")


class CrashFS:
    """The crash filesystem mounted at ``mountpoint`` (a subprocess)."""

    def __init__(self, test: unittest.TestCase, mountpoint: str) -> None:
        self.mountpoint = mountpoint
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "breezy_janitor_store.tests.support.crashfs", mountpoint],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        test.addCleanup(self.unmount)
        wait_for(lambda: os.path.ismount(mountpoint), "the crash filesystem to mount")

    def command(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def mark(self, label: str) -> int:
        return int(self.command(f"mark {label}"))

    def events(self) -> tuple[int, list[tuple[int, str]]]:
        """The number of events and the markers (event number, label)."""
        words = self.command("events").split()
        marks = [(int(words[i]), words[i + 1]) for i in range(1, len(words), 2)]
        return int(words[0]), marks

    def crash(self, upto: int, dest: str) -> None:
        os.mkdir(dest)
        self.assert_ok(self.command(f"crash {upto} {dest}"))

    @staticmethod
    def assert_ok(answer: str) -> None:
        if answer != "ok":
            raise AssertionError(f"crash filesystem answered {answer!r}")

    def unmount(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if os.path.ismount(self.mountpoint):
            subprocess.run(["umount", "-l", self.mountpoint], check=False)
        for stream in (self.proc.stdin, self.proc.stdout):
            stream.close()


def crash_state_problems(
    state: str, acknowledged: list[tuple[str, list[bytes], int]]
) -> list[str]:
    """What is wrong with crash state ``state``: ``check``'s problems, and
    each acknowledged push (location, the tips pushed there in order, the
    index of the acknowledged one) whose tip (or a later one) is missing."""
    from ..store.branches import open_branch, open_repository

    storage = Storage(state, sync=False)
    problems = [line for report in check_store(storage) for line in report.lines()]
    for location, tips, index in acknowledged:
        codebase, *segments = location.split("/")
        root = storage.transport(codebase, writable=False, is_campaign=lambda n: True)
        try:
            repository = open_repository(root)
            branch = open_branch(root, tuple(segments), repository)
            tip = branch.last_revision()
        except Exception as e:  # noqa: BLE001 - reported
            problems.append(f"{location}: acknowledged push lost: {e}")
            continue
        if tip not in tips[index:]:
            problems.append(
                f"{location}: acknowledged tip {tips[index]!r} lost (tip {tip!r})"
            )
            continue
        try:
            present = repository.has_revision(tip)
        except Exception as e:  # noqa: BLE001 - reported
            present = False
            problems.append(f"{location}: repository unreadable: {e}")
        if not present:
            problems.append(f"{location}: tip {tip!r} missing from the repository")
    return problems


class CrashTest(StoreTestCase):
    """Pushes on the crash filesystem, then every crash point checked."""

    def setUp(self) -> None:
        super().setUp()
        features.require(self, FUSE)
        if os.geteuid() != 0:
            self.skipTest("mounting FUSE here needs root")
        self.fs = CrashFS(self, self.storage_dir)

    def push_series(self, pushes: int) -> list[tuple[int, str, list[bytes], int]]:
        """Run ``pushes`` pushes (a branch, a tag, a second branch...);
        the markers: (event, location, tips of the location, index)."""
        store = self.start_store()
        work = self.make_branch(revisions=1)
        tips: dict[str, list[bytes]] = {}
        marks = []
        for n in range(pushes):
            location = "code/camp/other" if n % 4 == 3 else "code/camp"
            if n:
                self.commit(work)
            if n == 2:
                brz("tag", "-q", "release-1", cwd=work)
            brz(
                "push",
                "-q",
                "--overwrite",
                self.smart_url(store.admin, location),
                cwd=work,
            )
            tip = brz("revision-info", cwd=work).stdout.split()[1]
            tips.setdefault(location, []).append(tip)
            event = self.fs.mark(f"push-{n}")
            marks.append((event, location, tips[location], len(tips[location]) - 1))
        store.wait_idle()
        return marks

    def crash_points_problems(self, marks, points) -> dict[int, list[str]]:
        found = {}
        scratch = tempfile.mkdtemp(prefix="crash-", dir=self.tmp)
        for point in points:
            state = os.path.join(scratch, str(point))
            self.fs.crash(point, state)
            latest: dict[str, tuple] = {}
            for event, location, tips, index in marks:
                if event <= point:
                    latest[location] = (location, tips, index)
            problems = crash_state_problems(state, list(latest.values()))
            if problems:
                found[point] = problems
            shutil.rmtree(state)
        return found

    def test_no_acknowledged_push_lost_at_any_crash_point(self) -> None:
        marks = self.push_series(12)
        total, _ = self.fs.events()
        self.assertGreater(total, 100)  # syncs to crash after
        found = self.crash_points_problems(marks, range(total + 1))
        self.assertEqual({}, found)

    def test_without_syncs_acknowledged_pushes_are_lost(self) -> None:
        """The harness can fail: with syncs off, a crash after the pushes
        were acknowledged loses them."""
        os.environ["BZR_STORE_SYNC"] = "0"
        self.addCleanup(os.environ.pop, "BZR_STORE_SYNC", None)
        marks = self.push_series(2)
        total, _ = self.fs.events()
        found = self.crash_points_problems(marks, [total])
        self.assertIn(total, found)
        self.assertTrue(any("acknowledged" in p for p in found[total]), found)
