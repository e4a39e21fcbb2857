"""setup.py declares what the code imports, and nothing else."""

from __future__ import annotations

import ast
import os
import sys
import unittest

from .fixtures import PROJECT_ROOT

PACKAGE_DIR = os.path.join(PROJECT_ROOT, "breezy_janitor_store")
#: Distribution name -> the module it provides.
MODULE_OF = {
    "prometheus-client": "prometheus_client",
    "psycopg-pool": "psycopg_pool",
    "google-cloud-logging": "google",
}


def _requirements() -> tuple[set[str], dict[str, set[str]]]:
    """``install_requires`` and ``extras_require`` of setup.py, as names."""
    path = os.path.join(PROJECT_ROOT, "setup.py")
    if not os.path.exists(path):
        raise unittest.SkipTest("needs the source checkout (setup.py)")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    call = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"
    )
    kwargs = {
        k.arg: ast.literal_eval(k.value)
        for k in call.keywords
        if k.arg
        in (
            "install_requires",
            "extras_require",
        )
    }

    def names(specs: list[str]) -> set[str]:
        return {_name(s) for s in specs}

    return names(kwargs["install_requires"]), {
        k: names(v) for k, v in kwargs["extras_require"].items()
    }


def _name(spec: str) -> str:
    for sep in "<>=!~[; ":
        spec = spec.split(sep, 1)[0]
    return spec.lower()


def _module(name: str) -> str:
    return MODULE_OF.get(name, name.replace("-", "_"))


def _imports_of(path: str) -> set[str]:
    """Third-party top-level modules imported by the file ``path``."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
    return {
        m
        for m in found
        if m not in sys.stdlib_module_names and m != "breezy_janitor_store"
    }


def _imported(directory: str, recurse: bool = True) -> set[str]:
    """Third-party modules imported by the ``.py`` files of ``directory``."""
    found = set()
    for top, dirs, files in os.walk(directory):
        for name in files:
            if name.endswith(".py"):
                found |= _imports_of(os.path.join(top, name))
        if not recurse:
            dirs[:] = [d for d in dirs if d == "plugin"]
    return found


class RequirementsTests(unittest.TestCase):
    def test_install_requires_is_what_the_library_imports(self) -> None:
        required, extras = _requirements()
        library = _imported(PACKAGE_DIR, recurse=False)  # the package and plugin/
        optional = {_module(n) for n in extras["gcp"]}
        self.assertEqual(library - optional, {_module(n) for n in required})

    def test_breezy_is_bounded(self) -> None:
        _requirements()  # skipped without the source checkout
        path = os.path.join(PROJECT_ROOT, "setup.py")
        with open(path, encoding="utf-8") as f:
            self.assertIn('"breezy>=3.3,<3.4"', f.read())

    def test_test_extra_covers_what_the_tests_import(self) -> None:
        required, extras = _requirements()
        tests = _imported(os.path.join(PACKAGE_DIR, "tests"))
        declared = {_module(n) for n in required | extras["test"] | extras["gcp"]}
        self.assertEqual(tests - declared, set())
