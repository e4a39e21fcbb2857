"""Branch references, stacking and bound branches never lead the store out.

Written through the real smart protocol they are refused; planted on disk
(as if left by an older store) the API and the browse pages show them as
such and never follow them: listening sockets standing in for every kind of
location see no connection, and the foreign branch's data never shows.
The transport also keeps what a push never changes: format files, and pack
data other than its retirement to ``obsolete_packs``.
"""

from __future__ import annotations

import io
import os
import socket
import urllib.parse

from breezy import errors
from breezy.branch import Branch
from breezy.bzr.branch import BranchReferenceFormat
from breezy.controldir import ControlDir

from ..store.storage import Storage
from .support import hostile
from .support.fixtures import brz, http_request, tree_digest
from .support.hostile_case import CAMPAIGNS, TRIED, HostileTestCase

REFERENCE = BranchReferenceFormat().as_string()


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    s.setblocking(False)
    return s


def _accepted(s: socket.socket) -> int:
    """Connections ``s`` received (a connect completes on the backlog)."""
    count = 0
    while True:
        try:
            conn, _ = s.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


class WrittenReferenceTests(HostileTestCase):
    """A writer cannot make a branch a reference, stacked or bound."""

    def vfs(self, verb: bytes, *args: bytes, body: bytes | None = None) -> bytes:
        return self.smart_post(
            f"{self.store.admin}/hello/.bzr/smart",
            hostile.encode_request(verb, *args, body=body),
        )

    def test_vfs_writes_are_refused(self) -> None:
        conf = b"lintian-fixes/.bzr/branch/branch.conf"
        # a fresh branch directory, made as a client making a branch would
        for path in (b"fresh-releases", b"fresh-releases/.bzr"):
            self.vfs(b"mkdir", path, b"")
        self.vfs(
            b"put",
            b"fresh-releases/.bzr/branch-format",
            b"",
            body=b"Bazaar-NG meta directory, format 1\n",
        )
        self.vfs(b"mkdir", b"fresh-releases/.bzr/branch", b"")
        self.before = tree_digest(self.storage_dir)
        url = b"file://" + self.path("foreign").encode()
        writes = [
            (b"put", b"fresh-releases/.bzr/branch/format", b"", REFERENCE),
            (b"put", b"fresh-releases/.bzr/branch/location", b"", url),
            (b"put", b"lintian-fixes/.bzr/branch/format", b"", REFERENCE),
            (b"put", b"lintian-fixes/.bzr/branch/location", b"", url),
            (b"put", b"lintian-fixes/.bzr/branch/bound", b"", url),
            (b"put", conf, b"", b"stacked_on_location = " + url + b"\n"),
            (b"put", conf, b"", b"stacked_on_location = /hello/other\n"),
            (b"put", conf, b"", b"bound_location = " + url + b"\nbound = True\n"),
            (b"put", conf, b"", b"bound = True\n"),
            (b"put", conf, b"", b"[x\n"),
            (b"append", conf, b"", b"stacked_on_location = " + url + b"\n"),
            (b"rename", b"lintian-fixes/.bzr/branch/tags", conf, None),
            (
                b"rename",
                b"lintian-fixes/.bzr/branch/tags",
                conf[:-11] + b"format",
                None,
            ),
        ]
        for verb, *args, body in writes:
            with self.subTest(verb=verb, args=args, body=body):
                TRIED["jail"] += 1
                raw = self.vfs(verb, *args, body=body)
                self.assertSmartRefusal(raw, (verb, args))
        self.assertUnchanged()

    def test_with_the_breezy_api(self) -> None:
        remote = Branch.open(self.smart_url(self.store.admin, "hello/lintian-fixes"))
        url = "file://" + self.path("foreign")
        for option in ("stacked_on_location", "bound_location"):
            with self.subTest(option=option):
                with self.assertRaises(Exception) as caught:
                    remote.get_config().set_user_option(option, url)
                self.assertIn("not allowed in the store", str(caught.exception))
        self.assertUnchanged()

    def test_format_files_and_pack_data_never_change(self) -> None:
        packs = os.listdir(
            os.path.join(self.storage_dir, "hello/.bzr/repository/packs")
        )
        pack = packs[0].encode()
        name = pack[: -len(b".pack")]
        writes = [
            (b"delete", b"lintian-fixes/.bzr/branch-format"),
            (b"delete", b"lintian-fixes/.bzr/branch/format"),
            (b"delete", b"lintian-fixes/upstream/.bzr/branch-format"),
            (b"put", b"lintian-fixes/.bzr/branch-format", b"", b"x"),
            (b"put", b"lintian-fixes/.bzr/branch/format", b"", b"x"),
            (b"rename", b"lintian-fixes/.bzr/branch-format", b"lintian-fixes/.bzr/x"),
            (b"delete", b".bzr/repository/packs/" + pack),
            (b"delete", b"lintian-fixes/../.bzr/repository/packs/" + pack),
            (b"delete", b".bzr/repository/indices/" + name + b".rix"),
            (b"put", b".bzr/repository/packs/" + pack, b"", b"garbage"),
            (b"put", b".bzr/repository/indices/" + name + b".rix", b"", b"garbage"),
            (b"append", b".bzr/repository/packs/" + pack, b"", b"garbage"),
            (b"rename", b".bzr/repository/packs/" + pack, b".bzr/repository/upload/x"),
            (
                b"rename",
                b".bzr/repository/indices/" + name + b".rix",
                b".bzr/repository/obsolete_packs/x.rix",
            ),
        ]
        for verb, *args in writes:
            body = args.pop() if verb in (b"put", b"append") else None
            with self.subTest(verb=verb, args=args):
                TRIED["jail"] += 1
                raw = self.vfs(verb, *args, body=body)
                self.assertSmartRefusal(raw, (verb, args))
        self.assertUnchanged()


class TransportInvariantTests(HostileTestCase):
    """The same refusals at the transport, whoever calls it (a smart verb,
    breezy's own code on the server's behalf): nothing on disk changes."""

    def test_refused_at_the_transport(self) -> None:
        t = Storage(self.storage_dir).transport(
            "hello", writable=True, is_campaign=CAMPAIGNS.__contains__
        )
        repo = os.path.join(self.storage_dir, "hello", ".bzr", "repository")
        pack = os.listdir(os.path.join(repo, "packs"))[0]
        index = pack[: -len(".pack")] + ".rix"
        with open(os.path.join(repo, "indices", index), "rb") as f:
            index_bytes = f.read()
        url = "file://" + self.path("foreign")
        branch = "lintian-fixes/.bzr/branch/"
        refused = [
            ("put_bytes", branch + "format", REFERENCE),
            ("put_bytes", branch + "location", url.encode()),
            ("put_bytes", branch + "bound", url.encode()),
            ("put_bytes", branch + "branch.conf", b"stacked_on_location = x\n"),
            ("put_bytes", branch + "branch.conf", b"bound = True\n"),
            ("put_file", branch + "branch.conf", io.BytesIO(b"bound_location = x\n")),
            ("append_bytes", branch + "branch.conf", b"x = y\n"),
            ("open_write_stream", branch + "location"),
            ("put_bytes", "lintian-fixes/.bzr/branch-format", b"x"),
            ("delete", "lintian-fixes/.bzr/branch-format"),
            ("delete", branch + "format"),
            ("rename", branch + "format", branch + "x"),
            ("rename", branch + "tags", branch + "branch.conf"),
            ("delete_tree", "lintian-fixes/.bzr/branch"),
            ("delete_tree", "lintian-fixes/.bzr"),
            ("delete", ".bzr/repository/packs/" + pack),
            ("delete", ".bzr/repository/indices/" + index),
            ("delete_tree", ".bzr/repository/packs"),
            ("put_bytes", ".bzr/repository/indices/" + index, b"other"),
            ("append_bytes", ".bzr/repository/packs/" + pack, b"more"),
            ("rename", ".bzr/repository/packs/" + pack, ".bzr/repository/upload/x"),
            (
                "move",
                ".bzr/repository/packs/" + pack,
                ".bzr/repository/obsolete_packs/y",
            ),
            (
                "rename",
                ".bzr/repository/obsolete_packs",
                ".bzr/repository/packs/" + pack,
            ),
        ]
        for method, *args in refused:
            with self.subTest(method=method, args=args[:1]):
                TRIED["jail"] += 1
                with self.assertRaises(errors.PermissionDenied):
                    getattr(t, method)(*args)
        # a stream over existing pack data with other content: refused at close
        stream = t.open_write_stream(".bzr/repository/indices/" + index)
        stream.write(b"other")
        with self.assertRaises(errors.PermissionDenied):
            stream.close()
        self.assertUnchanged()
        # identical content (two pushes of the same revisions) is accepted
        stream = t.open_write_stream(".bzr/repository/indices/" + index)
        stream.write(index_bytes)
        stream.close()
        t.put_bytes(".bzr/repository/indices/" + index, index_bytes)
        t.put_bytes(branch + "branch.conf", b"parent_location = https://example.org/\n")
        self.assertEqual(os.listdir(os.path.join(repo, "upload")), [])


class PlantedReferenceTests(HostileTestCase):
    """References and stacking found on disk are shown, never followed."""

    def setUp(self) -> None:
        super().setUp()
        foreign = ControlDir.create_standalone_workingtree(self.path("foreign"))
        for i in range(5):
            foreign.commit("foreign", rev_id=f"foreign-rev-{i}".encode())
        foreign.branch.tags.set_tag("FOREIGN-TAG", b"foreign-rev-4")
        self.listeners = [_listener() for _ in range(3)]
        for s in self.listeners:
            self.addCleanup(s.close)
        http_port, ssh_port, bzr_port = (s.getsockname()[1] for s in self.listeners)
        self.targets = {
            "file": "file://" + urllib.parse.quote(self.path("foreign")) + "/",
            "other codebase": "file://"
            + urllib.parse.quote(
                os.path.join(self.storage_dir, "other", "lintian-fixes")
            ),
            "http": f"http://127.0.0.1:{http_port}/x/",
            "bzr+ssh": f"bzr+ssh://127.0.0.1:{ssh_port}/x/",
            "bzr+http": f"bzr+http://127.0.0.1:{bzr_port}/x/",
            "the store itself": self.store.public + "/hello/lintian-fixes",
        }
        server = self.store._servers[1]  # the public face
        self.public_connections = 0
        accept = server.process_request

        def counting(request, client_address) -> None:
            self.public_connections += 1
            accept(request, client_address)

        server.process_request = counting

    def plant(self, target: str) -> None:
        branch = os.path.join(self.storage_dir, "hello", "lintian-fixes")
        with open(os.path.join(branch, "upstream/.bzr/branch/format"), "wb") as f:
            f.write(REFERENCE)
        with open(os.path.join(branch, "upstream/.bzr/branch/location"), "w") as f:
            f.write(target)
        with open(os.path.join(branch, ".bzr/branch/branch.conf"), "w") as f:
            f.write(f"stacked_on_location = {target}\n")
        self.before = tree_digest(self.storage_dir)

    def ssh_children(self) -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and "ssh" in comm:
                found.append(comm)
        return found

    def check_pages(self, what: str) -> None:
        admin, public = self.store.admin, self.store.public_root
        tip = self.tip.decode()
        pages = [
            (public + "/bzr/hello/", 200),
            (public + "/bzr/", 200),
            (public + "/bzr/hello/lintian-fixes/", 409),
            (public + "/bzr/hello/lintian-fixes/main/", 409),
            (public + "/bzr/hello/lintian-fixes/upstream/", 409),
            (public + "/bzr/hello/+revision/" + tip, 200),
            (admin + "/hello/revision-info?old=null:&new=" + tip, 200),
            (admin + "/hello/diff?old=null:&new=" + tip, 200),
            (admin + "/hello/locks", 200),
        ]
        for url, expected in pages:
            with self.subTest(target=what, url=url):
                TRIED["jail"] += 1
                status, _, body = http_request(url)
                self.assertEqual(status, expected, body[:300])
                self.assertClean(body, url)
                self.assertNotIn(b"foreign-rev", body)
                self.assertNotIn(b"FOREIGN-TAG", body)
                if url.endswith("/bzr/hello/"):
                    for shown in (b"branch reference", b"stacked branch"):
                        self.assertTrue(shown + b": not followed" in body, shown)
        # breezy's smart verbs hand a client neither location
        for location, what_it_is in (
            ("hello/lintian-fixes/upstream", b"is a branch reference"),
            ("hello/lintian-fixes", b"is a stacked branch"),
        ):
            with self.subTest(target=what, smart=location):
                TRIED["jail"] += 1
                url = self.smart_url(self.store.public, location)
                proc = brz("revno", url, check=False, timeout=60)
                self.assertNotEqual(proc.returncode, 0)
                self.assertIn(what_it_is, proc.stderr)
                self.assertCleanCLI(proc, location)
        with self.subTest(target=what, url="remotes"):
            TRIED["jail"] += 1
            status, _, body = http_request(
                f"{admin}/hello/remotes/lintian-fixes",
                b"url=https://example.org/x",
                "POST",
                {"Content-Type": "application/x-www-form-urlencoded"},
            )
            self.assertEqual(status, 409, body)

    def test_never_followed(self) -> None:
        foreign = tree_digest(self.path("foreign"))
        for what, target in self.targets.items():
            self.plant(target)
            self.public_connections = 0
            self.check_pages(what)
            # only the test's own requests reached the public face (a brz
            # client: a connection or two each)
            self.assertLessEqual(self.public_connections, 10, what)
            self.assertEqual([_accepted(s) for s in self.listeners], [0, 0, 0], what)
            self.assertEqual(self.ssh_children(), [], what)
            self.assertEqual(tree_digest(self.storage_dir), self.before, what)
        self.assertEqual(tree_digest(self.path("foreign")), foreign)
        for base in (self.store.admin, self.store.public_root):
            self.assertEqual(http_request(base + "/health")[::2], (200, b"ok"))
