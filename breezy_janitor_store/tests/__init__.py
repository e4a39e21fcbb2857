"""The project's test suite (``pytest`` or ``brz selftest -s bp.janitor_store``)."""

from __future__ import annotations

import importlib
import unittest
from collections.abc import Iterator

PACKAGE = "breezy_janitor_store"


def test_suite(id_prefix: str | None = None) -> unittest.TestSuite:
    """Every test module's tests; with ``id_prefix``, their ids start with it
    instead of the package's name (``brz selftest -s`` selects by id)."""
    from .support.fixtures import iter_test_modules

    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for module in iter_test_modules():
        name = f"{__name__}.{module}"
        try:
            suite.addTests(loader.loadTestsFromModule(importlib.import_module(name)))
        except unittest.SkipTest as e:  # an optional dependency is missing
            suite.addTest(_module_test(name, "skipTest", str(e)))
        except ImportError as e:
            suite.addTest(_module_test(name, "fail", f"cannot import {name}: {e}"))
    if id_prefix is None:
        return suite
    classes: dict[type, type] = {}
    return unittest.TestSuite(
        _renamed(test, id_prefix, classes) for test in _iter_tests(suite)
    )


def _module_test(name: str, outcome: str, reason: str) -> unittest.TestCase:
    """A test standing for module ``name``: ``outcome`` (``skipTest`` or
    ``fail``) for ``reason``."""

    def test_module(self: unittest.TestCase) -> None:
        getattr(self, outcome)(reason)

    cls = type("Module", (unittest.TestCase,), {"__module__": name})
    cls.test_module = test_module
    return cls("test_module")


def _iter_tests(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _iter_tests(test)
        else:
            yield test


def _renamed(
    test: unittest.TestCase, prefix: str, classes: dict[type, type]
) -> unittest.TestCase:
    """``test``, made an instance of a subclass of its class whose module
    starts with ``prefix`` instead of the package's name (test ids are
    ``MODULE.CLASS.METHOD``)."""
    cls = type(test)
    renamed = classes.get(cls)
    if renamed is None:
        module = cls.__module__
        if module.startswith(PACKAGE + "."):
            module = prefix + module[len(PACKAGE) :]
        else:
            module = f"{prefix}.{module}"
        renamed = classes[cls] = type(
            cls.__name__,
            (cls,),
            {"__module__": module, "__qualname__": cls.__qualname__},
        )
    test.__class__ = renamed
    return test
