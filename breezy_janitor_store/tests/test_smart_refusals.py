"""A location the store refuses is refused in the smart protocol: brz shows why.

A well-formed smart request for an unknown campaign, a bad name, a path
deeper than a role or a codebase that does not exist is answered ``200``
with a ``PermissionDenied`` smart error carrying the reason; a body that
is no smart request still gets the HTTP status and its plain-text reason.
"""

from __future__ import annotations

import os

from .support import hostile
from .support.fixtures import StoreTestCase, brz, http_request
from .support.smart_messages import post_message


class SmartRefusalTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=["lintian-fixes"])
        self.work = self.make_branch()

    def test_brz_prints_the_reason(self) -> None:
        admin, public = self.store.admin, self.store.public
        cases = [
            (
                ("push", f"bzr+{admin}/hello/lintian-fix"),
                "unknown campaign: lintian-fix",
            ),
            (
                ("push", f"bzr+{admin}/hello/lintian-fixes/upstream/extra"),
                "expected CODEBASE[/CAMPAIGN[/ROLE]]",
            ),
            (("push", f"bzr+{admin}/Hello/lintian-fixes"), "invalid name: 'Hello'"),
            (
                ("branch", f"bzr+{public}/nothing/lintian-fixes", self.path("x")),
                "no such codebase: nothing",
            ),
        ]
        for args, reason in cases:
            with self.subTest(args=args):
                proc = brz(*args, cwd=self.work, check=False)
                out = self.out(proc)
                self.assertEqual(proc.returncode, 3, out)
                self.assertIn(reason, out)
                self.assertIn("Permission denied", out)
                self.assertNotIn("Unexpected HTTP status", out)
                self.assertNotIn("internal error", out)
        self.assertEqual(os.listdir(self.storage_dir), [])

    def test_smart_error_for_requests_http_status_for_other_bodies(self) -> None:
        url = self.store.admin + "/hello/lintian-fix/.bzr/smart"
        request = hostile.encode_request(b"BzrDir.open_2.1", b".")
        status, headers, body = http_request(url, data=request)
        self.assertEqual(status, 200, body)
        ok, args = hostile.decode_response(body)
        self.assertFalse(ok)
        self.assertEqual(
            args,
            (
                b"PermissionDenied",
                b"/hello/lintian-fix",
                b"unknown campaign: lintian-fix",
            ),
        )
        for data in (b"x", b"bzr message 3 (bzr 1.6)\n", b"GET / HTTP/1.1\r\n\r\n"):
            with self.subTest(data=data):
                status, _, body = http_request(url, data=data)
                self.assertEqual(
                    (status, body), (404, b"unknown campaign: lintian-fix\n")
                )
        # only the start of a large body is read; the connection then closes
        big = request[:-1] + b"b" + (8 << 20).to_bytes(4, "big") + bytes(8 << 20) + b"e"
        raw = post_message(self.store.admin, "/hello/lintian-fix/.bzr/smart", [big])
        status, headers, body = hostile.split_response(raw)
        self.assertEqual(status, 200, raw[:300])
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(hostile.decode_response(body)[1][0], b"PermissionDenied")
        self.assertEqual(os.listdir(self.storage_dir), [])
