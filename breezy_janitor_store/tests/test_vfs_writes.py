"""Writers change only what a push changes, at the smart level.

Stock clients make no file-level (VFS) write but ``mkdir`` of a campaign or
role directory; every other VFS write is refused with ``PermissionDenied``
and its reason, and so are the verbs that would stack a branch or make a
branch reference.  Nothing on disk changes.
"""

from __future__ import annotations

import os
import unittest

from breezy.bzr.branch import BranchReferenceFormat

from ..store import dircap, layout
from .support import hostile
from .support.fixtures import tree_digest
from .support.hostile_case import TRIED, HostileTestCase


class VfsWriteRuleTests(unittest.TestCase):
    def test_only_layout_directories_are_made(self) -> None:
        for disk in [(), ("lintian-fixes",), ("lintian-fixes", "upstream")]:
            self.assertIsNone(layout.vfs_write_refusal(disk, "mkdir"), disk)
        refused = [
            (("lintian-fixes",), "rmdir"),
            (("lintian-fixes", ".bzr"), "mkdir"),
            (("lintian-fixes", ".bzr", "branch", "last-revision"), "put"),
            (("lintian-fixes", ".bzr", "branch", "tags"), "put_non_atomic"),
            (("lintian-fixes", ".bzr", "branch-format"), "delete"),
            ((".bzr", "repository", "pack-names"), "put"),
            ((".bzr", "repository", "packs", "x.pack"), "delete"),
            ((".bzr", "repository", "upload", "x.pack"), "append"),
            (("lintian-fixes", "README"), "put"),
        ]
        for disk, operation in refused:
            with self.subTest(disk=disk, operation=operation):
                self.assertTrue(layout.vfs_write_refusal(disk, operation))
        self.assertIn(
            "repository verbs",
            layout.vfs_write_refusal((".bzr", "repository", "pack-names"), "put"),
        )
        self.assertIn(
            "branch",
            layout.vfs_write_refusal(
                ("lintian-fixes", ".bzr", "branch", "last-revision"), "put"
            ),
        )


class VfsWriteTests(HostileTestCase):
    def call(self, location: str, verb: bytes, *args: bytes, body=None) -> tuple:
        """Send one request to the admin face; assert a smart refusal or
        success, return ``(ok, args)``."""
        url = f"{self.store.admin}/{location}/.bzr/smart"
        raw = self.smart_post(url, hostile.encode_request(verb, *args, body=body))
        TRIED["vfs"] += 1
        status, _, data = hostile.split_response(raw)
        self.assertClean(raw, (verb, args))
        self.assertEqual(status, 200, raw[:300])
        return hostile.decode_response(data)

    def assertRefused(self, location: str, verb: bytes, *args, body=None) -> bytes:
        ok, answer = self.call(location, verb, *args, body=body)
        self.assertFalse(ok, (verb, args, answer))
        self.assertEqual(answer[0], b"PermissionDenied", answer)
        return answer[-1]

    def test_repository_data_never_changes_through_the_vfs(self) -> None:
        packs = os.path.join(self.storage_dir, "hello", ".bzr", "repository", "packs")
        pack = min(os.listdir(packs)).encode()
        for location in ("hello/lintian-fixes", "hello/lintian-fixes/upstream"):
            up = b"../" if location.count("/") == 1 else b"../../"
            with self.subTest(location=location):
                reason = self.assertRefused(
                    location, b"delete", up + b".bzr/repository/packs/" + pack
                )
                self.assertIn(b"repository verbs", reason)
                reason = self.assertRefused(
                    location,
                    b"put",
                    up + b".bzr/repository/pack-names",
                    b"",
                    body=b"garbage",
                )
                self.assertIn(b"repository verbs", reason)
                self.assertRefused(
                    location,
                    b"rename",
                    up + b".bzr/repository/packs/" + pack,
                    up + b".bzr/repository/obsolete_packs/" + pack,
                )
        self.assertUnchanged()

    def test_role_directories_per_campaign_are_capped(self) -> None:
        campaign = os.path.join(self.storage_dir, "hello", "lintian-fixes")
        held = [n for n in os.listdir(campaign) if n != ".bzr"]
        for i in range(dircap.MAX_ROLES - len(held)):
            ok, answer = self.call("hello", b"mkdir", b"lintian-fixes/r%d" % i, b"")
            self.assertTrue(ok, answer)
        before = tree_digest(self.storage_dir)
        reason = self.assertRefused("hello", b"mkdir", b"lintian-fixes/one-more", b"")
        self.assertIn(b"at most 256 role directories", reason)
        self.assertEqual(tree_digest(self.storage_dir), before)
        # an existing one is still made as breezy makes sure it exists
        ok, answer = self.call("hello", b"mkdir", b"lintian-fixes/r0", b"")
        self.assertTrue(ok, answer)

    def test_branch_control_files_change_only_through_branch_verbs(self) -> None:
        for verb, *args in [
            (b"delete", b"lintian-fixes/.bzr/branch-format"),
            (b"delete", b"lintian-fixes/.bzr/branch/last-revision"),
            (b"put", b"lintian-fixes/.bzr/branch/last-revision", b""),
            (b"put_non_atomic", b"lintian-fixes/.bzr/branch/tags", b"", b"", b""),
            (b"append", b"lintian-fixes/.bzr/branch/branch.conf", b""),
            (b"rename", b"lintian-fixes/.bzr/branch/tags", b"lintian-fixes/x"),
            (b"rmdir", b"lintian-fixes/upstream"),
            (b"mkdir", b"lintian-fixes/.bzr/branch/lock/x", b""),
        ]:
            with self.subTest(verb=verb, args=args):
                body = b"x" if verb in (b"put", b"put_non_atomic", b"append") else None
                reason = self.assertRefused("hello", verb, *args, body=body)
                self.assertTrue(reason)
        self.assertUnchanged()

    def test_making_a_campaign_or_role_directory_is_allowed(self) -> None:
        ok, answer = self.call("hello", b"mkdir", b"fresh-releases", b"")
        self.assertTrue(ok, answer)
        ok, answer = self.call("hello/lintian-fixes", b"mkdir", b"debian", b"")
        self.assertTrue(ok, answer)
        self.assertTrue(
            os.path.isdir(os.path.join(self.storage_dir, "hello", "fresh-releases"))
        )

    def test_stacking_and_references_are_refused(self) -> None:
        admin = hostile.smart_client(
            self.smart_url(self.store.admin, "hello/lintian-fixes")
        )
        _, token, repo_token = admin.call(b"Branch.lock_write", b".", b"", b"")
        self.addCleanup(admin.call, b"Branch.unlock", b".", token, repo_token)
        self.before = tree_digest(self.storage_dir)
        url = b"file://" + self.path("foreign").encode()
        names = hostile.format_names()
        for location, verb, *args in [
            (
                "hello/lintian-fixes",
                b"Branch.set_config_option",
                b".",
                token,
                repo_token,
                url,
                b"stacked_on_location",
                b"",
            ),
            (
                "hello/lintian-fixes",
                b"Branch.set_config_option_dict",
                b".",
                token,
                repo_token,
                hostile.bencoded({b"x": url}),
                b"stacked_on_location",
                b"",
            ),
            (
                "hello",
                b"BzrDir.create_branch",
                b"lintian-fixes",
                BranchReferenceFormat().network_name(),
            ),
            (
                "hello",
                b"BzrDirFormat.initialize_ex_1.16",
                names["bzrdir"],
                b"fresh-releases",
                b"True",
                b"True",
                b"False",
                url,
                b"",
                names["repository"],
                b"False",
                b"False",
            ),
        ]:
            with self.subTest(verb=verb):
                reason = self.assertRefused(location, verb, *args)
                self.assertIn(b"not allowed in the store", reason)
        self.assertUnchanged()
