"""The package's layers (see its docstring): who may import whom.

The bzr side and the policies never import the web side, and the modules'
imports, those inside functions included, form no cycle.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import unittest

from .. import __doc__ as PACKAGE_DOC
from .fixtures import python_env

PACKAGE = "breezy_janitor_store"
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The web side (WSGI) and the entry points built on it.
WEB = frozenset(
    {
        "http",
        "metrics",
        "opsmetrics",
        "filters",
        "browse",
        "files",
        "api",
        "app",
        "server",
        "framing",
        "revinfo",
    }
)
ENTRY_POINTS = frozenset({"serve", "cmds", "wsgi", "plugin", "__main__"})
#: Modules of the bzr side and the policies (every other module is held to
#: the same rule: it must not import the web side).
LOWER = (
    "layout",
    "durable",
    "holders",
    "transport",
    "packing",
    "storage",
    "gc",
    "branches",
    "history",
    "diff",
    "locks",
    "gc",
    "damage",
    "smart",
    "check",
    "backup",
    "context",
    "policies",
    "config",
    "auth",
    "db",
    "dircap",
    "tipcheck",
    "connguard",
)


def _modules() -> list[str]:
    """The package's modules, and ``plugin`` in a checkout (installed, it
    is breezy's ``breezy.plugins.janitor_store``)."""
    names = [
        name[:-3]
        for name in os.listdir(PACKAGE_DIR)
        if name.endswith(".py") and name != "__init__.py"
    ]
    if os.path.exists(os.path.join(PACKAGE_DIR, "plugin", "__init__.py")):
        names.append("plugin")
    return sorted(names)


def _source(module: str) -> str:
    if module == "plugin":
        path = os.path.join(PACKAGE_DIR, "plugin", "__init__.py")
    else:
        path = os.path.join(PACKAGE_DIR, module + ".py")
    with open(path, encoding="utf-8") as f:
        return f.read()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, *, type_only: bool = True) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its code.

    :param type_only: count imports under ``if TYPE_CHECKING:`` too.
    """
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_only:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level == 0 and (name + ".").startswith(PACKAGE + "."):
                name = name[len(PACKAGE) + 1 :]
            elif not (node.level == 1 and module != "plugin"):
                name = None  # outside the package (or its tests)
            if name:
                found.add(name.split(".")[0])
            elif name is not None:  # from PACKAGE import a, b
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name.split(".")[1])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(_source(module)))
    return (found & set(_modules())) - {module}


class LayeringTests(unittest.TestCase):
    def test_lower_layers_never_import_the_web_side(self) -> None:
        for module in _modules():
            if module in WEB or module in ENTRY_POINTS:
                continue
            with self.subTest(module=module):
                self.assertEqual(imports_of(module) & WEB, set())

    def test_no_import_cycle(self) -> None:
        graph = {m: imports_of(m, type_only=False) for m in _modules()}
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

    def test_importing_the_bzr_side_loads_no_web_module(self) -> None:
        code = (
            "import sys\n"
            f"for m in {LOWER!r}:\n"
            f"    __import__('{PACKAGE}.' + m)\n"
            f"web = sorted(m for m in sys.modules if m.startswith('{PACKAGE}.')"
            f" and m.split('.')[1] in {sorted(WEB)!r})\n"
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

    def test_the_map_names_every_module(self) -> None:
        for module in sorted(set(LOWER) | WEB | ENTRY_POINTS):
            with self.subTest(module=module):
                self.assertIn(f"``{module}``", PACKAGE_DOC)
