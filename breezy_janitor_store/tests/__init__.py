"""The project's test suite (``pytest`` or ``brz selftest -s bp.janitor_store``)."""

import unittest


def test_suite() -> unittest.TestSuite:
    from .fixtures import iter_test_modules

    loader = unittest.TestLoader()
    names = [f"{__name__}.{module}" for module in iter_test_modules()]
    return loader.loadTestsFromNames(names)
