"""The breezy plugin: one copy of each module, tests found by ``brz selftest``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from .support.fixtures import brz, plugin_env

#: Loads plugins as ``brz`` does, then compares the plugin's modules with
#: the package's.
_PROBE = """
import sys
import breezy
from breezy import plugin
with breezy.initialize():
    plugin.load_plugins()
    import breezy.plugins.janitor_store as p
    import breezy_janitor_store
    import breezy_janitor_store.web.app
    import breezy_janitor_store.store.patches.packing
    print(p.store.patches.packing is breezy_janitor_store.store.patches.packing)
    print(p.web.app.StoreApp is breezy_janitor_store.StoreApp)
    print(p.__version__ == breezy_janitor_store.__version__)
    print(sorted(m for m in sys.modules if m.startswith("breezy.plugins.janitor_store.")))
    print(hasattr(p, "no_such_module"), hasattr(p, "load_tests"))
"""


class PluginLoadingTests(unittest.TestCase):
    def test_each_module_is_loaded_once(self) -> None:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env=plugin_env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        self.assertEqual(out, ["True", "True", "True", "[]", "False False"])

    def test_selftest_finds_the_tests(self) -> None:
        out = brz(
            "selftest", "-s", "bp.janitor_store", "--list-only", env=plugin_env()
        ).stdout.decode()
        ids = [line for line in out.splitlines() if line.strip()]
        prefix = "breezy.plugins.janitor_store.tests.test_"
        self.assertTrue(all(i.startswith(prefix) for i in ids), ids[:5])
        self.assertIn(
            "breezy.plugins.janitor_store.tests.test_plugin.PluginLoadingTests"
            ".test_each_module_is_loaded_once",
            ids,
        )

    def test_selftest_runs_them(self) -> None:
        proc = brz(
            "selftest",
            "-s",
            "bp.janitor_store.tests.test_layering",
            env=plugin_env(),
        )
        out = proc.stdout.decode()
        self.assertRegex(out, r"Ran [1-9]\d* tests?")
        self.assertRegex(out, r"\nOK\n")


class MissingOptionalDependencyTests(unittest.TestCase):
    """``brz selftest`` without hypothesis: skipped, or failing under CI."""

    def setUp(self) -> None:
        blocked = tempfile.mkdtemp(prefix="bjs-no-hypothesis-")
        self.addCleanup(shutil.rmtree, blocked, ignore_errors=True)
        os.mkdir(os.path.join(blocked, "hypothesis"))
        with open(os.path.join(blocked, "hypothesis", "__init__.py"), "w") as f:
            f.write("raise ImportError('hypothesis is blocked for this test')\n")
        self.blocked = blocked

    def selftest(self, ci: str) -> subprocess.CompletedProcess:
        env = plugin_env(CI=ci)
        env["PYTHONPATH"] = os.pathsep.join([self.blocked, env["PYTHONPATH"]])
        return brz(
            "selftest",
            "-v",
            "-s",
            "bp.janitor_store.tests.test_fuzz",
            env=env,
            check=False,
        )

    def test_skipped_without_ci(self) -> None:
        proc = self.selftest("")
        out = proc.stdout.decode() + proc.stderr.decode()
        self.assertEqual(proc.returncode, 0, out)
        self.assertIn("hypothesis is not available: pip install hypothesis", out)
        self.assertNotIn("Traceback", out)

    def test_failing_under_ci(self) -> None:
        proc = self.selftest("true")
        out = proc.stdout.decode() + proc.stderr.decode()
        self.assertNotEqual(proc.returncode, 0, out)
        self.assertIn("hypothesis is not available", out)
