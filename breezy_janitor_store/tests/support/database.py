"""A store whose codebases and workers come from a throwaway PostgreSQL cluster."""

from __future__ import annotations

from ...policy.db import Database, PostgresCodebases, PostgresWorkers
from .fixtures import (
    StoreTestCase,
)
from .pgcluster import shared_cluster

#: Short timeouts and TTLs, so outages and expiries show within a test.
TIMEOUT = 1.0


TTL = 0.5


class DatabaseTestCase(StoreTestCase):
    """A test with the shared cluster and a fresh janitor database."""

    def setUp(self) -> None:
        super().setUp()
        self.cluster = shared_cluster(self)
        self.dbname = self.cluster.create_database()
        self.addCleanup(self.cluster.drop_database, self.dbname)
        self.url = self.cluster.url(self.dbname)
        self.database = Database(self.url, timeout=TIMEOUT)
        self.addCleanup(self.database.close)

    def sql(self, query: str, *params) -> list:
        with self.cluster.connect(self.dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def add_codebase(self, *names: str) -> None:
        for name in names:
            self.sql("INSERT INTO codebase (name) VALUES (%s)", name)

    def add_worker(self, name: str, password: str) -> None:
        self.sql(
            "INSERT INTO worker (name, password) VALUES (%s, crypt(%s, gen_salt('bf')))",
            name,
            password,
        )

    def start_db_store(self, ttl: float = TTL):
        """A store whose codebases and public-face workers are the database's."""
        self.codebases = PostgresCodebases(self.database, ttl=ttl, missing_ttl=ttl)
        self.workers = PostgresWorkers(self.database, ttl=ttl)
        from ...policy.auth import BasicAuth

        return self.start_store(
            campaigns=["lintian-fixes"],
            codebase_policy=self.codebases,
            public={"write_policy": BasicAuth(self.workers)},
        )

    def stop_cluster(self) -> None:
        """Stop the server; it is started again at the end of the test."""
        self.cluster.stop()
        self.addCleanup(self._restart)

    def _restart(self) -> None:
        if not self.cluster.running():
            self.cluster.start()
