"""setup.py declares what the code imports, and nothing else."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from .support.fixtures import PROJECT_ROOT, brz_command

PACKAGE_DIR = os.path.join(PROJECT_ROOT, "breezy_janitor_store")
#: Distribution name -> the module it provides.
MODULE_OF = {
    "prometheus-client": "prometheus_client",
    "psycopg-pool": "psycopg_pool",
    "google-cloud-logging": "google",
    "pyyaml": "yaml",
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
        if not recurse:  # the library's folders, not its tests
            dirs[:] = [d for d in dirs if d != "tests"]
    return found


class RequirementsTests(unittest.TestCase):
    def test_install_requires_is_what_the_library_imports(self) -> None:
        required, extras = _requirements()
        library = _imported(PACKAGE_DIR, recurse=False)  # the package, not its tests
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


class InstalledFilesTests(unittest.TestCase):
    """What an installation gets: the library and the plugin, not the tests
    (``setup.py build_py`` lays out exactly what a wheel holds)."""

    def setUp(self) -> None:
        _requirements()  # skipped without the source checkout
        self.lib = tempfile.mkdtemp(prefix="bjs-build-")
        self.addCleanup(shutil.rmtree, self.lib, ignore_errors=True)
        scratch = tempfile.mkdtemp(prefix="bjs-build-tmp-")
        self.addCleanup(shutil.rmtree, scratch, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "setup.py",
                "-q",
                "build",
                "--build-base",
                scratch,
                "build_py",
                "--build-lib",
                self.lib,
            ],
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=self.lib)
        env["BRZ_PLUGINS_AT"] = "janitor_store@" + os.path.join(
            self.lib, "breezy", "plugins", "janitor_store"
        )
        return env

    def test_tests_are_not_installed(self) -> None:
        package = os.path.join(self.lib, "breezy_janitor_store")
        self.assertTrue(os.path.exists(os.path.join(package, "__main__.py")))
        self.assertTrue(
            os.path.exists(
                os.path.join(
                    self.lib, "breezy", "plugins", "janitor_store", "__init__.py"
                )
            )
        )
        self.assertFalse(os.path.exists(os.path.join(package, "tests")))
        # brz selftest of the installed plugin: nothing to run, no error
        proc = subprocess.run(
            [*brz_command(), "selftest", "-s", "bp.janitor_store"],
            env=self.env(),
            cwd=self.lib,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("Ran 0 tests", proc.stdout + proc.stderr)

    def test_every_module_and_template_is_installed(self) -> None:
        """Every module of the library (subpackages included) and every
        file of the page templates is in the build."""
        missing = []
        for top, dirs, files in os.walk(PACKAGE_DIR):
            dirs[:] = [d for d in dirs if d not in ("tests", "__pycache__")]
            rel = os.path.relpath(top, PACKAGE_DIR)
            if rel.split(os.sep)[0] == "plugin":
                continue  # installed as breezy/plugins/janitor_store
            for name in files:
                if name.endswith(".py") or os.sep + "templates" in os.sep + rel:
                    where = os.path.join(self.lib, "breezy_janitor_store", rel, name)
                    if not os.path.exists(where):
                        missing.append(os.path.join(rel, name))
        self.assertEqual(missing, [])

    def test_python_m_is_brz_janitor_store(self) -> None:
        def run(*command: str) -> tuple[int, str, str]:
            proc = subprocess.run(
                list(command),
                env=self.env(),
                cwd=self.lib,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            return proc.returncode, proc.stdout, proc.stderr

        for args in (
            ["--help"],
            ["serve", "--help"],
            ["frob"],
            ["gc", "-d", "/nonexistent"],
        ):
            with self.subTest(args=args):
                self.assertEqual(
                    run(sys.executable, "-m", "breezy_janitor_store", *args),
                    run(*brz_command(), "janitor-store", *args),
                )

    def test_metadata(self) -> None:
        proc = subprocess.run(
            [sys.executable, "setup.py", "--author", "--url", "--classifiers"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        self.assertIn("breezy-janitor-store developers", proc.stdout)
        self.assertIn("Topic :: Software Development :: Version Control", proc.stdout)
