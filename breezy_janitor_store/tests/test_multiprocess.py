"""Several store processes on one storage directory, concurrent pushes.

Three ``brz janitor-store serve`` processes share one storage directory (as
gunicorn workers or hosts sharing it over NFS do).  Each round, concurrent
real ``brz push`` clients, spread over the processes, push new revisions to
campaigns and roles of one codebase; the repository's pack count crosses
breezy's autopack thresholds again and again.  Every push succeeds or fails
with lock contention, and ``brz check`` finds the repository clean after
every round.  ``MULTIPROCESS_ROUNDS`` and ``MULTIPROCESS_PUSHES`` tune it
(default 3 rounds of 8 pushes; ``python -m benchmarks multiprocess`` runs
20 of 12).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from breezy.commit import NullCommitReporter
from breezy.workingtree import WorkingTree

from .support.fixtures import FREE_PORTS, StoreTestCase, brz, brz_command, start_serve

CODEBASE = "hello"
#: New bytes each client commits before each push.
COMMIT_BYTES = int(os.environ.get("MULTIPROCESS_COMMIT_BYTES", "262144"))
CONTENTION = ("Could not acquire lock", "LockContention")
#: ``brz check`` words that report a problem.
PROBLEMS = ("unreferenced", "missing", "ghost", "inconsistent", "incorrect", "ERROR")


@dataclass
class RoundsResult:
    """What the rounds did."""

    pushes: int = 0
    contended: int = 0
    #: Pushes that neither succeeded nor reported lock contention.
    failures: list[str] = field(default_factory=list)
    #: Autopacks the servers completed (from breezy's log, when it is known).
    autopacks: int = 0
    packs: list[int] = field(default_factory=list)
    check_problems: list[str] = field(default_factory=list)


def targets(count: int) -> list[str]:
    """``count`` branch locations of one codebase: campaigns and roles."""
    out = []
    for i in range(count):
        campaign = f"campaign{i % 4}"
        out.append(
            f"{CODEBASE}/{campaign}" if i < 4 else f"{CODEBASE}/{campaign}/role{i // 4}"
        )
    return out


def pack_count(storage_dir: str) -> int:
    packs = os.path.join(storage_dir, CODEBASE, ".bzr", "repository", "packs")
    return len([n for n in os.listdir(packs) if n.endswith(".pack")])


def check_problems(storage_dir: str) -> str | None:
    """``brz check``'s complaint about the codebase, or None when clean."""
    proc = brz("check", os.path.join(storage_dir, CODEBASE), check=False)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    if proc.returncode != 0 or any(p in out for p in PROBLEMS):
        return out
    return None


def run_rounds(
    work_dir: str, storage_dir: str, servers: list[str], rounds: int, pushes: int
) -> RoundsResult:
    """Push ``pushes`` new revisions at once, ``rounds`` times, spread over
    the admin faces ``servers``; ``brz check`` after each round."""
    result = RoundsResult()
    clients = []
    base = WorkingTree.open(work_dir)
    for i in range(pushes):
        path = os.path.join(os.path.dirname(work_dir), f"client{i}")
        clients.append(base.branch.controldir.sprout(path).open_workingtree())
    locations = targets(pushes)
    autopacks_before = _autopacks_logged()
    for round_ in range(rounds):
        for i, tree in enumerate(clients):
            name = f"r{round_}-c{i}"
            with open(os.path.join(tree.basedir, name), "wb") as f:
                f.write(os.urandom(COMMIT_BYTES))
            tree.add([name])
            tree.commit(name, reporter=NullCommitReporter())
        procs = [
            subprocess.Popen(
                [
                    *brz_command(),
                    "push",
                    "-q",
                    "--overwrite",
                    f"bzr+{servers[i % len(servers)]}/{locations[i]}",
                ],
                cwd=tree.basedir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for i, tree in enumerate(clients)
        ]
        for proc in procs:
            out = proc.communicate(timeout=600)[0].decode(errors="replace")
            result.pushes += 1
            if proc.returncode == 0:
                continue
            if any(c in out for c in CONTENTION):
                result.contended += 1
            else:
                error = out.split("\n\n")[0].strip()  # without the traceback
                result.failures.append(f"round {round_}: {error}")
        result.packs.append(pack_count(storage_dir))
        problem = check_problems(storage_dir)
        if problem is not None:
            result.check_problems.append(f"round {round_}: {problem}")
    result.autopacks = _autopacks_logged() - autopacks_before
    return result


def _autopacks_logged() -> int:
    """Autopacks completed, as written to ``BRZ_LOG`` by every process."""
    try:
        with open(os.environ["BRZ_LOG"], errors="replace") as f:
            return sum(
                "Auto-packing repository" in line and "completed" in line for line in f
            )
    except (KeyError, OSError):
        return 0


class ManyProcessesTests(StoreTestCase):
    rounds = int(os.environ.get("MULTIPROCESS_ROUNDS", "4"))
    pushes = int(os.environ.get("MULTIPROCESS_PUSHES", "10"))

    def test_concurrent_pushes_through_three_processes(self) -> None:
        servers = [
            start_serve(self, "-d", self.storage_dir, *FREE_PORTS)[1] for _ in range(3)
        ]
        work = self.make_branch(revisions=8)
        brz("push", "-q", f"bzr+{servers[0]}/{CODEBASE}/campaign0", cwd=work)
        result = run_rounds(work, self.storage_dir, servers, self.rounds, self.pushes)
        self.assertEqual(result.failures, [])
        self.assertEqual(result.check_problems, [])
        self.assertGreater(result.pushes - result.contended, 0)
        # the thresholds were crossed: the servers combined packs
        self.assertGreater(result.autopacks, 0, result)
