"""Worker credentials: password hashes, the credentials file, Basic auth,
``add-worker``, and a worker pushing through the public face with ``brz``."""

from __future__ import annotations

import base64
import http.client
import os
import stat
import unittest

from breezy import bedding

from ..policy import auth
from ..policy.auth import (
    BasicAuth,
    CredentialsFile,
    TTLCache,
    add_worker,
    hash_password,
    parse_credentials,
    verify_password,
)
from ..policy.config import ConfigError
from ..policy.policies import PolicyUnavailable, Unauthorized
from ..serve import ServeSettings, build_apps
from .support.auth import (
    basic,
    record_statuses,
    write_authentication_conf,
)
from .support.fixtures import StoreTestCase, brz, http_request, plugin_env, tree_digest

# -- helpers shared with test_db --










class PasswordHashTests(unittest.TestCase):
    def test_round_trip_and_salt(self) -> None:
        a, b = hash_password("s3cret"), hash_password("s3cret")
        self.assertNotEqual(a, b)  # salted
        self.assertTrue(a.startswith("scrypt$"))
        self.assertNotIn("s3cret", a)
        for h in (a, b):
            self.assertTrue(verify_password("s3cret", h))
            self.assertFalse(verify_password("s3cret ", h))
            self.assertFalse(verify_password("", h))

    def test_pbkdf2_hashes_are_accepted(self) -> None:
        import hashlib

        salt = b"0123456789abcdef"
        key = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 1000)
        b64 = [base64.b64encode(v).decode() for v in (salt, key)]
        encoded = f"pbkdf2_sha256$1000${b64[0]}${b64[1]}"
        self.assertTrue(verify_password("pw", encoded))
        self.assertFalse(verify_password("pw2", encoded))

    def test_malformed_hashes_never_match(self) -> None:
        for encoded in ["", "plain", "scrypt$1$2", "md5$x$y", "scrypt$a$b$c$d$e"]:
            with self.subTest(encoded=encoded):
                self.assertFalse(verify_password("plain", encoded))

    def test_parse_credentials(self) -> None:
        h = hash_password("x")
        text = f"# workers\n\nw1:{h}\n  w2:{h}  \n"
        self.assertEqual(parse_credentials(text), {"w1": h, "w2": h})
        for bad in [f"w1 {h}", "w1:plain", f":{h}", f"a b:{h}"]:
            with self.subTest(bad=bad):
                with self.assertRaises(ConfigError) as cm:
                    parse_credentials(f"ok:{h}\n{bad}\n", "creds")
                self.assertIn("creds, line 2", str(cm.exception))
                self.assertNotIn(h, str(cm.exception))

    def test_ttl_cache(self) -> None:
        now = [0.0]
        cache = TTLCache(max_entries=2, clock=lambda: now[0])
        cache.put("a", True, 10)
        cache.put("b", False, 1)
        self.assertIs(cache.get("b"), False)
        now[0] = 1.0
        self.assertIsNone(cache.get("b"))
        self.assertIs(cache.get("a"), True)
        cache.put("c", 1, 10)
        cache.put("d", 2, 10)  # over the bound: "a" goes
        self.assertIsNone(cache.get("a"))
        self.assertEqual((cache.get("c"), cache.get("d")), (1, 2))


class CredentialsFileTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.file = self.path("credentials")

    def test_add_worker_creates_private_file_and_replaces_lines(self) -> None:
        self.assertTrue(add_worker(self.file, "w1", "one"))
        self.assertEqual(stat.S_IMODE(os.stat(self.file).st_mode), 0o600)
        self.assertTrue(add_worker(self.file, "w2", "two"))
        self.assertFalse(add_worker(self.file, "w1", "uno"))
        with open(self.file) as f:
            lines = f.read().splitlines()
        self.assertEqual([line.split(":")[0] for line in lines], ["w1", "w2"])
        creds = CredentialsFile(self.file)
        self.assertTrue(creds.check("w1", "uno"))
        self.assertFalse(creds.check("w1", "one"))
        self.assertTrue(creds.check("w2", "two"))
        for name in ["", "a:b", "a b", "tab\t"]:
            with self.subTest(name=name), self.assertRaises(ConfigError):
                add_worker(self.file, name, "pw")

    def test_changes_take_effect_while_serving(self) -> None:
        add_worker(self.file, "w1", "one")
        creds = CredentialsFile(self.file, ttl=3600)
        self.assertTrue(creds.check("w1", "one"))  # now remembered
        self.assertFalse(creds.check("w2", "two"))
        add_worker(self.file, "w2", "two")
        self.assertTrue(creds.check("w2", "two"))
        with open(self.file) as f:
            kept = [line for line in f if not line.startswith("w1:")]
        with open(self.file, "w") as f:
            f.write("# w1 removed\n" + "".join(kept))
        self.assertFalse(creds.check("w1", "one"))  # forgotten with the change
        self.assertTrue(creds.check("w2", "two"))

    def test_unusable_file(self) -> None:
        with self.assertRaises(ConfigError):
            CredentialsFile(self.path("missing"))
        with open(self.file, "w") as f:
            f.write("garbage\n")
        with self.assertRaises(ConfigError):
            CredentialsFile(self.file)
        os.unlink(self.file)
        add_worker(self.file, "w1", "one")
        creds = CredentialsFile(self.file)
        creds.check_ready()
        os.unlink(self.file)
        # fail closed: no stale workers, and the outage is visible
        with self.assertRaises(PolicyUnavailable):
            creds.check("w1", "one")
        with self.assertRaises(PolicyUnavailable):
            creds.check_ready()
        add_worker(self.file, "w1", "one")
        self.assertTrue(creds.check("w1", "one"))

    def test_implausible_credentials_are_wrong(self) -> None:
        add_worker(self.file, "w1", "one")
        creds = CredentialsFile(self.file)
        self.assertFalse(creds.check("w1", "one\x00"))
        self.assertFalse(creds.check("", "one"))
        self.assertFalse(creds.check("w1", "x" * 5000))


class BasicAuthTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        add_worker(self.path("creds"), "w1", "pa:ss wörd")
        self.policy = BasicAuth(CredentialsFile(self.path("creds")), realm="janitor")

    def environ(self, header: str | None) -> dict:
        env = {"REMOTE_ADDR": "192.0.2.7"}
        if header is not None:
            env["HTTP_AUTHORIZATION"] = header
        return env

    def test_no_credentials_are_read_only(self) -> None:
        env = self.environ(None)
        self.assertFalse(self.policy(env))
        self.assertNotIn("REMOTE_USER", env)
        self.assertEqual(self.policy.realm, "janitor")

    def test_valid_credentials_write_as_the_worker(self) -> None:
        env = self.environ(basic("w1", "pa:ss wörd")["Authorization"])
        self.assertTrue(self.policy(env))
        self.assertEqual(env["REMOTE_USER"], "w1")

    def test_wrong_credentials_are_logged_without_the_password(self) -> None:
        for header in [
            basic("w1", "wrong-pw")["Authorization"],
            basic("nobody", "wrong-pw")["Authorization"],
            "Basic !!!not-base64",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Bearer abc",
        ]:
            with self.subTest(header=header):
                env = self.environ(header)
                with (
                    self.assertLogs(auth.logger, "WARNING") as logs,
                    self.assertRaises(Unauthorized),
                ):
                    self.policy(env)
                self.assertNotIn("REMOTE_USER", env)
                text = "\n".join(logs.output)
                self.assertIn("192.0.2.7", text)
                self.assertNotIn("wrong-pw", text)

    def test_check_ready_follows_the_credential_source(self) -> None:
        self.policy.check_ready()
        os.unlink(self.path("creds"))
        with self.assertRaises(PolicyUnavailable):
            self.policy.check_ready()

    def test_realm_must_be_quotable(self) -> None:
        with self.assertRaises(ValueError):
            BasicAuth(self.policy.credentials, realm='a"b')


class WorkerPushTests(StoreTestCase):
    """The real ``brz`` against a store whose workers are in a credentials file."""

    def setUp(self) -> None:
        super().setUp()
        self.creds = self.path("credentials")
        add_worker(self.creds, "worker-1", "correct horse")
        self.store = self.start_store(
            campaigns=["lintian-fixes"],
            public={"write_policy": BasicAuth(CredentialsFile(self.creds))},
        )
        self.statuses = record_statuses(self.store.public_app)
        self.work = self.make_branch(revisions=2)
        self.url = self.smart_url(self.store.public, "hello/lintian-fixes")

    def push(self, check: bool = True):
        # stdin is empty: brz must never wait for a typed password
        return brz("push", self.url, cwd=self.work, check=check, input=b"")

    def test_worker_pushes_and_anonymous_reads(self) -> None:
        # anonymous: the first write verb is challenged, nothing is written
        proc = self.push(check=False)
        self.assertNotEqual(proc.returncode, 0, self.out(proc))
        self.assertIn("401", self.out(proc))
        self.assertNotIn("Traceback", self.out(proc))
        self.assertEqual(os.listdir(self.storage_dir), [])
        # the worker: brz answers the challenge from authentication.conf
        write_authentication_conf(self.store.public, "worker-1", "correct horse")
        self.assertIn("Created new branch", self.out(self.push()))
        self.commit(self.work)
        self.assertIn("Pushed up to revision 3", self.out(self.push()))
        os.unlink(bedding.authentication_config_path())
        # anonymous branch: read-only, never challenged
        del self.statuses[:]
        brz("branch", self.url, self.path("copy"), input=b"")
        self.assertEqual(brz("revno", cwd=self.path("copy")).stdout.strip(), b"3")
        self.assertNotIn(401, self.statuses)
        self.assertEqual(set(self.statuses), {200})

    def test_wrong_password_is_refused(self) -> None:
        write_authentication_conf(self.store.public, "worker-1", "n0t-the-pa55")
        before = tree_digest(self.storage_dir)
        with self.assertLogs(auth.logger, "WARNING") as logs:
            proc = self.push(check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("401", self.out(proc))
        self.assertIn("worker-1", "\n".join(logs.output))
        self.assertNotIn("n0t-the-pa55", "\n".join(logs.output))
        self.assertEqual(tree_digest(self.storage_dir), before)
        status, headers, body = http_request(
            self.store.public + "/hello/lintian-fixes/.bzr/smart",
            data=b"x",
            headers=basic("worker-1", "wrong"),
        )
        self.assertEqual((status, body), (401, b"invalid credentials\n"))
        self.assertEqual(
            headers["WWW-Authenticate"], 'Basic realm="breezy janitor store"'
        )

    def test_refusals_before_the_body_close_the_connection(self) -> None:
        # an unread body must not be taken for the next kept-alive request
        host, port = self.store.public_root.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.addCleanup(conn.close)
        for campaign, headers, status in [
            ("lintian-fixes", basic("worker-1", "wrong"), 401),
            ("unknown", {}, 404),
        ]:
            conn.request(
                "POST",
                f"/bzr/hello/{campaign}/.bzr/smart",
                body=b"GET /health HTTP/1.1\r\n\r\n",
                headers=headers,
            )
            response = conn.getresponse()
            response.read()
            self.assertEqual(response.status, status)
            self.assertEqual(response.getheader("Connection"), "close")
            conn.request("GET", "/health")
            response = conn.getresponse()
            self.assertEqual((response.status, response.read()), (200, b"ok"))


class AddWorkerCommandTests(StoreTestCase):
    def test_add_worker_then_serve(self) -> None:
        env = plugin_env()
        creds = self.path("credentials")
        proc = brz(
            "janitor-store",
            "add-worker",
            "w1",
            "--credentials",
            creds,
            env=env,
            input=b"typed secret\n",
        )
        self.assertIn("Added worker w1", self.out(proc))
        with open(creds, "rb") as f:
            self.assertNotIn(b"typed secret", f.read())
        self.assertTrue(CredentialsFile(creds).check("w1", "typed secret"))
        proc = brz(
            "janitor-store", "add-worker", "w1", env=env, input=b"x\n", check=False
        )
        self.assertEqual(proc.returncode, 3)
        self.assertIn("--credentials", proc.stderr.decode())
        # serve --credentials: the public face's workers
        settings = ServeSettings.resolve(directory=self.storage_dir, credentials=creds)
        admin, public = build_apps(settings)
        self.assertTrue(public.write_policy(self.environ_for("w1", "typed secret")))
        with self.assertRaises(Unauthorized):
            public.write_policy(self.environ_for("w1", "other"))
        self.assertTrue(admin.write_policy({}))

    def environ_for(self, user: str, password: str) -> dict:
        return {"HTTP_AUTHORIZATION": basic(user, password)["Authorization"]}
