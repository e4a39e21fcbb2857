"""The breezy plugin: one copy of each module, tests found by ``brz selftest``."""

from __future__ import annotations

import subprocess
import sys
import unittest

from .fixtures import brz, plugin_env

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
    import breezy_janitor_store.app
    import breezy_janitor_store.packing
    print(p.packing is breezy_janitor_store.packing)
    print(p.app.StoreApp is breezy_janitor_store.StoreApp)
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
