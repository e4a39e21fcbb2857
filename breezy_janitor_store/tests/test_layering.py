"""The package's layers (see its docstring): who may import whom.

The layers are the package's folders, lowest first: ``store`` (the bzr
side), ``smart`` (the smart protocol), ``policy`` (policies, settings,
credentials), ``web`` (WSGI).  A module imports only from its own layer and
the layers below it, type-only imports included; the entry points (the
package's top-level modules and ``plugin``) may import any layer.  The
modules' imports, those inside functions included, form no cycle.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import unittest

from .. import __doc__ as PACKAGE_DOC
from .support.fixtures import python_env

PACKAGE = "breezy_janitor_store"
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The layers, lowest first: each is a folder of the package.
LAYERS = ("store", "smart", "policy", "web")
#: No module may be longer than this many lines.
MAX_LINES = 700


def _modules() -> dict[str, str]:
    """Every module of the package but its tests, by dotted name relative to
    the package (a package's ``__init__`` by the package's name), with its
    path."""
    found: dict[str, str] = {}
    for directory, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d not in ("tests", "__pycache__"))
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            parts = os.path.relpath(path, PACKAGE_DIR)[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def layer_of(module: str) -> int | None:
    """The index of ``module``'s layer in :data:`LAYERS`; None for an entry
    point."""
    head = module.split(".")[0]
    return LAYERS.index(head) if head in LAYERS else None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, *, type_only: bool = True) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its code.

    :param type_only: count imports under ``if TYPE_CHECKING:`` too.
    """
    modules = _modules()
    path = modules[module]
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    if module == "plugin":  # breezy's name for it is breezy.plugins.janitor_store
        package = None
    found: set[str] = set()

    def resolve(node: ast.ImportFrom) -> str | None:
        name = node.module or ""
        if node.level == 0:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                return name[len(PACKAGE) + 1 :]
            return None
        if package is None:
            return None
        base = package.split(".") if package else []
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        return ".".join([*base, *([name] if name else [])])

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            target = resolve(node)
            if target is not None:
                for alias in node.names:
                    full = f"{target}.{alias.name}" if target else alias.name
                    found.add(full if full in modules else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name[len(PACKAGE) + 1 :])
        for child in ast.iter_child_nodes(node):
            visit(child)

    with open(path, encoding="utf-8") as f:
        visit(ast.parse(f.read()))
    return {m for m in found if m in modules and not m.startswith("tests")} - {
        module
    }


class LayeringTests(unittest.TestCase):
    def test_every_module_is_in_a_layer_or_an_entry_point(self) -> None:
        for module in _modules():
            if layer_of(module) is None:
                with self.subTest(module=module):
                    self.assertNotIn(".", module, "a folder that is no layer")

    def test_a_module_imports_only_its_layer_and_those_below(self) -> None:
        for module in _modules():
            layer = layer_of(module)
            if layer is None:
                continue
            for imported in imports_of(module):
                with self.subTest(module=module, imported=imported):
                    below = layer_of(imported)
                    self.assertIsNotNone(below, "imports an entry point")
                    self.assertLessEqual(below, layer)

    def test_no_import_cycle_type_only_imports_included(self) -> None:
        graph = {m: imports_of(m) for m in _modules()}
        done: set[str] = set()

        def walk(module: str, path: tuple[str, ...]) -> None:
            if module in path:
                cycle = path[path.index(module) :] + (module,)
                self.fail("import cycle: " + " -> ".join(cycle))
            if module in done:
                return
            for imported in sorted(graph.get(module, ())):
                walk(imported, (*path, module))
            done.add(module)

        for module in graph:
            walk(module, ())

    def test_importing_the_lower_layers_loads_no_web_module(self) -> None:
        lower = sorted(m for m in _modules() if layer_of(m) in (0, 1, 2))
        code = (
            "import sys\n"
            f"for m in {lower!r}:\n"
            f"    __import__('{PACKAGE}.' + m)\n"
            f"web = sorted(m for m in sys.modules if m.startswith('{PACKAGE}.web'))\n"
            "print(','.join(web))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=python_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        self.assertEqual(out.stdout.strip(), "")

    def test_no_module_is_longer_than_the_limit(self) -> None:
        for module, path in _modules().items():
            with self.subTest(module=module), open(path, encoding="utf-8") as f:
                self.assertLessEqual(sum(1 for _ in f), MAX_LINES)

    def test_the_map_names_every_layer_and_module(self) -> None:
        for layer in LAYERS:
            with self.subTest(layer=layer):
                self.assertIn(f"``{layer}/``", PACKAGE_DOC)
        for module in _modules():
            if "." not in module:
                continue
            package, _, name = module.rpartition(".")
            with self.subTest(module=module):
                self.assertIn(f"``{name}``", _docstring(package))


class TestModuleTests(unittest.TestCase):
    def test_no_test_module_imports_another(self) -> None:
        """Tests share code through ``tests/support/`` only."""
        here = os.path.dirname(os.path.abspath(__file__))
        for name in sorted(os.listdir(here)):
            if not (name.startswith("test_") and name.endswith(".py")):
                continue
            with open(os.path.join(here, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    imported = [node.module or ""] + [a.name for a in node.names]
                    with self.subTest(module=name, imported=imported[0]):
                        self.assertFalse(
                            any(m.split(".")[0].startswith("test_") for m in imported)
                        )


def _docstring(module: str) -> str:
    with open(_modules()[module], encoding="utf-8") as f:
        return ast.get_docstring(ast.parse(f.read())) or ""
