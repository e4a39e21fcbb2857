"""Adversarial tests: hostile requests on both faces of a real store.

Each test asserts that every hostile request is refused (a ``4xx`` status,
or a smart-protocol error), that no response carries a traceback or a
server path, that the store still serves afterwards and that the checksum
of the whole storage directory is unchanged.  :data:`TRIED` counts the
hostile requests sent (printed at the end of a ``pytest -s`` run).
"""

from __future__ import annotations

import collections
import os
import random
import resource
import socket
import threading
from typing import ClassVar

from breezy import errors
from breezy.bzr.smart import protocol, request

from ..smart.verbs import UNSERVED_VERBS
from ..store.layout import Location
from ..store.locks import break_lock
from ..web.app import ADMIN, StoreApp
from ..web.server import MAX_REQUEST_LINE, make_server
from .support import hostile
from .support.fixtures import brz, http_request, tree_digest
from .support.hostile_case import (
    TRIED,
    HostileTestCase,
)

#: The branch locations requests are aimed at.
LOCATIONS = ("hello", "hello/lintian-fixes", "hello/lintian-fixes/upstream")






HELLO = hostile.encode_request(b"hello")


class URLPathTests(HostileTestCase):
    """Path escapes and bad names in the URL, on both faces."""

    LOCATIONS: ClassVar[list[bytes]] = [
        # dot segments, plain and encoded, and encoded separators
        b"..",
        b"../..",
        b"hello/..",
        b"hello/../other",
        b"hello/lintian-fixes/../../other/lintian-fixes",
        b"%2e%2e",
        b"%2E%2E/%2e%2e/etc",
        b"hello/%2e%2e/other",
        b"hello/.%2e/other",
        b"hello%2f..%2f..%2fetc",
        b"hello%2Flintian-fixes",
        b"hello/lintian-fixes%2f..%2f..%2fother",
        # double encoding
        b"%252e%252e",
        b"hello%252f..%252fother",
        b"%25%32%65%25%32%65",
        # backslashes
        b"..\\..\\etc",
        b"hello\\..\\other",
        b"hello%5c..%5cother",
        b"hello/lintian-fixes\\..\\..\\other",
        # NUL bytes
        b"hello%00",
        b"hel%00lo/lintian-fixes",
        b"hello/lintian-fixes%00/upstream",
        # absolute paths and URLs
        b"/etc",
        b"%2fetc%2fpasswd",
        b"/hello/lintian-fixes",
        b"file:%2f%2f%2fetc",
        b"file:///etc",
        b"http://127.0.0.1/hello",
        # over-long names and paths
        b"a" * 201,
        b"hello/" + b"b" * 5000,
        b"hello/" + b"x/" * 2000 + b"y",
        # names breaking [a-z0-9][a-z0-9+.-]+
        b"Hello",
        b"HELLO/lintian-fixes",
        b"-hello",
        b".hello",
        b"_hello",
        b"+hello",
        b"h",
        b"hello/Lintian-Fixes",
        b"hello/lintian_fixes",
        b"hello/lintian-fixes/Upstream",
        b"hello/lintian-fixes/upstream/extra",
        b"hello/lintian-fixes/.bzr",
        b"hello/.bzr/repository",
        b"hello%20",
        b"%20hello",
        b"hel%09lo",
        b"hello~",
        b"hello/.",
        b"hello/lintian-fixes/.",
        b"hello/./lintian-fixes",
        b"hello//lintian-fixes",
        b"hello/%ff%fe",
        # unicode look-alikes (UTF-8, percent-encoded and raw)
        "h\u0435llo".encode().replace(b"\xd0\xb5", b"%d0%b5"),  # Cyrillic e
        "\uff48\uff45\uff4c\uff4c\uff4f".encode(),  # fullwidth "hello"
        "hello\uff0flintian-fixes".encode(),  # fullwidth solidus
        "hello\u2215other".encode(),  # division slash
        "hello/\u2024\u2024/other".encode(),  # one dot leaders
        "hel\u200blo".encode(),  # zero-width space
        "hello/lintian\u2010fixes".encode(),  # hyphen look-alike
        b"hello%c0%afother",  # overlong UTF-8 "/"
        b"%c0%ae%c0%ae/etc",  # overlong UTF-8 "."
    ]

    def test_smart_urls(self) -> None:
        for face, base in self.faces():
            prefix = base.split("//", 1)[1].split("/", 1)[1:]  # "bzr" or nothing
            root = "/" + prefix[0] if prefix else ""
            for location in self.LOCATIONS:
                target = root.encode() + b"/" + location + b"/.bzr/smart"
                for method in (b"POST", b"GET"):
                    what = (face, method, target[:120])
                    with self.subTest(what=what):
                        head = method + b" " + target + b" HTTP/1.1"
                        body = HELLO if method == b"POST" else b""
                        if body:
                            head += b"\r\nContent-Length: %d" % len(body)
                        raw = hostile.raw_http(base, head, body)
                        TRIED["url"] += 1
                        if body:  # a smart request: refused in the protocol
                            self.assertSmartRefusal(raw, what)
                        else:
                            self.assertRefusedHTTP(raw, what)
        self.assertUnchanged()

    def test_other_routes(self) -> None:
        """The same escapes aimed at the non-smart routes of each face."""
        for face, root in (
            ("admin", self.store.admin),
            ("public", self.store.public_root),
        ):
            for location in self.LOCATIONS[:30]:
                for suffix in (b"/locks", b"/", b"/diff", b""):
                    target = (
                        (b"/bzr/" if face == "public" else b"/") + location + suffix
                    )
                    what = (face, target[:120])
                    with self.subTest(what=what):
                        raw = hostile.raw_http(root, b"GET " + target + b" HTTP/1.1")
                        TRIED["url"] += 1
                        status, _, _ = hostile.split_response(raw)
                        # a normalised path may name a real page: never a file
                        self.assertClean(raw, what)
                        self.assertTrue(300 <= status < 500, f"{what}: {raw[:200]!r}")
        self.assertUnchanged()

    def test_request_line_too_long(self) -> None:
        target = b"/" + b"a" * (MAX_REQUEST_LINE + 10)
        raw = hostile.raw_http(self.store.admin, b"GET " + target + b" HTTP/1.1")
        TRIED["url"] += 1
        self.assertEqual(hostile.split_response(raw)[0], 414)
        self.assertUnchanged()


class SmartPathTests(HostileTestCase):
    """Path escapes inside smart requests, and symlinks planted on disk."""

    PATHS: ClassVar[list[bytes]] = [
        b"../..",
        b"../../..",
        b"../../../../../../../../etc/passwd",
        b"/etc/passwd",
        b"/",
        b"//etc",
        b"file:///etc/passwd",
        b"file://",
        b"http://127.0.0.1:1/x",
        b"bzr+ssh://evil/x",
        b"../other/lintian-fixes",
        b"../../other/.bzr/secret",
        b"../secret",
        b"../../secret",
        b"../../../secret",
        b"%2e%2e/%2e%2e/secret",
        b"..%2f..%2fsecret",
        b"..\\..\\secret",
        b"lintian-fixes/\x00/x",
        b"~/.ssh",
    ]

    def path_calls(self, paths: list[bytes]) -> list[hostile.SmartCall]:
        """Every verb taking a path, with each of ``paths`` as that path."""
        calls = []
        for verb in sorted(request.request_handlers.keys()):
            cls = request.request_handlers.get(verb)
            names = hostile._wire_parameters(cls)
            if not names or names[0] not in ("path", "relpath", "rel_from"):
                continue
            for path in paths:
                args = [path] + [
                    path if n in ("rel_to", "location", "stacked_on") else b""
                    for n in names[1:]
                ]
                body = b"x" if hostile.has_body(cls) else None
                calls.append(hostile.SmartCall(verb, tuple(args), body=body))
        return calls

    def send_all(
        self, base_url: str, calls: list[hostile.SmartCall], writable: bool = False
    ) -> collections.Counter:
        outcome: collections.Counter = collections.Counter()
        for call in calls:
            what = (base_url, call.verb, call.args[:2])
            with self.subTest(what=what):
                raw = self.smart_post(base_url + "/.bzr/smart", call.encode())
                TRIED["smart-path"] += 1
                status, _, body = hostile.split_response(raw)
                self.assertClean(raw, what)
                if status == 200:
                    ok, args = hostile.decode_response(body)
                    outcome["ok" if ok else "error"] += 1
                    if ok and call.category != "read" and not writable:
                        self.fail(f"{what} was not refused: {args!r}")
                else:
                    self.assertTrue(400 <= status < 500, what)
                    outcome[status] += 1
        return outcome

    def test_escapes_in_verb_arguments(self) -> None:
        """Every path-taking verb on the public face, reading ones on the
        admin face: nothing outside the jail is reached, nothing changes."""
        calls = self.path_calls(self.PATHS)
        reads = [c for c in calls if c.category == "read"]
        for face, base, face_calls in (
            ("public", self.store.public, calls),
            ("admin", self.store.admin, reads),
        ):
            for location in LOCATIONS:
                with self.subTest(face=face, location=location):
                    self.send_all(f"{base}/{location}", face_calls)
        self.assertUnchanged()

    def test_escapes_in_writes_on_the_writable_face(self) -> None:
        """Writing verbs aimed outside the jail land inside it, or are refused:
        nothing outside the codebase changes and the codebase stays sound."""
        outside = self.digest_outside("hello")
        calls = [c for c in self.path_calls(self.PATHS) if c.category != "read"]
        for location in LOCATIONS:
            with self.subTest(location=location):
                self.send_all(f"{self.store.admin}/{location}", calls, writable=True)
        self.assertEqual(self.digest_outside("hello"), outside)
        self.assertSound("hello", {"lintian-fixes": 2, "lintian-fixes/upstream": 2})
        self.assertStillServing()

    def test_escapes_through_the_real_client(self) -> None:
        """breezy's own client, asking for places outside the jail."""
        for face, base in self.faces():
            url = self.smart_url(base, "hello/lintian-fixes")
            client = hostile.smart_client(url)
            for path in self.PATHS:
                for verb in (b"get", b"BzrDir.open_2.1", b"BzrDir.open_branchV3"):
                    with self.subTest(face=face, verb=verb, path=path):
                        TRIED["smart-path"] += 1
                        try:
                            result, handler = client.call_expecting_body(verb, path)
                            data = repr(result).encode() + handler.read_body_bytes()
                        except errors.ErrorFromSmartServer as e:
                            data = repr(e.error_tuple).encode()
                        self.assertClean(data, (face, verb, path))
        self.assertUnchanged()

    def plant_symlinks(self) -> dict[str, str]:
        """Symlinks an admin might plant, each leading out of its codebase."""
        outside = self.path("outside-branch")
        brz("init", "-q", outside)
        self.commit(outside, 1)
        outside_repo = self.path("outside-repo")
        brz("init-shared-repo", "-q", "--no-trees", outside_repo)
        brz("push", "-q", "-d", outside, os.path.join(outside_repo, "lintian-fixes"))
        hello = os.path.join(self.storage_dir, "hello")
        links = {
            # a campaign that is a branch outside the storage directory
            os.path.join(hello, "fresh-releases"): outside,
            # a role that is another codebase's branch
            os.path.join(hello, "lintian-fixes", "stolen"): os.path.join(
                self.storage_dir, "other", "lintian-fixes"
            ),
            # a file inside a branch's control directory
            os.path.join(hello, "lintian-fixes", ".bzr", "branch", "evil"): self.path(
                "secret"
            ),
            # a whole codebase
            os.path.join(self.storage_dir, "linked"): outside_repo,
        }
        for link, target in links.items():
            os.symlink(target, link)
        return links

    def test_planted_symlinks(self) -> None:
        links = self.plant_symlinks()
        self.before = tree_digest(self.storage_dir)
        outside = {
            p: tree_digest(p)
            for p in (self.path("outside-branch"), self.path("outside-repo"))
        }
        locations = [
            "hello/fresh-releases",
            "hello/lintian-fixes/stolen",
            "linked/lintian-fixes",
            "linked",
        ]
        for face, base in self.faces():
            for location in locations:
                url = self.smart_url(base, location)
                with self.subTest(face=face, location=location):
                    TRIED["symlink"] += 2
                    target = self.path(f"copy-{face}-{location.replace('/', '-')}")
                    proc = brz("branch", url, target, check=False)
                    self.assertNotEqual(proc.returncode, 0, self.out(proc))
                    self.assertCleanCLI(proc, location)
                    # revno opens the containing branch: the campaign's own
                    # (revno 2) at most, never the one outside (1) or other's (3)
                    proc = brz("revno", url, check=False)
                    self.assertCleanCLI(proc, location)
                    if proc.returncode == 0:
                        self.assertEqual(proc.stdout.strip(), b"2", location)
            # pushing through them on the admin face
            if face == "admin":
                for location in locations[:3]:
                    TRIED["symlink"] += 1
                    proc = brz(
                        "push",
                        "--overwrite",
                        self.smart_url(base, location),
                        cwd=self.work,
                        check=False,
                    )
                    self.assertNotEqual(proc.returncode, 0, self.out(proc))
                    self.assertCleanCLI(proc, location)
        # a file symlink inside a branch, through the VFS verbs
        for face, base in self.faces():
            url = f"{base}/hello/lintian-fixes/.bzr/smart"
            for verb in (b"get", b"stat", b"readv", b"has"):
                TRIED["symlink"] += 1
                body = b"0,10" if verb == b"readv" else None
                raw = self.smart_post(
                    url, hostile.encode_request(verb, b".bzr/branch/evil", body=body)
                )
                self.assertSmartRefusal(raw, (face, verb))
        self.assertUnchanged()
        for path, digest in outside.items():
            self.assertEqual(tree_digest(path), digest)
        self.assertTrue(all(os.path.islink(p) for p in links))


class ReadOnlyFaceTests(HostileTestCase):
    """Every write-capable verb of breezy's registry, on the public face."""

    def values(self, branch_token: bytes, repo_token: bytes, wg: list) -> dict:
        names = hostile.format_names()
        tip = self.tip

        def network_name(verb: bytes) -> bytes:
            return names["repository" if b"Repository" in verb else "branch"]

        def name(verb: bytes) -> bytes:
            return b"" if verb.startswith(b"BzrDir") else b"parent_location"

        return {
            "path": b".",
            "relpath": b".bzr/branch/last-revision",
            "rel_from": b".bzr/branch/last-revision",
            "rel_to": b".bzr/branch/moved",
            "branch_token": branch_token,
            "repo_token": repo_token,
            "lock_token": repo_token,
            "token": repo_token,
            "write_group_tokens": wg,
            "resume_tokens": b"",
            "revision_id": tip,
            "revid": tip,
            "default_revision": tip,
            "new_last_revision_id": b"null:",
            "new_revno": b"0",
            "revno": b"1",
            "known_pair": (b"1", tip),
            "allow_divergence": b"1",
            "allow_overwrite_descendant": b"1",
            "network_name": network_name,
            "to_network_name": names["repository"],
            "bzrdir_network_name": names["bzrdir"],
            "repo_format_name": names["repository"],
            "shared": b"True",
            "shared_repo": b"True",
            "use_existing_dir": b"True",
            "create_prefix": b"True",
            "force_new_repo": b"True",
            "make_working_trees": b"True",
            "require_stacking": b"False",
            "stacked_on": b"file:///etc",
            "stack_on_pwd": b"/",
            "name": name,
            "value": b"file:///etc",
            "value_dict": hostile.bencoded({b"a": b"b"}),
            "section": b"",
            "location": b"file:///etc",
            "mode": b"",
            "dir_mode": b"",
            "create_parent": b"T",
            "clean_obsolete_packs": b"True",
            "str_bool_new_value": b"True",
            "compression": b"gz",
            "format": b"tar",
            "root": b"x",
            "subdir": b"",
            "force_mtime": b"",
            "file_id": b"x",
            "tree_path": b"file",
            "committers": b"yes",
            "ordering": b"unordered",
        }

    def bodies(self) -> dict:
        chunks = self.stream_chunks()
        return {
            b"Branch.put_config_file": b"parent_location = file:///etc\n",
            b"Branch.set_tags_bytes": hostile.bencoded({b"evil": self.tip}),
            b"Repository.add_signature_text": b"-----BEGIN PGP SIGNATURE-----",
            b"Repository.pack": b"",
            b"Repository.insert_stream": chunks,
            b"Repository.insert_stream_1.19": chunks,
            b"Repository.insert_stream_locked": chunks,
            b"put": b"pwned",
            b"put_non_atomic": b"pwned",
            b"append": b"pwned",
            b"readv": b"0,10",
        }

    def test_every_write_verb_is_refused(self) -> None:
        # The admin face holds the branch lock, so the public requests carry
        # real tokens and reach as deep as a stolen token would.
        admin = hostile.smart_client(
            self.smart_url(self.store.admin, "hello/lintian-fixes")
        )
        _, branch_token, repo_token = admin.call(b"Branch.lock_write", b".", b"", b"")
        self.addCleanup(admin.call, b"Branch.unlock", b".", branch_token, repo_token)
        self.before = tree_digest(self.storage_dir)
        calls = hostile.registry_calls(
            self.values(branch_token, repo_token, []), self.bodies()
        )
        categories = collections.Counter(c.category for c in calls)
        self.assertGreater(sum(categories.values()) - categories["read"], 35)
        refused: collections.Counter = collections.Counter()
        for location in (
            "hello",
            "hello/lintian-fixes",
            "hello/lintian-fixes/upstream",
        ):
            url = f"{self.store.public}/{location}/.bzr/smart"
            for call in calls:
                what = (location, call.verb)
                with self.subTest(what=what):
                    raw = self.smart_post(url, call.encode())
                    TRIED["read-only"] += 1
                    status, _, body = hostile.split_response(raw)
                    self.assertClean(raw, what)
                    self.assertEqual(status, 200, raw[:300])
                    ok, args = hostile.decode_response(body)
                    if call.category == "read" and call.verb not in UNSERVED_VERBS:
                        continue
                    self.assertFalse(ok, f"{what} was answered {args!r}")
                    refused[args[0]] += 1
        # every write verb was stopped by the read-only face (or unserved)
        self.assertEqual(set(refused), {b"ReadOnlyError", b"PermissionDenied"}, refused)
        self.assertUnchanged()

    def test_old_protocols_carry_only_hello(self) -> None:
        """Protocol versions 1 and 2 bypass nothing: only ``hello`` runs."""
        url = f"{self.store.public}/hello/lintian-fixes/.bzr/smart"
        for verb in sorted(request.request_handlers.keys()):
            for marker in (b"", protocol.REQUEST_VERSION_TWO):
                args = () if verb == b"hello" else (b".", b"", b"")
                line = b"\x01".join((verb, *args)) + b"\n"
                what = (marker, verb)
                with self.subTest(what=what):
                    raw = self.smart_post(url, marker + line)
                    TRIED["read-only"] += 1
                    body = hostile.split_response(raw)[2]
                    self.assertClean(raw, what)
                    ok, args = hostile.decode_response(body)
                    self.assertEqual(ok, verb == b"hello", (what, args))
        self.assertUnchanged()


class LayoutViolationTests(HostileTestCase):
    """The writable (admin) face refuses what the layout forbids."""

    def test_with_the_real_client(self) -> None:
        admin = self.smart_url(self.store.admin, "")
        cases = [
            ("push", admin + "hello"),  # a branch at the codebase root
            ("push", "--overwrite", admin + "hello/lintian-fixes/upstream/extra"),
            ("push", admin + "hello/no-such-campaign"),
            ("push", admin + "hello/Fresh-Releases"),
            ("push", "--overwrite", admin + "hello/lintian-fixes/main/x"),
            ("init-shared-repo", admin + "hello/fresh-releases"),  # standalone repo
            ("init", admin + "hello"),
            ("init-shared-repo", admin + "hello/lintian-fixes/upstream2"),
            ("push", "--use-existing-dir", admin + "hello/.bzr"),
        ]
        for args in cases:
            with self.subTest(args=args):
                TRIED["layout"] += 1
                proc = brz(*args, cwd=self.work, check=False)
                self.assertNotEqual(proc.returncode, 0, self.out(proc))
                self.assertCleanCLI(proc, args)
        self.assertEqual(
            sorted(os.listdir(self.storage_dir)), ["hello", "other", "secret"]
        )
        self.assertUnchanged()

    def test_with_vfs_verbs(self) -> None:
        """Files outside ``.bzr``, trees, repositories, depth, unknown names."""
        base = f"{self.store.admin}/hello/.bzr/smart"
        writes = [
            (b"put", b"README"),
            (b"put", b"lintian-fixes/README"),
            (b"put", b"lintian-fixes/upstream/README"),
            (b"put", b"lintian-fixes/.bzr/checkout/format"),
            (b"put", b"lintian-fixes/.bzr/repository/format"),
            (b"put", b"lintian-fixes/upstream/.bzr/repository/format"),
            (b"put", b".bzr/branch/format"),
            (b"put", b".bzr/checkout/format"),
            (b"put", b".bzr/README"),
            (b"put", b"no-such-campaign/.bzr/branch-format"),
            (b"put", b"lintian-fixes/upstream/extra/.bzr/branch-format"),
            (b"put", b"lintian-fixes/main/x"),
            (b"put", b"../secret"),
            (b"put", b"/../../secret"),
            (b"mkdir", b"no-such-campaign"),
            (b"mkdir", b"Campaign"),
            (b"mkdir", b"lintian-fixes/upstream/extra"),
            (b"mkdir", b"lintian-fixes/main"),
            (b"mkdir", b".bzr/branch"),
            (b"mkdir", b"lintian-fixes/.bzr/checkout"),
            (b"mkdir", b"lintian-fixes/README"),
            (b"append", b"lintian-fixes/upstream/x"),
            (b"delete", b".bzr/branch-format"),
            (b"delete", b"lintian-fixes"),
            (b"rmdir", b"lintian-fixes"),
            (b"rmdir", b".bzr"),
            (b"rename", b"lintian-fixes", b"fresh-releases"),
            (b"rename", b"lintian-fixes/.bzr/branch/last-revision", b"README"),
            (b"move", b".bzr/repository", b"lintian-fixes/.bzr/repository"),
            (b"put_non_atomic", b"fresh-releases/x/y"),
            (b"put", b".bzr/repository/format"),
            (b"put", b".bzr/repository/no-working-trees"),
            (b"delete", b".bzr/repository/shared-storage"),
            (b"rename", b".bzr/repository", b".bzr/old"),
        ]
        for verb, *paths in writes:
            args = list(paths)
            if verb in (b"put", b"mkdir", b"append"):
                args.append(b"")
            elif verb == b"put_non_atomic":
                args += [b"", b"T", b""]
            body = b"x" if verb in (b"put", b"append", b"put_non_atomic") else None
            what = (verb, paths)
            with self.subTest(what=what):
                raw = self.smart_post(
                    base, hostile.encode_request(verb, *args, body=body)
                )
                TRIED["layout"] += 1
                self.assertSmartRefusal(raw, what)
        # the shared repository is the store's: not to be destroyed or changed
        for verb, *args in [
            (b"BzrDir.destroy_repository", b".", b""),
            (b"BzrDir.destroy_repository", b"lintian-fixes/../..", b""),
            (b"Repository.set_make_working_trees", b".", b"True"),
            (b"BzrDir.create_repository", b"lintian-fixes", b"x", b"True"),
        ]:
            with self.subTest(verb=verb, args=args):
                raw = self.smart_post(base, hostile.encode_request(verb, *args))
                TRIED["layout"] += 1
                self.assertSmartRefusal(raw, (verb, args))
        self.assertUnchanged()


class LockTokenTests(HostileTestCase):
    """Lock tokens that are wrong, or that were good until the lock broke."""

    def test_stale_and_bogus_tokens(self) -> None:
        url = self.smart_url(self.store.admin, "hello/lintian-fixes")
        admin = hostile.smart_client(url)
        _, token, repo_token = admin.call(b"Branch.lock_write", b".", b"", b"")
        break_lock(self.store.admin_app.storage, Location("hello", "lintian-fixes"))
        self.before = tree_digest(self.storage_dir)
        base = f"{self.store.admin}/hello/lintian-fixes/.bzr/smart"
        for tokens in ((token, repo_token), (b"bogus", b"")):
            for verb, *args in [
                (b"Branch.set_last_revision_info", b"0", b"null:"),
                (b"Branch.set_last_revision", b"null:"),
                (b"Branch.set_tags_bytes",),
                (b"Branch.unlock",),
                (b"Branch.lock_write",),
            ]:
                what = (verb, tokens)
                with self.subTest(what=what):
                    raw = self.smart_post(
                        base, hostile.encode_request(verb, b".", *tokens, *args)
                    )
                    TRIED["tokens"] += 1
                    self.assertSmartRefusal(raw, what)
        self.assertUnchanged()


class MalformedProtocolTests(HostileTestCase):
    store_kwargs: ClassVar[dict] = {"client_max_size": 1024 * 1024}

    def bodies(self) -> list[tuple[str, bytes]]:
        valid = hostile.encode_request(b"BzrDir.open_2.1", b".")
        rng = random.Random(6)
        cases = [
            ("empty", b""),
            ("marker only", protocol.MESSAGE_VERSION_THREE),
            ("no newline", b"bzr message 3 (bzr 1.6)"),
            ("truncated by 1", valid[:-1]),
            ("truncated by half", valid[: len(valid) // 2]),
            ("truncated header", valid[: len(protocol.MESSAGE_VERSION_THREE) + 3]),
            ("wrong version", valid.replace(b"message 3", b"message 4")),
            ("v3 marker, v2 request", protocol.MESSAGE_VERSION_THREE + b"hello\n"),
            ("bad bencode", protocol.MESSAGE_VERSION_THREE + b"\0\0\0\x03xyz"),
            ("header not a dict", protocol.MESSAGE_VERSION_THREE + b"\0\0\0\x04li1e"),
            (
                "lying header length",
                protocol.MESSAGE_VERSION_THREE + b"\0\0\x10\x00de" + b"x" * 100,
            ),
            (
                "lying args length",
                protocol.MESSAGE_VERSION_THREE + b"\0\0\0\x02des\0\x01\0\0l5:helloe",
            ),
            ("gigantic header", protocol.MESSAGE_VERSION_THREE + b"\xff\xff\xff\xf0de"),
            (
                "gigantic body part",
                valid[:-1] + b"b\xff\xff\xff\xf0" + b"x" * 1000,
            ),
            ("unknown part", protocol.MESSAGE_VERSION_THREE + b"\0\0\0\x02deZ"),
            ("end before args", protocol.MESSAGE_VERSION_THREE + b"\0\0\0\x02dee"),
            ("bytes before args", protocol.MESSAGE_VERSION_THREE + b"\0\0\0\x02deoS"),
            ("nul bytes", b"\0" * 4096),
            ("v1 garbage", b"\x01\x01\x01\n"),
            ("v2 garbage", protocol.REQUEST_VERSION_TWO + b"\x01\x01\n"),
        ]
        for i in range(40):
            size = rng.choice([1, 7, 64, 500, 4096, 70000])
            cases.append((f"random {i}", rng.randbytes(size)))
            cases.append(
                (
                    f"random after marker {i}",
                    protocol.MESSAGE_VERSION_THREE + rng.randbytes(size),
                )
            )
        return cases

    def test_malformed_bodies(self) -> None:
        for face, base in self.faces():
            url = f"{base}/hello/lintian-fixes/.bzr/smart"
            for name, body in self.bodies():
                with self.subTest(face=face, case=name):
                    raw = self.smart_post(url, body)
                    TRIED["malformed"] += 1
                    self.assertSmartRefusal(raw, (face, name))
        self.assertUnchanged()

    def test_gigantic_length_prefix_allocates_nothing(self) -> None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        body = protocol.MESSAGE_VERSION_THREE + b"\xff\xff\xff\xff" + b"d" * 1000
        for face, base in self.faces():
            raw = self.smart_post(f"{base}/hello/.bzr/smart", body)
            TRIED["malformed"] += 1
            self.assertIncomplete(raw)
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        self.assertLess(grown_kib, 512 * 1024)  # nowhere near the 4 GiB claimed
        self.assertUnchanged()

    def test_body_over_client_max_size_is_refused_unread(self) -> None:
        for face, base in self.faces():
            path = base.split("//", 1)[1].split("/", 1)[1:]
            target = ("/" + path[0] if path else "") + "/hello/.bzr/smart"
            for extra in ("", "\r\nExpect: 100-continue"):
                head = f"POST {target} HTTP/1.1\r\nContent-Length: {1024 * 1024 + 1}{extra}"
                # The body is never sent: the answer must come without it.
                raw = hostile.raw_http(
                    base, head.encode(), half_close=False, timeout=30
                )
                TRIED["malformed"] += 1
                status, headers, _ = hostile.split_response(raw)
                self.assertEqual(status, 413, raw[:300])
                self.assertEqual(headers.get("connection"), "close")
                self.assertNotIn(b"100 Continue", raw)
        self.assertUnchanged()

    def test_leftover_body_is_not_a_second_request(self) -> None:
        """Bytes after a complete smart message, or a chunked body, never
        become a request of their own on a kept-alive connection."""
        smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        message = hostile.encode_request(b"hello")
        bodies = [
            message + b"\0" * (70000 - len(message)) + smuggled,  # after 64 KiB
            message + smuggled,
        ]
        for face, base in self.faces():
            path = base.split("//", 1)[1].split("/", 1)[1:]
            target = ("/" + path[0] if path else "") + "/hello/.bzr/smart"
            for body in bodies:
                head = f"POST {target} HTTP/1.1\r\nContent-Length: {len(body)}".encode()
                raw = hostile.raw_http(base, head, body)
                TRIED["malformed"] += 1
                self.assertEqual(raw.count(b"HTTP/1.1 "), 1, raw[-300:])
            for route in (target, "/health"):
                head = f"POST {route} HTTP/1.1\r\nTransfer-Encoding: chunked".encode()
                raw = hostile.raw_http(
                    base, head, b"5\r\nhello\r\n0\r\n\r\n" + smuggled
                )
                TRIED["malformed"] += 1
                self.assertEqual(raw.count(b"HTTP/1.1 "), 1, raw[-300:])
                self.assertTrue(400 <= hostile.split_response(raw)[0] < 500, raw[:200])
        self.assertUnchanged()

    def test_truncated_push_leaves_nothing_behind(self) -> None:
        """A stream cut short (a client gone mid-push) aborts its write group:
        no thread left waiting for the rest, no pack left in ``upload/``."""
        self.commit(self.work, 1, filename="big")
        chunks = self.stream_chunks()
        message = hostile.encode_request(
            b"Repository.insert_stream_1.19", b"../", b"", b"", chunks=chunks
        )
        threads = {t.ident for t in threading.enumerate()}
        url = f"{self.store.admin}/hello/lintian-fixes/.bzr/smart"
        for cut in (len(message) // 3, len(message) * 2 // 3, len(message) - 1):
            raw = self.smart_post(url, message[:cut])
            TRIED["malformed"] += 1
            self.assertIncomplete(raw)
        # and a client that disappears mid-body
        head = f"POST /hello/lintian-fixes/.bzr/smart HTTP/1.1\r\nContent-Length: {len(message)}"
        with socket.create_connection(self.store.admin.split("//")[1].split(":")) as s:
            s.sendall(
                head.encode() + b"\r\nHost: x\r\n\r\n" + message[: len(message) // 2]
            )
        TRIED["malformed"] += 1
        self.assertEventually(
            lambda: {t.ident for t in threading.enumerate()} <= threads,
            "an insert thread is still waiting",
        )
        upload = os.path.join(self.storage_dir, "hello", ".bzr", "repository", "upload")
        self.assertEqual(os.listdir(upload), [])
        self.assertUnchanged()

    def assertEventually(self, condition, message: str, timeout: float = 30) -> None:
        import time

        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.fail(message)
            threading.Event().wait(0.05)


class SlowClientTests(HostileTestCase):
    """Slow and silent clients hold their own connection only."""

    def test_trickling_clients_do_not_block_others(self) -> None:
        host, port = self.store.public_root.split("//")[1].split(":")
        body = hostile.encode_request(b"hello")
        head = (
            f"POST /bzr/hello/.bzr/smart HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        slow = [socket.create_connection((host, int(port))) for _ in range(16)]
        self.addCleanup(lambda: [s.close() for s in slow])
        url = self.smart_url(self.store.public, "hello/lintian-fixes")
        client = hostile.smart_client(url)
        data = head + body
        # Each round, every slow client sends one more byte; in between,
        # normal requests are served as if the slow ones were not there.
        for i in range(len(data) - 1):
            for s in slow:
                s.sendall(data[i : i + 1])
            if i % 8 == 0:
                self.assertEqual(
                    http_request(self.store.public_root + "/health")[0], 200
                )
                self.assertEqual(
                    client.call(b"Branch.last_revision_info", b".")[1], b"2"
                )
        for s in slow:
            s.sendall(data[-1:])
            s.settimeout(30)
            self.assertIn(b"200 OK", s.recv(4096))
        TRIED["slow"] += len(slow)
        self.assertUnchanged()

    def test_silent_connection_is_dropped(self) -> None:
        app = StoreApp(face=ADMIN, storage=self.store.admin_app.storage)
        server = make_server(app, "127.0.0.1", 0, socket_timeout=1)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        for partial in (b"", b"POST /hello/.bzr/smart HTTP/1.1\r\nContent-Le"):
            with socket.create_connection(server.server_address[:2]) as s:
                s.sendall(partial)
                s.settimeout(60)  # the server must hang up long before
                try:
                    self.assertEqual(s.recv(4096), b"")
                except ConnectionResetError:
                    pass
            TRIED["slow"] += 1
        self.assertUnchanged()


def tearDownModule() -> None:
    if TRIED and os.environ.get("BJS_REPORT_COUNTS"):
        print("\nhostile requests tried:", sum(TRIED.values()), dict(TRIED))
