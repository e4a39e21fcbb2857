"""The store under gunicorn: several processes, threaded workers, real clients.

gunicorn serves ``breezy_janitor_store.wsgi:application`` configured by the
``BZR_STORE_*`` environment, as in production; the real ``brz`` branches
and pushes concurrently, and ``brz check`` must find the repository clean.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from .support.fixtures import (
    brz,
    http_request,
    wait_for,
)
from .support.gunicorn import GunicornTestCase

CODEBASE = "hello"
#: Words of ``brz check`` reporting a problem.
PROBLEMS = ("unreferenced", "missing", "ghost", "inconsistent", "incorrect", "ERROR")
#: Concurrent clients of the concurrency test.
BRANCHES = 8
PUSHES = 4






def _pool_run(calls: list) -> list:
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(*call) for call in calls]
        return [f.result() for f in futures]


class ConcurrencyTests(GunicornTestCase):
    def test_concurrent_branches_and_pushes_under_four_processes(self) -> None:
        base = self.start_gunicorn(workers=4, threads=4)
        url = f"bzr+{base}/{CODEBASE}"
        seed = self.make_branch("seed", revisions=3)
        brz("push", "-d", seed, f"{url}/lintian-fixes")
        # Four workers' results: the seed plus commits of their own.
        work = []
        for n in range(PUSHES):
            path = self.path(f"work{n}")
            brz("branch", "-q", seed, path)
            self.commit(path, n + 1, filename=f"worker{n}")
            work.append(path)

        calls = [
            (brz, "branch", "--no-tree", f"{url}/lintian-fixes", self.path(f"copy{n}"))
            for n in range(BRANCHES)
        ] + [
            (brz, "push", "-d", path, f"{url}/campaign{n}")
            for n, path in enumerate(work)
        ]
        _pool_run(calls)  # each raises if its brz failed

        for n in range(BRANCHES):
            self.assertEqual(brz("revno", self.path(f"copy{n}")).stdout.strip(), b"3")
        for n in range(PUSHES):
            self.assertEqual(
                brz("revno", f"{url}/campaign{n}").stdout.strip(), str(4 + n).encode()
            )
        # One shared repository, every branch in it consistent.
        repo_dir = os.path.join(self.storage_dir, CODEBASE)
        for branch in ["lintian-fixes", *(f"campaign{n}" for n in range(PUSHES))]:
            report = self.out(brz("check", os.path.join(repo_dir, branch)))
            self.assertIn("checked repository", report)
            self.assertIn("checked branch", report)
            for problem in PROBLEMS:
                self.assertNotIn(problem, report)
        self.assertEqual(
            sorted(os.listdir(repo_dir)),
            sorted([".bzr", "lintian-fixes", *(f"campaign{n}" for n in range(PUSHES))]),
        )


class FaceTests(GunicornTestCase):
    def test_public_face_by_environment(self) -> None:
        admin = self.start_gunicorn(workers=1, threads=2)
        work = self.make_branch(revisions=2)
        brz("push", "-d", work, f"bzr+{admin}/{CODEBASE}/lintian-fixes")
        public = self.start_gunicorn(workers=1, threads=2, BZR_STORE_FACE="public")
        url = f"bzr+{public}/bzr/{CODEBASE}/lintian-fixes"
        self.assertEqual(brz("revno", url).stdout.strip(), b"2")
        self.commit(work)
        proc = brz("push", "-d", work, url, check=False)
        self.assertEqual(proc.returncode, 3, self.out(proc))
        self.assertIn("readonly transport", self.out(proc))
        # the admin routes are not on the public face
        self.assertEqual(
            http_request(f"{public}/{CODEBASE}/.bzr/smart", data=b"x")[0], 404
        )
        # the store's access log, as under ``serve`` (written in batches)
        line = f'"POST /bzr/{CODEBASE}/lintian-fixes/.bzr/smart'

        def logged() -> bool:
            with open(self.log) as f:
                return line in f.read()

        wait_for(logged, "the access log line")

    def test_factory_with_face_argument(self) -> None:
        public = self.start_gunicorn(
            workers=1, threads=1, app='make_application("public")'
        )
        self.assertEqual(http_request(public + "/health")[0], 200)
        self.assertEqual(
            http_request(f"{public}/{CODEBASE}/.bzr/smart", data=b"x")[0], 404
        )

    def test_bad_configuration_stops_the_boot(self) -> None:
        for env in (
            {"BZR_STORE_FACE": "backstage"},
            {"BZR_STORE_PATH": "/nonexistent"},
        ):
            with self.subTest(env=env):
                proc = self.spawn_gunicorn(workers=1, threads=1, **env)
                proc.wait(60)
                self.assertNotEqual(proc.returncode, 0)
                with open(self.path(f"gunicorn-{proc.pid}.log")) as f:
                    log = f.read()
                self.assertIn(
                    "BZR_STORE_FACE" if "BZR_STORE_FACE" in env else "does not exist",
                    log,
                )
