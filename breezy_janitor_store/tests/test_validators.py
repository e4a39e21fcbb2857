"""Validators of the API and file answers: ETag, 304, Cache-Control.

A store holds a branch pushed with the real ``brz``; every answer below
must carry an ``ETag``, answer ``304`` with no body to a request holding
it, say how long it may be kept, and get a new ``ETag`` once a push
changes what it shows.
"""

from __future__ import annotations

import os
import urllib.parse

from breezy.branch import Branch

from .support.fixtures import StoreTestCase, brz, http_request

IMMUTABLE = "public, max-age=31536000, immutable"


class ValidatorTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store()
        self.work = self.make_branch(revisions=3)
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "pkg/lintian-fixes"),
            cwd=self.work,
        )
        branch = Branch.open(self.work)
        self.revs = [branch.get_rev_id(n) for n in (1, 2, 3)]

    def query(self, endpoint: str, old: bytes, new: bytes) -> str:
        params = urllib.parse.urlencode({"old": old.decode(), "new": new.decode()})
        return f"/pkg/{endpoint}?{params}"

    def check(self, url: str, cache: str, **headers: str) -> str:
        """``url`` answers with an ETag and ``cache``, and 304 to it."""
        status, got, body = http_request(url, headers=headers)
        self.assertIn(status, (200, 206), url)
        self.assertTrue(body or status == 200, url)
        etag = got.get("ETag")
        self.assertTrue(etag and etag.startswith('"'), (url, got))
        self.assertEqual(got.get("Cache-Control"), cache, url)
        status, again, body = http_request(
            url, headers={**headers, "If-None-Match": etag}
        )
        self.assertEqual((status, body), (304, b""), url)
        self.assertEqual(again.get("ETag"), etag, url)
        status, _, body = http_request(
            url, headers={**headers, "If-None-Match": '"other"'}
        )
        self.assertIn(status, (200, 206), url)
        self.assertTrue(body, url)
        return etag

    def test_revision_addressed_answers_are_immutable(self) -> None:
        r1, _, r3 = self.revs
        for base in (self.store.admin, self.store.public):
            for endpoint in ("diff", "revision-info"):
                with self.subTest(base=base, endpoint=endpoint):
                    self.check(base + self.query(endpoint, r1, r3), IMMUTABLE)
        # a different question, a different tag
        a = self.check(self.store.admin + self.query("diff", r1, r3), IMMUTABLE)
        b = self.check(
            self.store.admin + self.query("diff", self.revs[1], r3), IMMUTABLE
        )
        self.assertNotEqual(a, b)

    def test_lists_are_revalidated_and_change_after_a_push(self) -> None:
        admin, public = self.store.admin, self.store.public
        lists = {
            "admin json": (admin + "/", {"Accept": "application/json"}),
            "admin text": (admin + "/", {"Accept": "text/plain"}),
            "public json": (public + "/", {"Accept": "application/json"}),
            "repositories": (admin + "/repositories", {}),
            "directory": (admin + "/pkg/", {}),
        }
        before = {
            name: self.check(url, "no-cache", **headers)
            for name, (url, headers) in lists.items()
        }
        self.assertNotEqual(before["admin json"], before["admin text"])
        work = self.make_branch("other")
        brz("push", "-q", self.smart_url(admin, "other/lintian-fixes"), cwd=work)
        brz("push", "-q", self.smart_url(admin, "pkg/fresh"), cwd=work)
        for name, (url, headers) in lists.items():
            with self.subTest(name):
                self.assertNotEqual(
                    self.check(url, "no-cache", **headers), before[name]
                )

    def test_control_files(self) -> None:
        repo = os.path.join(self.storage_dir, "pkg", ".bzr", "repository")
        (pack,) = os.listdir(os.path.join(repo, "packs"))
        base = self.store.admin + "/pkg/.bzr/repository/"
        # a pack is named by its content: kept for good, byte ranges too
        self.check(base + "packs/" + pack, IMMUTABLE)
        self.check(base + "packs/" + pack, IMMUTABLE, Range="bytes=0-9")
        self.check(self.store.public + "/pkg/.bzr/repository/packs/" + pack, IMMUTABLE)
        # pack-names and a branch's tip change with a push
        names = self.check(base + "pack-names", "no-cache")
        tip_url = self.store.admin + "/pkg/lintian-fixes/.bzr/branch/last-revision"
        tip = self.check(tip_url, "no-cache")
        self.commit(self.work)
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "pkg/lintian-fixes"),
            cwd=self.work,
        )
        self.assertNotEqual(self.check(base + "pack-names", "no-cache"), names)
        self.assertNotEqual(self.check(tip_url, "no-cache"), tip)
