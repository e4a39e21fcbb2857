"""Plain HTTP reads: directories and ``.bzr`` files, as a stock client makes
them over ``http://`` (``nosmart+http://``: without the smart server)."""

from __future__ import annotations

import io
import os

from breezy.branch import Branch
from breezy.transport.http import response

from ..policy.policies import CodebaseList
from .support.auth import basic
from .support.fixtures import (
    PASSWORD,
    WORKER,
    StoreTestCase,
    brz,
    http_request,
    tree_digest,
)
from .support.routes import head_then_get


class PlainHttpTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=["lintian-fixes"])
        self.work = self.make_branch(revisions=3)
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            cwd=self.work,
        )
        brz(
            "push",
            "-q",
            self.smart_url(self.store.admin, "hello/lintian-fixes/upstream"),
            cwd=self.work,
        )
        brz(
            "tag",
            "-q",
            "-d",
            self.smart_url(self.store.admin, "hello/lintian-fixes"),
            "v1",
        )
        self.tip = Branch.open(self.work).last_revision()

    def test_branch_without_the_smart_server(self) -> None:
        """``nosmart+http://``: every read is a plain GET of a ``.bzr`` file."""
        before = tree_digest(self.storage_dir)
        for n, url in enumerate(
            (
                f"nosmart+{self.store.public}/hello/lintian-fixes",
                f"nosmart+{self.store.public}/hello/lintian-fixes/upstream",
                f"nosmart+{self.store.admin}/hello/lintian-fixes",
                f"nosmart+{self.store.admin}/hello/lintian-fixes/main",
            )
        ):
            with self.subTest(url=url):
                copy = self.path(f"copy{n}")
                brz("branch", "-q", url, copy)
                self.assertEqual(Branch.open(copy).last_revision(), self.tip)
        tags = brz("tags", "-d", f"nosmart+{self.store.public}/hello/lintian-fixes")
        self.assertIn(b"v1", tags.stdout)
        self.assertEqual(tree_digest(self.storage_dir), before)

    def test_http_url_reads(self) -> None:
        copy = self.path("copy")
        brz("branch", "-q", f"{self.store.public}/hello/lintian-fixes", copy)
        self.assertEqual(Branch.open(copy).last_revision(), self.tip)

    def test_head_of_directories_with_and_without_slash(self) -> None:
        """``Transport.has`` of a layout directory: 200, no body, no redirect.
        A missing role directory, or codebase, exists where a writer may
        create it (the admin face), not on the read-only public face."""
        for base, prefix, missing in (
            (self.store.admin, "", 200),
            (self.store.public_root, "/bzr", 404),
        ):
            for path, status in (
                ("/hello", 200),
                ("/hello/", 200),
                ("/hello/lintian-fixes", 200),
                ("/hello/lintian-fixes/", 200),
                ("/hello/lintian-fixes/upstream", 200),
                ("/hello/lintian-fixes/main/", 200),
                ("/hello/lintian-fixes/nothing/", missing),
                ("/hello/unknown/", 404),
                ("/nothing/", missing),
            ):
                with self.subTest(base=base, path=path):
                    head, rest = head_then_get(base, prefix + path)
                    self.assertTrue(
                        head.startswith(f"HTTP/1.1 {status} ".encode()), head
                    )
                    self.assertNotIn(b"\r\nLocation:", head)
                    self.assertTrue(
                        rest.startswith(f"HTTP/1.1 {status} ".encode()), rest[:80]
                    )

    def test_admin_directory_lists_names(self) -> None:
        status, headers, body = http_request(self.store.admin + "/hello/lintian-fixes/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        self.assertEqual(body, b".bzr/\nupstream/\n")

    def test_options_is_answered_not_redirected(self) -> None:
        for url in (
            self.store.public + "/hello/lintian-fixes",
            self.store.public + "/hello/lintian-fixes/.bzr/branch-format",
            self.store.admin + "/hello",
            self.store.public + "",
        ):
            with self.subTest(url=url):
                status, headers, _ = http_request(url, method="OPTIONS")
                self.assertEqual(status, 200)
                self.assertEqual(headers["Allow"], "GET, HEAD")
        self.assertEqual(
            http_request(self.store.public + "/hello/.bzr/smart", method="OPTIONS")[1][
                "Allow"
            ],
            "POST",
        )

    def test_control_files(self) -> None:
        on_disk = os.path.join(self.storage_dir, "hello", "lintian-fixes", ".bzr")
        with open(os.path.join(on_disk, "branch", "last-revision"), "rb") as f:
            last_revision = f.read()
        for url in (
            self.store.public + "/hello/lintian-fixes/.bzr/branch/last-revision",
            self.store.admin + "/hello/lintian-fixes/main/.bzr/branch/last-revision",
        ):
            with self.subTest(url=url):
                status, headers, body = http_request(url)
                self.assertEqual((status, body), (200, last_revision))
                self.assertEqual(headers["Content-Length"], str(len(last_revision)))
        status, headers, body = http_request(
            self.store.public + "/hello/lintian-fixes/.bzr/branch/last-revision",
            headers={"Range": "bytes=2-5"},
        )
        self.assertEqual((status, body), (206, last_revision[2:6]))
        self.assertEqual(headers["Content-Range"], f"bytes 2-5/{len(last_revision)}")
        # the shared repository's control files
        status, _, body = http_request(
            self.store.public + "/hello/.bzr/repository/format"
        )
        self.assertEqual((status, body[:19]), (200, b"Bazaar repository f"))
        status, _, body = http_request(self.store.public + "/hello/.bzr/repository/")
        self.assertIn(b"pack-names\n", body)

    def test_byte_ranges_as_breezy_reads_them(self) -> None:
        """Several ranges are one ``multipart/byteranges`` answer that
        breezy's own HTTP response reader takes apart."""
        path = "/hello/lintian-fixes/.bzr/branch/last-revision"
        with open(
            os.path.join(
                self.storage_dir,
                "hello",
                "lintian-fixes",
                ".bzr",
                "branch",
                "last-revision",
            ),
            "rb",
        ) as f:
            data = f.read()
        url = self.store.public + path
        for spec, wanted in (
            ("bytes=0-1,4-6", [(0, 2), (4, 3)]),
            ("bytes=2-", [(2, len(data) - 2)]),
            ("bytes=-3", [(len(data) - 3, 3)]),
            ("bytes=1-2,99999-", [(1, 2)]),
        ):
            with self.subTest(spec=spec):
                status, headers, body = http_request(url, headers={"Range": spec})
                self.assertEqual(status, 206)
                headers = {k.lower(): v for k, v in headers.items()}
                ranged = response.handle_response(
                    url, status, headers.get, io.BytesIO(body)
                )
                for offset, length in wanted:
                    ranged.seek(offset)
                    self.assertEqual(
                        ranged.read(length), data[offset : offset + length]
                    )
        for spec in (
            "bytes=x-y",
            "lines=1-2",
            "bytes=" + ",".join(["0-0"] * 201),
            "bytes=0-,0-",  # overlapping: never more than the file
        ):
            with self.subTest(spec=spec[:20]):
                status, _, body = http_request(url, headers={"Range": spec})
                self.assertEqual((status, body), (200, data))

    def test_control_file_refusals(self) -> None:
        for path, status in (
            ("/hello/lintian-fixes/.bzr/no-such-file", 404),
            ("/hello/unknown/.bzr/branch-format", 404),
            ("/nothing/.bzr/branch-format", 404),
            ("/hello/lintian-fixes/README", 404),
            ("/hello/lintian-fixes/.bzr/../../.bzr/repository/format", 400),
            ("/hello/lintian-fixes/.bzr/%2e%2e/x", 400),
        ):
            with self.subTest(path=path):
                code, _, body = http_request(self.store.public + path)
                self.assertEqual(code, status, body)
                self.assertNotIn(self.storage_dir.encode(), body)
        status, _, _ = http_request(
            self.store.public + "/hello/lintian-fixes/.bzr/branch/last-revision",
            headers={"Range": "bytes=9999-"},
        )
        self.assertEqual(status, 416)

    def test_range_numbers_of_thousands_of_digits(self) -> None:
        """Numbers longer than any file size are past its end, never a 500."""
        url = self.store.public + "/hello/lintian-fixes/.bzr/branch/last-revision"
        with open(
            os.path.join(
                self.storage_dir,
                "hello",
                "lintian-fixes",
                ".bzr",
                "branch",
                "last-revision",
            ),
            "rb",
        ) as f:
            data = f.read()
        huge = "9" * 5000
        for spec, wanted in (
            (f"bytes={huge}-", (416, b"")),
            (f"bytes=0{huge}-1", (416, b"")),
            (f"bytes=0-{huge}", (206, data)),
            (f"bytes=-{huge}", (206, data)),
            (f"bytes={'0' * 5000}1-2", (206, data[1:3])),
        ):
            with self.subTest(spec=spec[:12]):
                status, _, body = http_request(url, headers={"Range": spec})
                self.assertEqual(status, wanted[0], body[:80])
                if wanted[1]:
                    self.assertEqual(body, wanted[1])


class ImplicitDirectoryTests(StoreTestCase):
    """A codebase the policy lists, not on disk yet, and its campaigns exist
    where a worker may create them (the worker's ``has('.')`` probe)."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store_with_worker(
            campaigns=["lintian-fixes"], codebase_policy=CodebaseList(["hello"])
        )

    def test_listed_codebase_not_on_disk(self) -> None:
        for base in (self.store.admin, self.store.public):
            for path, status in (
                ("/hello/", 200),
                ("/hello/lintian-fixes", 200),
                ("/hello/lintian-fixes/upstream/", 200),
                ("/hello/other/", 404),
                ("/other/", 404),
                ("/hello/lintian-fixes/.bzr/branch-format", 404),
            ):
                with self.subTest(base=base, path=path):
                    self.assertEqual(
                        http_request(base + path, method="HEAD")[0], status
                    )
        self.assertEqual(os.listdir(self.storage_dir), [])

    def test_without_writers_only_what_is_on_disk(self) -> None:
        store = self.start_store(
            campaigns=["lintian-fixes"], codebase_policy=CodebaseList(["hello"])
        )
        for path in ("/hello/", "/hello/lintian-fixes/", "/hello/lintian-fixes/x1/"):
            self.assertEqual(http_request(store.public + path, method="HEAD")[0], 404)


class WriterOnlyCodebaseTests(StoreTestCase):
    """Without a codebase list (credentials, no database), a codebase not on
    disk is a directory only to a writer of the request: the worker's
    ``has('.')`` probe before it creates one over plain ``http://``."""

    PATHS = (
        "/nothing",
        "/nothing/",
        "/nothing/lintian-fixes",
        "/nothing/debian/main/",
    )

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store_with_worker(campaigns=["lintian-fixes", "debian"])

    def test_writer_sees_the_directories_it_may_create(self) -> None:
        good = basic(WORKER, PASSWORD)
        for path in self.PATHS:
            for method in ("HEAD", "GET"):
                with self.subTest(path=path, method=method):
                    status, _, body = http_request(
                        self.store.public + path, method=method, headers=good
                    )
                    self.assertEqual(status, 200, body)
        for path, status in (
            ("/nothing/unknown/", 404),
            ("/nothing/lintian-fixes/.bzr/branch-format", 404),
            ("/Nothing/", 404),
        ):
            with self.subTest(path=path):
                got = http_request(self.store.public + path, headers=good)[0]
                self.assertEqual(got, status)
        self.assertEqual(os.listdir(self.storage_dir), [])

    def test_anonymous_get_is_404_and_head_is_challenged(self) -> None:
        for path in self.PATHS:
            with self.subTest(path=path):
                status, _, body = http_request(self.store.public + path)
                self.assertEqual((status, body), (404, b"no such codebase: nothing\n"))
                status, headers, _ = http_request(
                    self.store.public + path, method="HEAD"
                )
                self.assertEqual(status, 401)
                self.assertTrue(headers["WWW-Authenticate"].startswith("Basic "))
                wrong = basic(WORKER, "wrong")
                status = http_request(
                    self.store.public + path, method="HEAD", headers=wrong
                )[0]
                self.assertEqual(status, 401)
        self.assertEqual(os.listdir(self.storage_dir), [])

    def test_without_a_challenge_only_what_is_on_disk(self) -> None:
        """A read-only public face (no writers) never challenges."""
        store = self.start_store(campaigns=["lintian-fixes"])
        for method in ("HEAD", "GET"):
            with self.subTest(method=method):
                status = http_request(store.public + "/nothing/", method=method)[0]
                self.assertEqual(status, 404)
