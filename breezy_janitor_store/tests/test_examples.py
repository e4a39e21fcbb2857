"""The programs in ``examples/`` run and serve real pushes and branches."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import unittest

from paste import httpserver

from .support.fixtures import StoreTestCase, brz, http_request, python_env

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def load_example(name: str):
    path = os.path.join(EXAMPLES, name + ".py")
    if not os.path.exists(path):
        raise unittest.SkipTest(f"examples/ is not beside this installation ({path})")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ExampleTests(StoreTestCase):
    def test_embed_urlmap(self) -> None:
        example = load_example("embed_urlmap")
        server = httpserver.serve(
            example.make_app(self.storage_dir),
            host="127.0.0.1",
            port="0",
            start_loop=False,
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(server.server_close)
        self.addCleanup(setattr, server, "running", False)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        work = self.make_branch(revisions=2)
        brz("push", f"bzr+{base}/store/hello/lintian-fixes", cwd=work)
        brz("branch", f"bzr+{base}/pub/bzr/hello/lintian-fixes", self.path("copy"))
        self.assertEqual(brz("revno", self.path("copy")).stdout.strip(), b"2")
        self.assertEqual(http_request(base + "/")[2], b"the host application\n")
        self.assertEqual(http_request(base + "/store/health")[2], b"ok")

    def test_minimal_server(self) -> None:
        load_example("minimal_server")  # skips when examples/ is not there
        proc = subprocess.Popen(
            [
                sys.executable,
                os.path.join(EXAMPLES, "minimal_server.py"),
                self.storage_dir,
            ],
            stdout=subprocess.PIPE,
            env=python_env(),
        )
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.kill)
        url = proc.stdout.readline().decode().strip()
        self.assertTrue(url.startswith("http://127.0.0.1:"), url)
        work = self.make_branch(revisions=3)
        brz("push", f"bzr+{url}hello/lintian-fixes", cwd=work)
        self.assertEqual(
            brz("revno", f"bzr+{url}hello/lintian-fixes").stdout.strip(), b"3"
        )
        proc = brz("push", f"bzr+{url}hello/other", cwd=work, check=False)
        self.assertNotEqual(proc.returncode, 0)
