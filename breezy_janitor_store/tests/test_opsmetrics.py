"""Operator's metrics: process metrics, in-flight gauges, and both faces'
series on the admin face's ``/metrics`` with one gunicorn per face."""

from __future__ import annotations

import os

from ..web.server import HELD_LOCKS
from .support import hostile
from .support.features import GUNICORN, require
from .support.fixtures import StoreTestCase, brz, http_request, wait_for
from .support.gunicorn import GunicornTestCase
from .support.metrics import scrape, value

PROCESS = (
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
)


class GaugeTests(StoreTestCase):
    def test_process_metrics_and_gauges(self) -> None:
        HELD_LOCKS.install()  # as serve and the WSGI entry do
        store = self.start_store(campaigns=["lintian-fixes"])
        work = self.make_branch()
        brz("push", "-q", self.smart_url(store.admin, "hello/lintian-fixes"), cwd=work)
        samples = scrape(store.admin)
        for name in PROCESS:
            self.assertGreater(value(samples, name), 0, name)
        # the scrape itself is in flight, on its connection
        self.assertEqual(
            value(samples, "bzr_store_http_requests_in_flight", face="admin"), 1
        )
        self.assertGreaterEqual(
            value(samples, "bzr_store_http_connections_open", face="admin"), 1
        )
        self.assertEqual(value(samples, "bzr_store_write_locks_held"), 0)
        # a branch lock taken by a client is held until it unlocks
        url = store.admin + "/hello/lintian-fixes/.bzr/smart"
        body = hostile.encode_request(b"Branch.lock_write", b".", b"", b"")
        ok, args = hostile.decode_response(http_request(url, data=body)[2])
        self.assertTrue(ok, args)
        self.assertEqual(value(scrape(store.admin), "bzr_store_write_locks_held"), 1)
        unlock = hostile.encode_request(b"Branch.unlock", b".", args[1], args[2])
        self.assertTrue(hostile.decode_response(http_request(url, data=unlock)[2])[0])
        self.assertEqual(value(scrape(store.admin), "bzr_store_write_locks_held"), 0)


class BothFacesUnderGunicornTests(GunicornTestCase):
    def test_admin_metrics_show_the_public_face_and_every_process(self) -> None:
        require(self, GUNICORN)
        dirs = {face: self.path(f"metrics-{face}") for face in ("admin", "public")}
        for path in dirs.values():
            os.mkdir(path)
        both = os.pathsep.join(dirs.values())
        bases = {
            face: self.start_gunicorn(
                workers=2,
                threads=2,
                BZR_STORE_FACE=face,
                PROMETHEUS_MULTIPROC_DIR=dirs[face],
                BZR_STORE_METRICS_DIRS=both,
            )
            for face in ("admin", "public")
        }
        for _ in range(3):
            self.assertEqual(http_request(bases["public"] + "/health")[0], 200)
        labels = {"endpoint": "health", "method": "GET", "status": "200"}

        def pids_of(samples: dict) -> set[str]:
            return {
                dict(labels)["pid"]
                for (name, labels) in samples
                if name == "process_resident_memory_bytes"
            }

        def counted() -> dict | None:
            samples = scrape(bases["admin"])
            public = value(
                samples, "bzr_store_http_requests_total", face="public", **labels
            )
            # (a worker logs that it boots before it has built the app)
            booted = len(pids_of(samples)) >= 4
            return samples if public >= 3 and booted else None

        # (and the one the fixture made to see it boot)
        samples = wait_for(counted, "the public face's requests on /metrics")
        # the public face has no /metrics of its own
        self.assertEqual(http_request(bases["public"] + "/metrics")[0], 404)
        # one process_* series per live worker of either instance
        pids = pids_of(samples)
        self.assertGreaterEqual(len(pids), 4, pids)
        for pid in pids:
            self.assertTrue(os.path.exists(f"/proc/{pid}"), pid)
        self.assertEqual(
            value(samples, "bzr_store_http_requests_in_flight", face="admin"), 1
        )
