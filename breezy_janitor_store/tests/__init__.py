"""The project's test suite (``pytest`` or ``brz selftest -s bp.janitor_store``)."""

from __future__ import annotations

import unittest
from collections.abc import Iterator

PACKAGE = "breezy_janitor_store"


def test_suite(id_prefix: str | None = None) -> unittest.TestSuite:
    """Every test module's tests; with ``id_prefix``, their ids start with it
    instead of the package's name (``brz selftest -s`` selects by id)."""
    from .fixtures import iter_test_modules

    loader = unittest.TestLoader()
    names = [f"{__name__}.{module}" for module in iter_test_modules()]
    suite = loader.loadTestsFromNames(names)
    if id_prefix is None:
        return suite
    classes: dict[type, type] = {}
    return unittest.TestSuite(
        _renamed(test, id_prefix, classes) for test in _iter_tests(suite)
    )


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
        else:  # e.g. a module that failed to import: keep it selected
            module = f"{prefix}.{module}"
        renamed = classes[cls] = type(
            cls.__name__,
            (cls,),
            {"__module__": module, "__qualname__": cls.__qualname__},
        )
    test.__class__ = renamed
    return test
