"""A store served by gunicorn, several worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .features import GUNICORN, require
from .fixtures import (
    StoreTestCase,
    http_request,
    python_env,
    stop_process,
    wait_for,
)


class GunicornTestCase(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        require(self, GUNICORN)

    def start_gunicorn(
        self, *, workers: int = 4, threads: int = 4, app: str = "application", **env
    ) -> str:
        """``http://127.0.0.1:PORT`` of gunicorn serving the store's WSGI module."""
        proc = self.spawn_gunicorn(workers=workers, threads=threads, app=app, **env)
        log = self.path(f"gunicorn-{proc.pid}.log")

        def listening() -> str | None:
            with open(log) as f:
                text = f.read()
            if "Listening at: " in text:
                return text.split("Listening at: ", 1)[1].split()[0]
            if proc.poll() is not None:
                self.fail(f"gunicorn exited ({proc.returncode}):\n{text}")
            return None

        base = wait_for(listening, "gunicorn to listen")
        self.wait_for_workers(base, log, workers)
        self.log = log
        return base

    def spawn_gunicorn(
        self, *, workers: int, threads: int, app: str = "application", **env
    ) -> subprocess.Popen:
        log = self.path("gunicorn.log")
        with open(log, "w") as f:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    "127.0.0.1:0",
                    "--workers",
                    str(workers),
                    "--worker-class",
                    "gthread",
                    "--threads",
                    str(threads),
                    "--log-level",
                    "info",
                    f"breezy_janitor_store.wsgi:{app}",
                ],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=python_env(**{"BZR_STORE_PATH": self.storage_dir, **env}),
                cwd=self.tmp,
            )
        os.rename(log, self.path(f"gunicorn-{proc.pid}.log"))
        self.addCleanup(_stop, proc)
        return proc

    def wait_for_workers(self, base: str, log: str, workers: int) -> None:
        """Poll until every worker has booted (each logs 'Booting worker')."""

        def booted() -> bool:
            with open(log) as f:
                count = f.read().count("Booting worker")
            return count >= workers and http_request(base + "/health")[0] == 200

        wait_for(booted, "gunicorn's workers to boot")


def _stop(proc: subprocess.Popen) -> None:
    stop_process(proc, signal.SIGTERM, 30)
