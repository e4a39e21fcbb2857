"""Property-based fuzzing (hypothesis) of path parsing and path checks.

Brief by default (CI); ``FUZZ_EXAMPLES=N`` runs N examples per property,
with fresh randomness each run (the default run is derandomized, so CI is
reproducible).  The properties:

* the URL location parser accepts exactly ``[a-z0-9][a-z0-9+.-]+`` names,
  one to three of them;
* the store transport's path resolution never leaves the codebase, on
  paper (segments) and on disk (no read returns a secret kept outside, no
  write lands outside or where the layout forbids);
* the WSGI application answers any request path with a refusal or a
  result, never an internal error, and changes nothing on disk.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from wsgiref.util import setup_testing_defaults

from breezy import errors
from breezy.transport import NoSuchFile

from ..store import layout
from ..store.storage import Storage
from ..web.app import ADMIN, PUBLIC, StoreApp
from .support import hostile
from .support.features import HYPOTHESIS, require_module
from .support.fixtures import StoreTestCase, tree_digest

require_module(HYPOTHESIS)

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_EXAMPLES = os.environ.get("FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES or 150),
    deadline=None,
    derandomize=_EXAMPLES is None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: Pieces hostile paths are made of.
TOKENS = [
    "hello",
    "lintian-fixes",
    "upstream",
    "main",
    ".bzr",
    "branch",
    "repository",
    "checkout",
    "packs",
    "/",
    "//",
    ".",
    "..",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "%00",
    "%25",
    "%",
    "\\",
    "\x00",
    "~",
    "file:",
    "http://x",
    "secret",
    "other",
    "A",
    "-",
    "+",
    "_",
    " ",
    "\n",
    "\u2215",  # division slash
    "\uff0f",  # fullwidth solidus
    "\u2024",  # one dot leader
    "\u0435",  # Cyrillic e
    "\udcff",  # lone surrogate
]
hostile_paths = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=12).map("".join),
    st.text(max_size=40),
)
NAME = layout.NAME_RE


class LocationParsingTests(StoreTestCase):
    @FUZZ
    @given(hostile_paths)
    def test_parse_location(self, path: str) -> None:
        try:
            location = layout.parse_location(path)
        except layout.InvalidName:
            parts = path.split("/")
            self.assertFalse(
                1 <= len(parts) <= 3 and all(layout.is_valid_name(p) for p in parts)
            )
            return
        parts = [location.codebase, *location.segments]
        self.assertEqual("/".join(parts), path)
        for part in parts:
            self.assertRegex(part, NAME)
            self.assertLessEqual(len(part), layout.MAX_NAME_LENGTH)
            self.assertTrue(part.isascii())


class TransportPathTests(StoreTestCase):
    """The transport's checks, on paper and against a real directory."""

    def setUp(self) -> None:
        super().setUp()
        self.storage = Storage(self.storage_dir)
        for codebase in ("hello", "other"):
            self.storage.ensure_repository(codebase)
        self.codebase = os.path.join(self.storage_dir, "hello")
        os.makedirs(os.path.join(self.codebase, "lintian-fixes", ".bzr", "branch"))
        self.secrets = {
            self.path("secret"): b"OUTSIDE",
            os.path.join(self.storage_dir, "secret"): b"TOP",
            os.path.join(self.storage_dir, "other", "secret"): b"OTHER",
        }
        for path, content in self.secrets.items():
            with open(path, "wb") as f:
                f.write(content)
        self.outside = self.digest_outside()

    def digest_outside(self) -> dict:
        return {
            "other": tree_digest(os.path.join(self.storage_dir, "other")),
            "top": sorted(os.listdir(self.storage_dir)),
            "tmp": sorted(os.listdir(self.tmp)),
        }

    def transport(self, writable: bool, start: str = ""):
        t = self.storage.transport(
            "hello", writable=writable, is_campaign=lambda n: n == "lintian-fixes"
        )
        return t.clone(start) if start else t

    @FUZZ
    @given(
        st.sampled_from(["", "lintian-fixes", "lintian-fixes/upstream"]), hostile_paths
    )
    def test_resolution_stays_in_the_jail(self, start: str, relpath: str) -> None:
        t = self.transport(False, start)
        try:
            segments = t._resolve(relpath)
        except errors.PermissionDenied:
            return
        for s in segments:
            self.assertNotIn(s, ("", ".", ".."))
            self.assertNotIn("/", s)
            self.assertNotIn("\x00", s)
        disk = os.path.normpath(os.path.join(self.codebase, *layout.to_disk(segments)))
        self.assertTrue(
            disk == self.codebase or disk.startswith(self.codebase + os.sep)
        )
        self.assertTrue(t.clone(relpath).base.startswith("janitor-store:///hello/"))
        self.assertTrue(t.abspath(relpath).startswith("janitor-store:///hello/"))

    @FUZZ
    @given(hostile_paths)
    def test_reads_never_reach_a_secret(self, relpath: str) -> None:
        t = self.transport(False)
        for read in (t.get_bytes, t.stat, t.list_dir, t.has):
            try:
                result = read(relpath)
            except (errors.PathError, errors.TransportError, NoSuchFile, UnicodeError):
                continue
            except IsADirectoryError:
                continue
            text = repr(result).encode()
            for secret in self.secrets.values():
                self.assertNotIn(secret, text, (read.__name__, relpath))

    @FUZZ
    @given(st.sampled_from(["", "lintian-fixes"]), hostile_paths)
    def test_writes_land_where_the_layout_allows(
        self, start: str, relpath: str
    ) -> None:
        t = self.transport(True, start)
        before = set(_files(self.codebase))
        for write in ("put_bytes", "mkdir", "append_bytes"):
            try:
                if write == "mkdir":
                    t.mkdir(relpath)
                else:
                    getattr(t, write)(relpath, b"x")
            except (errors.PathError, errors.TransportError, NoSuchFile, UnicodeError):
                continue
            except (IsADirectoryError, NotADirectoryError):
                continue
        created = set(_files(self.codebase)) - before
        for path in created:
            segments = tuple(os.path.relpath(path, self.codebase).split(os.sep))
            dir_op = os.path.isdir(path)
            self.assertIsNone(
                layout.write_refusal(segments, lambda n: n == "lintian-fixes", dir_op),
                (relpath, path),
            )
        for path in sorted(created, reverse=True):
            (os.rmdir if os.path.isdir(path) else os.remove)(path)
        self.assertEqual(self.digest_outside(), self.outside)
        for path, content in self.secrets.items():
            with open(path, "rb") as f:
                self.assertEqual(f.read(), content)


def _files(top: str) -> list[str]:
    out = []
    for root, dirs, files in os.walk(top):
        out += [os.path.join(root, n) for n in dirs + files]
    return out


class RequestPathTests(StoreTestCase):
    """The whole WSGI application on arbitrary request targets."""

    def setUp(self) -> None:
        super().setUp()
        self.storage = Storage(self.storage_dir)
        self.storage.ensure_repository("hello")
        self.apps = {
            ADMIN: StoreApp(
                face=ADMIN, storage=self.storage, campaigns=["lintian-fixes"]
            ),
            PUBLIC: StoreApp(
                face=PUBLIC, storage=self.storage, campaigns=["lintian-fixes"]
            ),
        }
        self.scratch = tempfile.mkdtemp(prefix="bjs-fuzz-")
        self.addCleanup(shutil.rmtree, self.scratch, True)

    def call(
        self, face: str, method: str, target: str, body: bytes
    ) -> tuple[str, bytes]:
        path = target.split("?", 1)[0]
        try:  # as a server decodes the target
            from urllib.parse import unquote

            path_info = unquote(path)
        except UnicodeError:
            path_info = path
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path_info,
            "REQUEST_URI": target,
            "QUERY_STRING": target.partition("?")[2],
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "192.0.2.1",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
        }
        setup_testing_defaults(environ)
        status = []

        def start_response(s, headers, exc_info=None):
            status.append(s)
            return lambda data: None

        app = self.apps[face]
        result = app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        return status[0], data

    @FUZZ
    @given(
        st.sampled_from([ADMIN, PUBLIC]),
        st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE"]),
        hostile_paths,
        st.sampled_from(
            ["/.bzr/smart", "/locks", "/", "", "/diff"]
            + ["/+tree/", "/+file/x?rev=null:", "/+raw/a/b?rev=x", "/+tarball?rev=x"]
            + ["/+annotate/%FF?rev=x", "/+log/x?rev=x&page=0", "/+compare/a..b"]
            + ["/lintian-fixes/+atom", "/+atom", "/?page=-1", "/+tree/x?rev=%00"]
            + ["/+children/x", "/+children/%FF%00", "/+children/null:"]
        ),
        st.sampled_from([b"", hostile.encode_request(b"hello"), b"\x00" * 7]),
    )
    def test_any_target(self, face, method, path, suffix, body) -> None:
        prefix = "/bzr/" if face == PUBLIC else "/"
        target = prefix + path.replace("?", "%3f").replace("#", "%23") + suffix
        before = tree_digest(self.storage_dir) if face == PUBLIC else None
        status, data = self.call(face, method, target, body)
        code = int(status.split()[0])
        self.assertLess(code, 500, (target, status, data[:200]))
        self.assertEqual(hostile.leaks(data, self.tmp), [], target)
        if before is not None:
            self.assertEqual(tree_digest(self.storage_dir), before, target)
        else:  # the admin face may create codebases: only inside the directory
            self.assertEqual(sorted(os.listdir(self.tmp)), sorted(["home", "store"]))
