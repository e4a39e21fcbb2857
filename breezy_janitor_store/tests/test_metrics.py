"""``GET /metrics``: what the metrics filter counts, in one and several processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

from ..policy.policies import CodebaseList
from ..web import metrics
from .support.api_fixtures import hello_store
from .support.fixtures import brz, http_request, python_env
from .support.metrics import scrape, scrape_until, value


class MetricsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.shared = hello_store()
        self.store = self.shared.store
        self.rev = self.shared.revisions

    def test_requests_latency_and_status(self) -> None:
        before = scrape(self.store.admin)
        http_request(self.store.admin + "/health")
        http_request(self.store.admin + "/repositories")
        http_request(self.store.admin + "/hello/diff?old=null:&new=no-such-revision")
        http_request(self.store.public_root + "/bzr/hello/")
        requests = "bzr_store_http_requests_total"
        expected = [
            {"face": "admin", "endpoint": e, "method": "GET", "status": s}
            for e, s in (("health", "200"), ("repositories", "200"), ("diff", "404"))
        ] + [
            {
                "face": "public",
                "endpoint": "browse-codebase",
                "method": "GET",
                "status": "200",
            }
        ]
        after = scrape_until(
            self.store.admin,
            lambda samples: all(
                value(samples, requests, **labels) > value(before, requests, **labels)
                for labels in expected
            ),
        )

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertEqual(
            delta(
                requests, face="admin", endpoint="health", method="GET", status="200"
            ),
            1,
        )
        self.assertEqual(
            delta(
                requests,
                face="admin",
                endpoint="repositories",
                method="GET",
                status="200",
            ),
            1,
        )
        self.assertEqual(
            delta(requests, face="admin", endpoint="diff", method="GET", status="404"),
            1,
        )
        self.assertEqual(
            delta(
                requests,
                face="public",
                endpoint="browse-codebase",
                method="GET",
                status="200",
            ),
            1,
        )
        # the first scrape is counted once it is done
        self.assertGreaterEqual(
            delta(
                requests, face="admin", endpoint="metrics", method="GET", status="200"
            ),
            1,
        )
        latency = "bzr_store_http_request_duration_seconds"
        self.assertEqual(delta(latency + "_count", face="admin", endpoint="diff"), 1)
        self.assertGreater(delta(latency + "_sum", face="admin", endpoint="diff"), 0)
        self.assertEqual(
            delta(latency + "_bucket", face="admin", endpoint="diff", le="+Inf"), 1
        )
        self.assertGreater(
            delta("bzr_store_http_sent_bytes_total", face="public"), 1000
        )

    def test_codebases_present(self) -> None:
        # hello only: norepo, README.txt, .hidden and Bad_Name do not count
        self.assertEqual(value(scrape(self.store.admin), "bzr_store_codebases"), 1)

    def test_smart_calls_by_verb_and_bytes(self) -> None:
        before = scrape(self.store.admin)
        target = tempfile.mkdtemp(prefix="bjs-metrics-")
        self.addCleanup(shutil.rmtree, target, ignore_errors=True)
        brz(
            "branch",
            "bzr+" + self.store.public + "/hello/lintian-fixes",
            os.path.join(target, "b"),
            env=self.shared.env,
        )
        calls = "bzr_store_smart_calls_total"

        def total(samples: dict, name: str, **labels: str) -> float:
            """Sum over the samples of ``name`` having ``labels``."""
            return sum(
                v - value(before, n, **dict(ls))
                for (n, ls), v in samples.items()
                if n == name and labels.items() <= dict(ls).items()
            )

        # Every smart request counted once as a request and once as a call;
        # wait for the last ones (counted when their bodies are closed).
        after = scrape_until(
            self.store.admin,
            lambda samples: (
                total(samples, calls, verb="Branch.get_tags_bytes")
                and total(samples, calls, face="public")
                == total(
                    samples,
                    "bzr_store_http_requests_total",
                    endpoint="smart",
                    face="public",
                )
            ),
        )
        self.assertGreater(total(after, calls, face="public"), 10)
        self.assertEqual(
            total(after, calls, face="public"),
            total(
                after, "bzr_store_http_requests_total", endpoint="smart", face="public"
            ),
        )

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        verbs = {
            dict(labels)["verb"]
            for (name, labels) in after
            if name == calls
            and dict(labels)["face"] == "public"
            and delta(calls, **dict(labels))
        }
        self.assertIn("BzrDir.open_2.1", verbs)
        self.assertIn("Repository.get_stream_1.19", verbs)
        self.assertIn("unknown", verbs)  # the version probe, in protocol 2
        self.assertGreater(
            delta("bzr_store_http_received_bytes_total", face="public"), 0
        )
        self.assertGreater(
            delta("bzr_store_http_sent_bytes_total", face="public"), 1000
        )

    def test_server_errors(self) -> None:
        before = scrape(self.store.admin)
        query = urllib.parse.urlencode({"old": "null:", "new": self.rev["r1"]})
        # a codebase the policy lists without its repository: 503
        app = self.store.admin_app
        self.addCleanup(setattr, app, "codebase_policy", app.codebase_policy)
        app.codebase_policy = CodebaseList(["hello", "norepo"])
        self.assertEqual(
            http_request(f"{self.store.admin}/norepo/diff?{query}")[0], 503
        )
        errors = "bzr_store_errors_total"
        labels = {"face": "admin", "endpoint": "diff", "kind": "status"}
        after = scrape_until(
            self.store.admin,
            lambda samples: (
                value(samples, errors, **labels) > value(before, errors, **labels)
            ),
        )
        self.assertEqual(
            value(after, errors, **labels) - value(before, errors, **labels), 1
        )

    def test_openmetrics_format(self) -> None:
        status, headers, body = http_request(
            self.store.admin + "/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        )
        self.assertEqual(status, 200)
        self.assertTrue(
            headers["Content-Type"].startswith("application/openmetrics-text")
        )
        self.assertTrue(body.endswith(b"# EOF\n"))

    def test_unknown_verbs_share_one_label(self) -> None:
        self.assertEqual(metrics._verb(b"BzrDir.open_2.1"), "BzrDir.open_2.1")
        self.assertEqual(metrics._verb(b"made-up\x00verb"), "unknown")
        self.assertEqual(metrics._verb(None), "unknown")


_SERVE = """
import sys
from breezy_janitor_store.web.app import StoreApp
from breezy_janitor_store.web.server import make_server

server = make_server(StoreApp(sys.argv[1]), "127.0.0.1", 0)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class MultiprocessTests(unittest.TestCase):
    """Two server processes sharing PROMETHEUS_MULTIPROC_DIR."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="bjs-multiproc-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.metrics_dir = os.path.join(self.tmp, "metrics")
        os.mkdir(self.metrics_dir)
        self.storage = hello_store().storage_dir

    def serve(self) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, self.storage],
            env=python_env(**{metrics.MULTIPROC_ENV: self.metrics_dir}),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.terminate)
        port = proc.stdout.readline().decode().strip()
        self.assertTrue(port.isdigit(), "the server process did not start")
        return f"http://127.0.0.1:{port}"

    def test_counts_add_up_across_processes(self) -> None:
        first, second = self.serve(), self.serve()
        for _ in range(3):
            self.assertEqual(http_request(first + "/health")[0], 200)
        for _ in range(5):
            self.assertEqual(http_request(second + "/health")[0], 200)
        labels = {
            "face": "admin",
            "endpoint": "health",
            "method": "GET",
            "status": "200",
        }
        for base in (first, second):
            samples = scrape_until(
                base,
                lambda samples: (
                    value(samples, "bzr_store_http_requests_total", **labels) >= 8
                ),
            )
            self.assertEqual(
                value(samples, "bzr_store_http_requests_total", **labels), 8
            )
            self.assertEqual(
                value(
                    samples,
                    "bzr_store_http_request_duration_seconds_count",
                    face="admin",
                    endpoint="health",
                ),
                8,
            )
            # a gauge counted at scrape time: once, not once per process
            self.assertEqual(value(samples, "bzr_store_codebases"), 1)
        self.assertTrue(os.listdir(self.metrics_dir))
