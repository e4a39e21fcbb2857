"""Safe defaults and refusals that say what to do instead.

The storage directory is never implied, a directory holding more than
codebases is served only when that is asked for, the public URL's shape on
the admin face and the admin URL's shape on the public face are refused
with the right URL, and the actions fail on what is not a store or not a
branch.
"""

from __future__ import annotations

import os

from .support.fixtures import (
    FREE_PORTS,
    StoreTestCase,
    brz,
    http_request,
    plugin_env,
    start_serve,
)


def without_store_path() -> dict[str, str]:
    env = plugin_env()
    env.pop("BZR_STORE_PATH", None)
    return env


class StorageDirectoryTests(StoreTestCase):
    def test_serve_needs_a_directory(self) -> None:
        proc = brz(
            "janitor-store",
            "serve",
            *FREE_PORTS,
            env=without_store_path(),
            cwd=self.storage_dir,
            check=False,
        )
        err = proc.stderr.decode()
        self.assertEqual(proc.returncode, 3, err)
        self.assertIn("no storage directory given: pass --directory DIR", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_actions_need_a_directory(self) -> None:
        for args in (["gc"], ["break-lock", "hello/lintian-fixes"]):
            with self.subTest(args=args):
                proc = brz(
                    "janitor-store",
                    *args,
                    env=without_store_path(),
                    cwd=self.storage_dir,
                    check=False,
                )
                self.assertEqual(proc.returncode, 3, proc.stderr)
                self.assertIn(b"no storage directory given", proc.stderr)

    def test_directory_with_other_content_needs_a_choice(self) -> None:
        os.mkdir(os.path.join(self.storage_dir, "docs"))
        with open(os.path.join(self.storage_dir, "docs", "notes.txt"), "w") as f:
            f.write("mine\n")
        proc = brz(
            "janitor-store",
            "serve",
            "-d",
            self.storage_dir,
            *FREE_PORTS,
            env=plugin_env(),
            check=False,
        )
        err = proc.stderr.decode()
        self.assertEqual(proc.returncode, 3, err)
        self.assertIn("holds more than codebases (docs)", err)
        self.assertIn("--allow-other-content", err)
        # as chosen: served, by option or by environment
        for args, env in (
            (["--allow-other-content"], {}),
            ([], {"BZR_STORE_ALLOW_OTHER_CONTENT": "1"}),
        ):
            with self.subTest(args=args, env=env):
                _, admin, _ = start_serve(
                    self, "-d", self.storage_dir, *FREE_PORTS, *args, **env
                )
                self.assertEqual(http_request(admin + "/health")[0], 200)

    def test_empty_directories_and_codebases_are_a_store(self) -> None:
        store = self.start_store(campaigns=["lintian-fixes"])
        self.push_branch(store, "hello/lintian-fixes")
        os.mkdir(os.path.join(self.storage_dir, "empty"))
        os.mkdir(os.path.join(self.storage_dir, "lost+found"))
        _, admin, _ = start_serve(self, "-d", self.storage_dir, *FREE_PORTS)
        self.assertEqual(http_request(admin + "/health")[0], 200)


class RefusalTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store()
        self.work = self.make_branch()

    def test_public_url_shape_on_the_admin_face(self) -> None:
        url = self.smart_url(self.store.admin, "bzr/hello/lintian-fixes")
        proc = brz("push", "-q", url, cwd=self.work, check=False)
        self.assertEqual(proc.returncode, 3)
        self.assertIn(b"drop /bzr/ from the URL", proc.stderr)
        self.assertEqual(os.listdir(self.storage_dir), [])

    def test_admin_url_shape_on_the_public_face(self) -> None:
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            cwd=self.work,
        )
        url = self.smart_url(self.store.public_root, "hello/lintian-fixes")
        proc = brz("branch", url, self.path("copy"), check=False)
        self.assertEqual(proc.returncode, 3)
        self.assertIn(b"branches are under /bzr/ on this face", proc.stderr)
        status, _, body = http_request(self.store.public_root + "/hello/lintian-fixes")
        self.assertEqual(status, 404)
        self.assertIn(b"branches are under /bzr/ on this face", body)
        # under /bzr/, a 404 has its own reason only
        status, _, body = http_request(self.store.public + "/nothing/here/at/all")
        self.assertEqual((status, body), (404, b"not found\n"))

    def test_push_to_a_codebase_root_says_add_the_campaign(self) -> None:
        proc = brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello"),
            cwd=self.work,
            check=False,
        )
        err = proc.stderr.decode()
        self.assertEqual(proc.returncode, 3)
        self.assertNotIn(": :", err)
        self.assertIn(
            'Permission denied: "/hello/.bzr": the codebase\'s control directory', err
        )
        self.assertIn("add /CAMPAIGN to the URL", err)


class ActionTests(StoreTestCase):
    def run_action(self, *args: str, cwd: str | None = None):
        return brz("janitor-store", *args, env=plugin_env(), check=False, cwd=cwd)

    def test_gc_on_what_is_not_a_store(self) -> None:
        with open(os.path.join(self.storage_dir, "notes.txt"), "w") as f:
            f.write("mine\n")
        proc = self.run_action("gc", "-d", self.storage_dir)
        self.assertEqual(proc.returncode, 3, proc.stdout)
        self.assertIn(b"is not a store", proc.stderr)

    def test_break_lock_of_a_branch_that_does_not_exist(self) -> None:
        store = self.start_store()
        self.push_branch(store, "hello/lintian-fixes")
        proc = self.run_action("break-lock", "-d", self.storage_dir, "hello/nosuch")
        self.assertEqual(proc.returncode, 3, proc.stdout)
        self.assertIn(b"no branch hello/nosuch in", proc.stderr)
        proc = self.run_action("break-lock", "-d", self.storage_dir, "nosuch/xy")
        self.assertEqual(proc.returncode, 3, proc.stdout)
        self.assertIn(b"no codebase nosuch in", proc.stderr)
        proc = self.run_action(
            "break-lock", "-d", self.storage_dir, "hello/lintian-fixes"
        )
        self.assertEqual(
            (proc.returncode, proc.stdout),
            (0, b"No lock held on hello/lintian-fixes\n"),
        )
