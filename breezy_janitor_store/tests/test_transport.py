"""The store transport: jail, layout enforcement, read-only, no disk paths."""

from __future__ import annotations

import os
import stat

from breezy import errors, urlutils
from breezy.transport import FileExists, NoSuchFile, Transport

from ..store.storage import Storage
from ..store.transport import StoreTransport
from .support.fixtures import StoreTestCase, tree_digest


class StoreTransportTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.storage = Storage(self.storage_dir)
        self.storage.ensure_repository("cb")
        with open(self.path("secret"), "w") as f:
            f.write("outside")
        self.disk = os.path.join(self.storage_dir, "cb")

    def transport(self, writable: bool = True) -> StoreTransport:
        return self.storage.transport(
            "cb",
            writable=writable,
            is_campaign=lambda n: n in ("lintian-fixes", "other"),
        )

    def test_every_transport_method_is_implemented_or_refuses(self) -> None:
        """Each public ``Transport`` method is implemented here, or listed as
        breezy's own composition of those (or refusal): nothing reaches the
        disk transport unchecked, and a new ``Transport`` method fails this."""
        self.assertIsInstance(self.transport(), Transport)
        self.assertEqual(StoreTransport.__bases__, (Transport,))
        public = {
            name
            for name, member in vars(Transport).items()
            if callable(member) and not name.startswith("_")
        }
        public |= {"_readv", "_redirected_to", "_can_roundtrip_unix_modebits"}
        own = set(vars(StoreTransport))
        self.assertEqual(public - own - StoreTransport.INHERITED, set())
        self.assertEqual(StoreTransport.INHERITED & own, set())
        self.assertEqual(StoreTransport.INHERITED - public, set())
        t = self.transport(writable=False)
        for name in ("local_abspath", "readlink"):
            with self.assertRaises((errors.NotLocalUrl, errors.TransportNotPossible)):
                getattr(t, name)("lintian-fixes")
        for name in ("symlink", "hardlink"):
            with self.assertRaises(errors.TransportNotPossible):
                getattr(self.transport(), name)("../secret", "lintian-fixes/x")

    def test_jail(self) -> None:
        t = self.transport()
        self.assertEqual(t.base, "janitor-store:///cb/")
        self.assertEqual(t.clone("../../..").base, t.base)
        self.assertEqual(
            t.clone("/lintian-fixes").base, "janitor-store:///cb/lintian-fixes/"
        )
        self.assertEqual(t.clone("lintian-fixes").clone("/").base, t.base)
        self.assertFalse(t.has("../secret"))
        self.assertFalse(t.has("/../../secret"))
        for path in [
            "%2e%2e/secret",
            "a/%2e%2e/%2e%2e/secret",
            "x%2f..%2fsecret",
            "a%00b",
            "file:%2F%2F%2Fetc%2Fpasswd",
        ]:
            with self.subTest(path=path), self.assertRaises(errors.PermissionDenied):
                t.get(path)
        for path in ["file:///etc/passwd", "http://x/y"]:
            with self.subTest(path=path), self.assertRaises(NoSuchFile):
                t.get(path)

    def test_a_symlink_planted_between_requests_is_refused(self) -> None:
        """A request remembers the directories it found real; the next
        request looks again."""
        first = self.transport(writable=False)
        branch = os.path.join(self.disk, "lintian-fixes")
        os.makedirs(os.path.join(branch, "sub"))
        with open(os.path.join(branch, "sub", "file"), "w") as f:
            f.write("inside")
        self.assertEqual(first.get_bytes("lintian-fixes/sub/file"), b"inside")
        os.rename(os.path.join(branch, "sub"), os.path.join(branch, "old"))
        os.symlink(self.tmp, os.path.join(branch, "sub"))
        os.rename(self.path("secret"), os.path.join(self.tmp, "file"))
        with self.assertRaises(errors.PermissionDenied):
            self.transport(writable=False).get_bytes("lintian-fixes/sub/file")

    def test_long_paths_are_resolved_and_not_kept(self) -> None:
        from ..store import paths

        t = self.transport()
        long = "/".join(["d" * 100] * 8)  # over MEMO_LIMIT
        kept = paths.resolve_kept
        kept.cache_clear()
        self.assertEqual(t.clone(long).base, "janitor-store:///cb/" + long + "/")
        self.assertEqual(kept.cache_info().currsize, 0)
        t.clone("lintian-fixes/.bzr")
        self.assertEqual(kept.cache_info().currsize, 1)
        self.assertEqual(kept((), "lintian-fixes/.bzr"), ("lintian-fixes", ".bzr"))
        for i in range(2 * paths.MEMO_SIZE):  # bounded
            t.clone(f"x{i}")
        self.assertLessEqual(kept.cache_info().currsize, paths.MEMO_SIZE)

    def test_reads_and_urls(self) -> None:
        t = self.transport(writable=False)
        self.assertTrue(t.is_readonly())
        self.assertIn(b"Bazaar", t.get_bytes(".bzr/branch-format"))
        self.assertIn(".bzr", t.list_dir("."))
        self.assertEqual(
            t.abspath("lintian-fixes/main/.bzr"),
            "janitor-store:///cb/lintian-fixes/main/.bzr",
        )
        self.assertEqual(
            t.clone("lintian-fixes").relpath("janitor-store:///cb/lintian-fixes/x"), "x"
        )
        self.assertRaises(errors.NoSmartMedium, t.get_smart_medium)

    def test_errors_name_virtual_paths_only(self) -> None:
        t = self.transport()
        with self.assertRaises(NoSuchFile) as cm:
            t.get("lintian-fixes/.bzr/branch-format")
        message = str(cm.exception)
        self.assertIn("/cb/lintian-fixes/.bzr/branch-format", message)
        self.assertNotIn(self.storage_dir, message)
        with self.assertRaises(errors.PathError) as cm:
            t.mkdir(".bzr/repository")
        self.assertNotIn(self.storage_dir, str(cm.exception))

    def test_read_only_refuses_every_write_and_changes_nothing(self) -> None:
        t = self.transport(writable=False)
        before = tree_digest(self.storage_dir)
        writes = [
            lambda: t.put_bytes(".bzr/repository/x", b"x"),
            lambda: t.mkdir("lintian-fixes"),
            lambda: t.rename(".bzr/repository/pack-names", ".bzr/repository/x"),
            lambda: t.delete(".bzr/repository/pack-names"),
            lambda: t.delete_tree(".bzr/repository"),
            lambda: t.rmdir(".bzr/repository/upload"),
            lambda: t.append_bytes(".bzr/repository/x", b"x"),
            lambda: t.open_write_stream(".bzr/repository/x"),
            lambda: t.lock_write(".bzr/repository/x"),
            lambda: t.put_file_non_atomic(".bzr/repository/x", None),
            lambda: t.copy(".bzr/repository/pack-names", ".bzr/repository/x"),
        ]
        for write in writes:
            with self.assertRaises(errors.TransportNotPossible) as cm:
                write()
            self.assertEqual(cm.exception.msg, "readonly transport")
        self.assertEqual(tree_digest(self.storage_dir), before)

    def test_layout_is_enforced_on_writes(self) -> None:
        t = self.transport()
        before = tree_digest(self.storage_dir)
        refused = [
            lambda: t.mkdir(".bzr/branch"),
            lambda: t.mkdir(".bzr/checkout"),
            lambda: t.put_bytes("README", b"x"),
            lambda: t.mkdir("unknown"),
            lambda: t.mkdir("Bad_Name"),
            lambda: t.mkdir("lintian-fixes/.bzr/repository"),
            lambda: t.put_bytes("lintian-fixes/notes.txt", b"x"),
            lambda: t.mkdir("lintian-fixes/upstream/deeper"),
            lambda: t.mkdir("lintian-fixes/main/main"),
            lambda: t.rename(".bzr/repository/pack-names", "lintian-fixes/x"),
            lambda: t.delete_tree("lintian-fixes"),
        ]
        for write in refused:
            with self.assertRaises(errors.PermissionDenied):
                write()
        for link in (t.symlink, t.hardlink):
            with self.assertRaises(errors.TransportNotPossible):
                link("/etc/passwd", "lintian-fixes/.bzr/x")
        self.assertEqual(tree_digest(self.storage_dir), before)

    def test_layout_directories_are_implicit_where_writable(self) -> None:
        t = self.transport()
        self.assertTrue(stat.S_ISDIR(t.stat("lintian-fixes").st_mode))
        self.assertEqual(t.list_dir("lintian-fixes/upstream"), [])
        self.assertFalse(t.has("lintian-fixes"))
        self.assertFalse(os.path.exists(os.path.join(self.disk, "lintian-fixes")))
        self.assertRaises(
            NoSuchFile, self.transport(writable=False).stat, "lintian-fixes"
        )
        self.assertRaises(NoSuchFile, t.stat, "unknown")
        # creating a role's control directory creates the layout around it
        t.mkdir("lintian-fixes/upstream/.bzr")
        self.assertTrue(
            os.path.isdir(os.path.join(self.disk, "lintian-fixes", "upstream", ".bzr"))
        )
        # an existing but empty layout directory counts as absent for mkdir
        t.mkdir("other")
        t.mkdir("other")
        with self.assertRaises(FileExists):
            t.mkdir("lintian-fixes/upstream/.bzr")

    def test_main_role_maps_to_the_campaign(self) -> None:
        t = self.transport()
        t.mkdir("lintian-fixes/main/.bzr")
        self.assertTrue(os.path.isdir(os.path.join(self.disk, "lintian-fixes", ".bzr")))
        self.assertTrue(t.clone("lintian-fixes/main").clone("..").has(".bzr"))

    def test_disk_transport_is_never_exposed(self) -> None:
        t = self.transport()
        self.assertRaises(errors.InProcessTransport, t.external_url)
        for value in (t.base, t.abspath("x"), t.clone("lintian-fixes").base):
            self.assertNotIn(self.storage_dir, urlutils.unescape(value))
