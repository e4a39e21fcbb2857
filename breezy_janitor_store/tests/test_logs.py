"""One log format for the whole process: the store's, breezy's (lock waits
included), the libraries'; text or JSON; start, drain and stop logged."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from ..policy.config import ConfigError
from ..serve import ServeSettings
from .support.fixtures import (
    FREE_PORTS,
    StoreTestCase,
    http_request,
    python_env,
    start_serve,
)
from .support.logs import TEXT_LINE

#: A process that logs as ``serve`` does, through every kind of logger.
_EVERY_LOGGER = """
import logging, sys, warnings
import breezy
from breezy import lockdir, trace
from breezy.transport import get_transport
from breezy_janitor_store.serve import setup_logging
from breezy_janitor_store.web import logs

with breezy.initialize(setup_ui=False):
    setup_logging(log_format=sys.argv[1])
    logging.getLogger("breezy_janitor_store.store.locks").info("from the store")
    logging.getLogger("psycopg_pool").warning("from psycopg_pool")
    warnings.warn("from warnings")
    trace.note("a breezy note")
    trace.mutter("breezy debug: only in its own file")
    t = get_transport(sys.argv[2])
    held = lockdir.LockDir(t, "lock")
    held.create()
    held.attempt_lock()
    waiting = lockdir.LockDir(t, "lock")
    try:
        waiting.wait_lock(timeout=0.2, poll=0.1)
    except Exception as e:
        logging.getLogger("breezy_janitor_store.store.locks").warning("gave up: %s", type(e).__name__)
    held.unlock()
    logs.flush_all()
"""


class EveryLoggerTests(StoreTestCase):
    def run_logging(self, fmt: str) -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-c", _EVERY_LOGGER, fmt, self.tmp],
            env=python_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return proc.stderr.splitlines()

    def test_json_lines_from_every_logger(self) -> None:
        lines = self.run_logging("json")
        records = [json.loads(line) for line in lines if line.startswith("{")]
        # every line is a record (a multi-line message is one JSON string)
        self.assertEqual(len(records), len(lines), lines)
        by_logger = {}
        for record in records:
            by_logger.setdefault(record["logger"], []).append(record["message"])
        self.assertIn("from the store", by_logger["breezy_janitor_store.store.locks"])
        self.assertEqual(by_logger["psycopg_pool"], ["from psycopg_pool"])
        self.assertTrue(any("from warnings" in m for m in by_logger["py.warnings"]))
        self.assertIn("a breezy note", by_logger["brz"])
        # breezy's lock wait reaches the service's log
        self.assertTrue(
            any(m.startswith("Unable to obtain lock") for m in by_logger["brz"]),
            by_logger["brz"],
        )
        self.assertNotIn("breezy debug: only in its own file", str(records))
        self.assertEqual(
            {tuple(sorted(r)) for r in records},
            {("level", "logger", "message", "pid", "request_id", "time")},
        )

    def test_text_lines_from_every_logger(self) -> None:
        lines = self.run_logging("text")
        starts = [line for line in lines if TEXT_LINE.fullmatch(line)]
        self.assertTrue(any(" brz: a breezy note" in line for line in starts))
        self.assertTrue(
            any(" psycopg_pool: from psycopg_pool" in line for line in starts)
        )
        self.assertTrue(any(" brz: Unable to obtain lock" in line for line in starts))
        # the further lines of a multi-line message are indented
        for line in lines:
            if not TEXT_LINE.fullmatch(line):
                self.assertTrue(line.startswith("  ") and line.strip(), line)
        self.assertIn('  See "brz help break-lock" for more.', lines)


class ServeLogTests(StoreTestCase):
    def test_start_access_and_stop_in_one_format(self) -> None:
        for fmt in ("text", "json"):
            with self.subTest(fmt=fmt):
                proc, admin, _ = start_serve(
                    self, "-d", self.storage_dir, *FREE_PORTS, "--log-format", fmt
                )
                _, headers, _ = http_request(admin + "/health")
                rid = headers["X-Request-Id"]
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(60), 0)
                lines = proc.stderr.read().decode().splitlines()
                if fmt == "json":
                    records = [json.loads(line) for line in lines]
                    messages = [r["message"] for r in records]
                    [access] = [r for r in records if "http" in r]
                    self.assertEqual(access["request_id"], rid)
                    self.assertEqual(access["http"]["status"], 200)
                    self.assertEqual(access["http"]["path"], "/health")
                    self.assertIsInstance(access["http"]["duration"], float)
                else:
                    for line in lines:
                        self.assertRegex(line, TEXT_LINE)
                    messages = [line.split(": ", 1)[1] for line in lines]
                    self.assertTrue(
                        any(f"[{rid}] breezy_janitor_store.access" in x for x in lines)
                    )
                self.assertTrue(
                    any(m.startswith("serving the admin face on") for m in messages)
                )
                self.assertIn(
                    "SIGTERM: stopped accepting connections; draining (up to 30 s)",
                    messages,
                )
                self.assertEqual(messages[-1], "stopped")

    def test_unknown_format_is_refused(self) -> None:
        with self.assertRaisesRegex(
            ConfigError, "log format must be one of text, json"
        ):
            ServeSettings.resolve(directory=self.storage_dir, log_format="xml")
