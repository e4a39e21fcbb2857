"""End to end: a real store on loopback ports driven by the real ``brz``."""

from __future__ import annotations

import os

from breezy import branch as _mod_branch
from breezy import controldir

from .support.fixtures import StoreTestCase, brz, http_request, tree_digest


class PushAndBranchTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=["lintian-fixes", "fresh-releases"])
        self.work = self.make_branch(revisions=2)

    def admin_url(self, location: str) -> str:
        return self.smart_url(self.store.admin, location)

    def public_url(self, location: str) -> str:
        return self.smart_url(self.store.public, location)

    def revno(self, url: str) -> str:
        return brz("revno", url).stdout.decode().strip()

    def test_push_creates_codebase_campaign_and_branch(self) -> None:
        proc = brz("push", self.admin_url("hello/lintian-fixes"), cwd=self.work)
        self.assertIn("Created new branch", self.out(proc))
        cb = os.path.join(self.storage_dir, "hello")
        repo = controldir.ControlDir.open(cb).open_repository()
        self.assertTrue(repo.is_shared())
        self.assertFalse(repo.make_working_trees())
        b = _mod_branch.Branch.open(os.path.join(cb, "lintian-fixes"))
        self.assertEqual(
            b.repository.controldir.root_transport.base,
            repo.controldir.root_transport.base,
        )
        self.assertEqual(b.last_revision_info()[0], 2)
        # no repository, no tree of its own
        self.assertFalse(
            os.path.exists(os.path.join(cb, "lintian-fixes", ".bzr", "repository"))
        )
        self.assertFalse(
            os.path.exists(os.path.join(cb, "lintian-fixes", ".bzr", "checkout"))
        )
        # a second push with new revisions updates it
        self.commit(self.work, 3)
        proc = brz("push", self.admin_url("hello/lintian-fixes"), cwd=self.work)
        self.assertIn("Pushed up to revision 5", self.out(proc))
        self.assertEqual(self.revno(self.admin_url("hello/lintian-fixes")), "5")

    def test_role_branch_shares_the_repository(self) -> None:
        brz("push", self.admin_url("hello/lintian-fixes"), cwd=self.work)
        packs = os.path.join(self.storage_dir, "hello", ".bzr", "repository", "packs")
        before = sorted(os.listdir(packs))
        brz("push", self.admin_url("hello/lintian-fixes/upstream"), cwd=self.work)
        role = os.path.join(self.storage_dir, "hello", "lintian-fixes", "upstream")
        b = _mod_branch.Branch.open(role)
        self.assertEqual(b.last_revision_info()[0], 2)
        self.assertFalse(os.path.exists(os.path.join(role, ".bzr", "repository")))
        # the revisions were already there: nothing new was stored
        self.assertEqual(sorted(os.listdir(packs)), before)

    def test_role_branch_before_its_campaign_branch(self) -> None:
        brz("push", self.admin_url("hello/fresh-releases/upstream"), cwd=self.work)
        self.assertEqual(
            self.revno(self.public_url("hello/fresh-releases/upstream")), "2"
        )

    def test_main_role_is_the_campaign_branch(self) -> None:
        brz("push", self.admin_url("hello/lintian-fixes/main"), cwd=self.work)
        self.assertFalse(
            os.path.exists(
                os.path.join(self.storage_dir, "hello", "lintian-fixes", "main")
            )
        )
        self.assertEqual(self.revno(self.public_url("hello/lintian-fixes")), "2")
        self.assertEqual(self.revno(self.public_url("hello/lintian-fixes/main")), "2")

    def test_reading_commands_on_both_faces(self) -> None:
        brz("push", self.admin_url("hello/lintian-fixes"), cwd=self.work)
        brz("tag", "-q", "run-1234", cwd=self.work)
        brz("push", "-q", self.admin_url("hello/lintian-fixes"), cwd=self.work)
        for i, url in enumerate(
            [
                self.admin_url("hello/lintian-fixes"),
                self.public_url("hello/lintian-fixes"),
                self.store.public + "/hello/lintian-fixes",
            ]
        ):  # plain http://
            with self.subTest(url=url):
                target = self.path(f"copy{i}")
                brz("branch", url, target)
                self.assertEqual(brz("revno", cwd=target).stdout.strip(), b"2")
                self.assertEqual(self.revno(url), "2")
                self.assertIn("run-1234", brz("tags", "-d", url).stdout.decode())
                self.assertIn("change", brz("log", url).stdout.decode())
                self.assertIn("shared repository", brz("info", url).stdout.decode())
                self.commit(self.work)
                brz("push", "-q", self.admin_url("hello/lintian-fixes"), cwd=self.work)
                self.assertIn(
                    "Now on revision 3", self.out(brz("pull", url, cwd=target))
                )
                brz("uncommit", "--force", "-q", cwd=self.work)
                brz(
                    "push",
                    "-q",
                    "--overwrite",
                    self.admin_url("hello/lintian-fixes"),
                    cwd=self.work,
                )

    def test_anonymous_push_to_public_face_is_refused(self) -> None:
        brz("push", self.admin_url("hello/lintian-fixes"), cwd=self.work)
        self.commit(self.work)
        before = tree_digest(self.storage_dir)
        for location in [
            "hello/lintian-fixes",
            "hello/fresh-releases",
            "hello/lintian-fixes/upstream",
        ]:
            with self.subTest(location=location):
                proc = brz(
                    "push", self.public_url(location), cwd=self.work, check=False
                )
                self.assertEqual(proc.returncode, 3, self.out(proc))
                self.assertIn("readonly transport", self.out(proc))
                self.assertNotIn("Traceback", self.out(proc))
        self.assertEqual(tree_digest(self.storage_dir), before)

    def test_read_of_missing_codebase_is_404_and_creates_nothing(self) -> None:
        status, headers, body = http_request(
            self.store.public + "/nothing/lintian-fixes/.bzr/smart",
            data=b"bzr message 3 (bzr 1.6)\n",
        )
        self.assertEqual(status, 404)
        self.assertEqual(body, b"no such codebase: nothing\n")
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        proc = brz(
            "branch",
            self.public_url("nothing/lintian-fixes"),
            self.path("x"),
            check=False,
        )
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(os.listdir(self.storage_dir), [])

    def test_unknown_campaign_is_404(self) -> None:
        proc = brz(
            "push", self.admin_url("hello/no-such-campaign"), cwd=self.work, check=False
        )
        self.assertNotEqual(proc.returncode, 0)
        status, _, body = http_request(
            self.store.admin + "/hello/no-such-campaign/.bzr/smart", data=b"x"
        )
        self.assertEqual((status, body), (404, b"unknown campaign: no-such-campaign\n"))
        self.assertEqual(os.listdir(self.storage_dir), [])

    def test_invalid_names_are_400(self) -> None:
        for path in [
            "/Hello/.bzr/smart",
            "/a/.bzr/smart",
            "/hello/-x/.bzr/smart",
            "/hello/lintian-fixes/upstream/extra/.bzr/smart",
            "/he%00llo/.bzr/smart",
            "/h%C3%A9llo/.bzr/smart",
            "/hello/lintian-fixes/UP/.bzr/smart",
        ]:
            with self.subTest(path=path):
                status, _, body = http_request(self.store.admin + path, data=b"x")
                self.assertEqual(status, 400, body)
                self.assertNotIn(b"Traceback", body)
        self.assertEqual(os.listdir(self.storage_dir), [])

    def test_health_and_methods(self) -> None:
        for base in (self.store.admin, self.store.public_root):
            self.assertEqual(http_request(base + "/health")[::2], (200, b"ok"))
        status, headers, _ = http_request(self.store.admin + "/hello/.bzr/smart")
        self.assertEqual(status, 405)
        self.assertEqual(headers["Allow"], "POST")
        # the public face has no admin routes
        self.assertEqual(
            http_request(self.store.public_root + "/hello/.bzr/smart", data=b"x")[0],
            404,
        )
