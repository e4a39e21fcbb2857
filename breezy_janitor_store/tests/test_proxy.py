"""Behind a trusted reverse proxy: the client's address and the proxy's
request id reach the access log, lock records and the response; the same
headers from anyone else are ignored."""

from __future__ import annotations

import base64
import logging
import os
import re
import tempfile
import unittest
from unittest import mock

from breezy.lockdir import LockHeldInfo

from ..policy.config import ConfigError
from ..policy.proxy import TrustedProxies
from ..serve import ServeSettings
from ..store import holders
from ..web.filters import REQUEST_ID_HEADER
from .support import hostile
from .support.fixtures import StoreTestCase, brz, http_request, wait_for

ACCESS = "breezy_janitor_store.access"
FORGED = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Request-Id": "proxy-id-1",
    "X-Forwarded-Proto": "https",
}


def access_lines(logs, count: int) -> list[str]:
    wait_for(lambda: len(logs.records) >= count, "the access-log lines")
    return [r.getMessage() for r in logs.records]


class TrustedProxiesTests(unittest.TestCase):
    def test_chain_walks_left_past_trusted_hops_only(self) -> None:
        proxies = TrustedProxies("127.0.0.1, 10.0.0.0/8")
        self.assertEqual(proxies.client("127.0.0.1", ["198.51.100.1"]), "198.51.100.1")
        # a client's own X-Forwarded-For entry is left of the address the
        # proxy saw, which is not trusted: the forged entry is not reached
        self.assertEqual(
            proxies.client("127.0.0.1", ["6.6.6.6", "198.51.100.1"]), "198.51.100.1"
        )
        # two trusted proxies in a row
        self.assertEqual(
            proxies.client("127.0.0.1", ["198.51.100.1", "10.1.2.3"]), "198.51.100.1"
        )
        # garbage ends the walk at the last address
        self.assertEqual(proxies.client("127.0.0.1", ["junk", "10.1.2.3"]), "10.1.2.3")

    def test_forwarded_header_and_ports(self) -> None:
        environ = {
            "REMOTE_ADDR": "::1",
            "HTTP_FORWARDED": 'for="[2001:db8::7]:4711";proto=https, for=10.0.0.1',
        }
        TrustedProxies("::1,10.0.0.1").apply(environ)
        self.assertEqual(environ["REMOTE_ADDR"], "2001:db8::7")

    def test_nobody_by_default_and_any_with_star(self) -> None:
        self.assertFalse(TrustedProxies())
        self.assertFalse(TrustedProxies("").trusts("127.0.0.1"))
        self.assertTrue(TrustedProxies("*").trusts("192.0.2.1"))

    def test_invalid_entry_is_a_config_error(self) -> None:
        with self.assertRaisesRegex(ConfigError, "forwarded-allow-ips entry 'nginx'"):
            TrustedProxies("127.0.0.1,nginx")

    def test_setting_from_gunicorn_s_variable(self) -> None:
        directory = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, directory)
        with mock.patch.dict(os.environ, {"FORWARDED_ALLOW_IPS": "127.0.0.1,::1"}):
            settings = ServeSettings.resolve(directory=directory)
        self.assertEqual(settings.forwarded_allow_ips, "127.0.0.1,::1")
        with mock.patch.dict(os.environ, {"FORWARDED_ALLOW_IPS": ""}):
            settings = ServeSettings.resolve(directory=directory)
        self.assertIsNone(settings.forwarded_allow_ips)
        with mock.patch.dict(os.environ, {"FORWARDED_ALLOW_IPS": "proxy"}):
            self.assertRaises(ConfigError, ServeSettings.resolve, directory=directory)


class BehindProxyTests(StoreTestCase):
    def test_trusted_proxy_names_client_and_request(self) -> None:
        store = self.start_store(trusted_proxies="127.0.0.1")
        with self.assertLogs(ACCESS, logging.INFO) as logs:
            status, headers, _ = http_request(store.admin + "/health", headers=FORGED)
            [line] = access_lines(logs, 1)
        self.assertEqual(status, 200)
        self.assertEqual(headers[REQUEST_ID_HEADER], "proxy-id-1")
        self.assertTrue(line.startswith("203.0.113.9 - - ["), line)
        self.assertRegex(line, r" 200 2 rt=\d+\.\d{3} rid=proxy-id-1\Z")

    def test_headers_from_anyone_else_are_ignored(self) -> None:
        for trusted in (None, "10.0.0.0/8"):
            with self.subTest(trusted=trusted):
                store = self.start_store(trusted_proxies=trusted)
                with self.assertLogs(ACCESS, logging.INFO) as logs:
                    _, headers, _ = http_request(
                        store.admin + "/health", headers=FORGED
                    )
                    [line] = access_lines(logs, 1)
                rid = headers[REQUEST_ID_HEADER]
                self.assertRegex(rid, r"\A[0-9a-f]{32}\Z")
                self.assertTrue(line.startswith("127.0.0.1 - - ["), line)
                self.assertTrue(line.endswith(f" rid={rid}"), line)

    def test_invalid_request_id_is_replaced(self) -> None:
        store = self.start_store(trusted_proxies="127.0.0.1")
        for bad in ("", "a" * 129, "-x", "a b", 'x"y'):
            with self.subTest(rid=bad):
                _, headers, _ = http_request(
                    store.admin + "/health", headers={"X-Request-Id": bad}
                )
                self.assertRegex(headers[REQUEST_ID_HEADER], r"\A[0-9a-f]{32}\Z")

    def test_lock_record_names_forwarded_client_and_request(self) -> None:
        store = self.start_store(
            campaigns=["lintian-fixes"], trusted_proxies="127.0.0.1"
        )
        work = self.make_branch()
        brz("push", "-q", self.smart_url(store.admin, "hello/lintian-fixes"), cwd=work)
        body = hostile.encode_request(b"Branch.lock_write", b".", b"", b"")
        status, headers, answer = http_request(
            store.admin + "/hello/lintian-fixes/.bzr/smart",
            data=body,
            headers={"X-Forwarded-For": "198.51.100.4", "X-Request-Id": "lock-req-9"},
        )
        self.assertEqual(status, 200, answer)
        self.assertEqual(headers[REQUEST_ID_HEADER], "lock-req-9")
        ok, args = hostile.decode_response(answer)
        self.assertTrue(ok, args)
        token, repo_token = args[1], args[2]
        unlock = hostile.encode_request(b"Branch.unlock", b".", token, repo_token)
        self.addCleanup(
            http_request, store.admin + "/hello/lintian-fixes/.bzr/smart", unlock
        )
        record = LockHeldInfo.from_info_file_bytes(
            self.branch_lock_record("hello/lintian-fixes")
        )
        fields = holders.holder_fields(record)
        self.assertEqual(
            (fields["client"], fields["request_id"]), ("198.51.100.4", "lock-req-9")
        )


class AccessLineTests(unittest.TestCase):
    def test_request_id_and_duration_end_the_line(self) -> None:
        from ..web.filters import REQUEST_ID_KEY, access_line

        line = access_line(
            {"REMOTE_ADDR": "192.0.2.1", REQUEST_ID_KEY: "abc"}, "200", 5, 0.0, 0.25
        )
        self.assertTrue(re.search(r'" 200 5 rt=0\.250 rid=abc\Z', line), line)


class AuthLogBehindProxyTests(StoreTestCase):
    def test_rejected_credentials_name_the_forwarded_client(self) -> None:
        store = self.start_store_with_worker(trusted_proxies="127.0.0.1")
        auth = "Basic " + base64.b64encode(b"worker-1:wrong").decode()
        with self.assertLogs("breezy_janitor_store.policy.auth", logging.WARNING) as logs:
            status, _, _ = http_request(
                store.public + "/hello/.bzr/smart",
                data=hostile.encode_request(b"hello"),
                headers={"Authorization": auth, "X-Forwarded-For": "198.51.100.7"},
            )
        self.assertEqual(status, 401)
        self.assertIn(
            "rejected credentials of 'worker-1' from 198.51.100.7",
            "\n".join(r.getMessage() for r in logs.records),
        )
