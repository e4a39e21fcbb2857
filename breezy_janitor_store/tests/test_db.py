"""The janitor's PostgreSQL database as the source of codebases and workers.

Against a real PostgreSQL server: a throwaway cluster (see ``pgcluster``),
one fresh database per test.
"""

from __future__ import annotations

import os
import signal
import unittest

from psycopg_pool import ConnectionPool

from ..policy import db as db_module
from ..policy.config import ConfigError
from ..policy.db import Database, PostgresCodebases, PostgresWorkers
from ..policy.policies import PolicyUnavailable
from ..serve import ServeSettings, build_apps
from .support.auth import (
    basic,
    credential_probe,
    record_statuses,
    write_authentication_conf,
)
from .support.database import TIMEOUT, TTL, DatabaseTestCase
from .support.fixtures import (
    FREE_PORTS,
    assert_stops_cleanly,
    brz,
    http_request,
    start_serve,
    tree_digest,
    wait_for,
)
from .support.pgcluster import require_postgres


class MissingPostgresTests(unittest.TestCase):
    def test_skipped_with_a_hint_but_failing_under_ci(self) -> None:
        class Needs(unittest.TestCase):
            def test(self) -> None:
                require_postgres(self, None)

        saved = os.environ.get("CI")
        self.addCleanup(_setenv, "CI", saved)
        for ci, outcome in [("", "skipped"), ("true", "failures")]:
            with self.subTest(ci=ci):
                os.environ["CI"] = ci
                result = unittest.TestResult()
                Needs("test").run(result)
                (_, message), *more = getattr(result, outcome)
                self.assertEqual(more, [])
                self.assertIn("apt-get install postgresql", message)


class PolicyTests(DatabaseTestCase):
    def test_codebases_are_the_table_rows_and_remembered_briefly(self) -> None:
        self.add_codebase("hello", "g++")
        codebases = PostgresCodebases(self.database, ttl=TTL, missing_ttl=TTL)
        self.assertTrue(codebases.codebase_exists("hello"))
        self.assertTrue(codebases.codebase_exists("g++"))
        self.assertFalse(codebases.codebase_exists("other"))
        self.assertFalse(codebases.codebase_exists("Not Valid\x00"))
        codebases.check_ready()
        self.sql("DELETE FROM codebase WHERE name = 'hello'")
        self.add_codebase("other")
        wait_for(lambda: not codebases.codebase_exists("hello"), "hello to go")
        wait_for(lambda: codebases.codebase_exists("other"), "other to come")

    def test_worker_passwords_are_crypt_hashes(self) -> None:
        self.add_worker("w1", "pw one")
        self.sql("INSERT INTO worker (name, password) VALUES ('w2', 'not a hash')")
        self.sql("INSERT INTO worker (name, password) VALUES ('w3', '$2a$06$bad')")
        workers = PostgresWorkers(self.database, ttl=TTL)
        self.assertTrue(workers.check("w1", "pw one"))
        self.assertTrue(workers.check("w1", "pw one"))  # from memory
        self.assertFalse(workers.check("w1", "pw two"))
        self.assertFalse(workers.check("nobody", "pw one"))
        self.assertFalse(workers.check("w1", "pw\x00one"))
        self.assertFalse(workers.check("w1", "x" * 5000))
        self.assertFalse(workers.check("w2", "not a hash"))
        with self.assertLogs(db_module.logger, "ERROR") as logs:  # crypt() refuses it
            self.assertFalse(workers.check("w3", "$2a$06$bad"))
        self.assertIn("w3", logs.output[0])
        workers.check_ready()
        self.sql("DELETE FROM worker WHERE name = 'w1'")
        wait_for(lambda: not workers.check("w1", "pw one"), "w1 to be forgotten")

    def test_failed_checks_are_not_remembered(self) -> None:
        workers = PostgresWorkers(self.database, ttl=3600)
        self.assertFalse(workers.check("w1", "pw"))
        self.add_worker("w1", "pw")
        self.assertTrue(workers.check("w1", "pw"))

    def test_a_shared_pool_is_used_and_left_open(self) -> None:
        self.add_codebase("hello")
        pool = ConnectionPool(self.url, min_size=1, max_size=2, open=True)
        self.addCleanup(pool.close)
        database = Database(pool)
        self.assertTrue(PostgresCodebases(database).codebase_exists("hello"))
        database.close()
        with pool.connection() as conn:
            self.assertEqual(conn.execute("SELECT 1").fetchone(), (1,))

    def test_bad_urls(self) -> None:
        with self.assertRaises(ConfigError):
            Database("postgresql://[nope", timeout=TIMEOUT)
        # a server that is not there: not an error at start, 503 on use
        database = Database("postgresql:///x?host=/nonexistent", timeout=TIMEOUT)
        self.addCleanup(database.close)
        with self.assertRaises(PolicyUnavailable):
            PostgresCodebases(database).codebase_exists("hello")

    def test_serve_settings(self) -> None:
        saved = os.environ.get("DATABASE_URL")
        self.addCleanup(_setenv, "DATABASE_URL", saved)
        os.environ["DATABASE_URL"] = self.url
        settings = ServeSettings.resolve(directory=self.storage_dir)
        self.assertEqual(settings.database_url, self.url)
        admin, public = build_apps(settings)
        self.add_codebase("hello")
        for app in (admin, public):
            self.assertTrue(app.codebase_policy.codebase_exists("hello"))
            self.assertFalse(app.codebase_policy.codebase_exists("other"))
            app.codebase_policy.check_ready()
        self.assertEqual(public.write_policy.realm, "breezy janitor store")
        self.assertFalse(public.write_policy({}))
        self.assertTrue(admin.write_policy({}))
        public.write_policy.check_ready()
        admin.codebase_policy.database.close()
        # the config file's database_location, when nothing else says
        del os.environ["DATABASE_URL"]
        config = self.path("janitor.conf")
        with open(config, "w") as f:
            f.write(f'database_location: "{self.url}"\n')
        settings = ServeSettings.resolve(directory=self.storage_dir, config=config)
        self.assertEqual(settings.database_url, self.url)
        with self.assertRaises(ConfigError):
            ServeSettings.resolve(
                directory=self.storage_dir, config=config, credentials=config
            )


class StoreWithDatabaseTests(DatabaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.add_codebase("hello")
        self.add_worker("worker-1", "correct horse")
        self.store = self.start_db_store()
        self.work = self.make_branch(revisions=2)

    def url_of(self, base: str, location: str = "hello/lintian-fixes") -> str:
        return self.smart_url(base, location)

    def assert_public_push_gets_401(self) -> None:
        """A ``brz push`` of the work branch through the public face fails
        with the 401 challenge (no or rejected credentials)."""
        proc = brz(
            "push",
            self.url_of(self.store.public),
            cwd=self.work,
            check=False,
            input=b"",
        )
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("401", self.out(proc))

    def test_known_and_unknown_codebases_on_both_faces(self) -> None:
        brz("push", self.url_of(self.store.admin), cwd=self.work)
        brz("branch", self.url_of(self.store.public), self.path("copy"))
        for base in (self.store.admin, self.store.public):
            with self.subTest(base=base):
                status, headers, body = http_request(
                    base + "/other/lintian-fixes/.bzr/smart", data=b"x"
                )
                self.assertEqual((status, body), (404, b"no such codebase: other\n"))
                self.assertTrue(headers["Content-Type"].startswith("text/plain"))
                proc = brz(
                    "push",
                    self.url_of(base, "other/lintian-fixes"),
                    cwd=self.work,
                    check=False,
                    input=b"",
                )
                self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(os.listdir(self.storage_dir), ["hello"])

    def test_worker_pushes_through_the_public_face(self) -> None:
        statuses = record_statuses(self.store.public_app)
        # anonymous: challenged at the first write, nothing written
        self.assert_public_push_gets_401()
        self.assertEqual(os.listdir(self.storage_dir), [])
        # the worker, with authentication.conf
        write_authentication_conf(self.store.public, "worker-1", "correct horse")
        proc = brz("push", self.url_of(self.store.public), cwd=self.work, input=b"")
        self.assertIn("Created new branch", self.out(proc))
        # wrong password
        write_authentication_conf(self.store.public, "worker-1", "n0t-the-pa55")
        self.commit(self.work)
        before = tree_digest(self.storage_dir)
        self.assert_public_push_gets_401()
        self.assertEqual(tree_digest(self.storage_dir), before)
        # anonymous branch: never challenged
        os.unlink(write_authentication_conf(self.store.public, "x", "y"))
        del statuses[:]
        brz("branch", self.url_of(self.store.public), self.path("copy"), input=b"")
        self.assertEqual(brz("revno", cwd=self.path("copy")).stdout.strip(), b"2")
        self.assertEqual(set(statuses), {200})

    def test_removed_worker_loses_write_access(self) -> None:
        write_authentication_conf(self.store.public, "worker-1", "correct horse")
        brz("push", self.url_of(self.store.public), cwd=self.work, input=b"")
        good = basic("worker-1", "correct horse")
        self.assertEqual(credential_probe(self.store, "hello/lintian-fixes", good), 200)
        self.sql("DELETE FROM worker WHERE name = 'worker-1'")
        wait_for(
            lambda: credential_probe(self.store, "hello/lintian-fixes", good) == 401,
            "the removed worker to be refused",
        )
        self.commit(self.work)
        self.assert_public_push_gets_401()
        # and no codebase once it is deleted
        self.sql("DELETE FROM codebase WHERE name = 'hello'")
        wait_for(
            lambda: (
                http_request(self.store.public + "/hello/.bzr/smart", data=b"x")[2]
                == b"no such codebase: hello\n"
            ),
            "the deleted codebase to be gone",
        )

    def test_database_stopped_and_started_again(self) -> None:
        brz("push", self.url_of(self.store.admin), cwd=self.work)
        self.add_codebase("second")
        self.stop_cluster()
        probes = [
            (self.store.admin + "/second/.bzr/smart", {}),
            (self.store.public + "/second/.bzr/smart", {}),
            # a codebase remembered, but a worker never seen before
            (
                self.store.public + "/hello/.bzr/smart",
                basic("worker-1", "correct horse"),
            ),
        ]
        wait_for(
            lambda: (
                http_request(self.store.admin + "/hello/.bzr/smart", data=b"x")[0]
                == 503
            ),
            "hello's cache entry to expire",
        )
        for url, headers in probes:
            with self.subTest(url=url, headers=headers):
                status, h, body = http_request(url, data=b"x", headers=headers)
                self.assertEqual(status, 503)
                self.assertEqual(
                    body, b"temporarily unavailable: database unavailable\n"
                )
                self.assertTrue(h["Content-Type"].startswith("text/plain"))
        for policy in (
            self.store.admin_app.codebase_policy,
            self.store.public_app.write_policy,
        ):
            with self.assertRaises(PolicyUnavailable):
                policy.check_ready()
        status, _, body = http_request(self.store.admin + "/ready")
        self.assertEqual(status, 503)
        self.assertIn(b"database unavailable", body)
        proc = brz(
            "branch",
            self.url_of(self.store.public),
            self.path("copy"),
            check=False,
            input=b"",
        )
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("503", self.out(proc))
        self.assertNotIn("Traceback", self.out(proc))
        # back: service resumes without restarting the store
        self.cluster.start()
        for url, headers in probes:
            wait_for(
                lambda u=url, h=headers: (
                    http_request(u, data=b"x", headers=h)[0] == 200
                ),
                f"{url} to answer again",
            )
        brz("branch", self.url_of(self.store.public), self.path("copy"))
        write_authentication_conf(self.store.public, "worker-1", "correct horse")
        self.commit(self.work)
        brz("push", self.url_of(self.store.public), cwd=self.work, input=b"")
        self.store.admin_app.codebase_policy.check_ready()
        self.assertEqual(http_request(self.store.admin + "/ready")[::2], (200, b"ok"))

    def test_frozen_database_answers_503_not_a_hang(self) -> None:
        self.cluster.signal(signal.SIGSTOP)
        self.addCleanup(self.cluster.signal, signal.SIGCONT)
        status, _, body = http_request(
            self.store.admin + "/second/.bzr/smart", data=b"x"
        )
        self.assertEqual(
            (status, body), (503, b"temporarily unavailable: database unavailable\n")
        )
        self.cluster.signal(signal.SIGCONT)
        self.add_codebase("second")
        wait_for(
            lambda: (
                http_request(self.store.admin + "/second/.bzr/smart", data=b"x")[0]
                == 200
            ),
            "the database to answer again",
        )


class ServeWithDatabaseTests(DatabaseTestCase):
    def test_serve_with_only_a_database_url(self) -> None:
        self.add_codebase("hello")
        self.add_worker("worker-1", "correct horse")
        proc, admin, public = start_serve(
            self,
            *("-d", self.storage_dir, *FREE_PORTS),
            *("--listen", "127.0.0.1"),
            DATABASE_URL=self.url,
        )
        public += "/bzr"
        work = self.make_branch()
        write_authentication_conf(public, "worker-1", "correct horse")
        brz("push", f"bzr+{public}/hello/main-campaign", cwd=work, input=b"")
        brz("branch", f"bzr+{admin}/hello/main-campaign", self.path("copy"))
        status, _, body = http_request(admin + "/other/.bzr/smart", data=b"x")
        self.assertEqual((status, body), (404, b"no such codebase: other\n"))
        assert_stops_cleanly(self, proc)


def _setenv(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
