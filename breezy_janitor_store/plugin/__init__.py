"""breezy's entry point: registers ``brz janitor-store`` and the plugin's tests.

``setup.py`` installs this directory as ``breezy/plugins/janitor_store/``;
from a checkout, breezy loads it with
``BRZ_PLUGINS_AT=janitor_store@CHECKOUT/breezy_janitor_store/plugin``.
Everything else is imported from ``breezy_janitor_store`` by its own name,
so each module exists once in a process: the package's modules are this
module's attributes (``breezy.plugins.janitor_store.store`` is
``breezy_janitor_store.store``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.basename(_HERE) == "plugin":
    # Loaded from a checkout: import the package next to this directory.
    _CHECKOUT = os.path.dirname(os.path.dirname(_HERE))
    if _CHECKOUT not in sys.path:
        sys.path.insert(0, _CHECKOUT)

from breezy_janitor_store import __version__, register_commands, version_info

__all__ = ["__version__", "test_suite", "version_info"]

_PACKAGE = "breezy_janitor_store"

register_commands(_PACKAGE)


def __getattr__(name: str):
    """The package's modules, imported on first use."""
    if not name.startswith("_") and importlib.util.find_spec(f"{_PACKAGE}.{name}"):
        return importlib.import_module(f"{_PACKAGE}.{name}")
    raise AttributeError(name)


def test_suite():
    """The package's tests, with ids under ``breezy.plugins.janitor_store``
    (so ``brz selftest -s bp.janitor_store`` selects them); none when the
    package is installed without them (they live in the checkout)."""
    import unittest

    if importlib.util.find_spec(f"{_PACKAGE}.tests") is None:
        return unittest.TestSuite()
    from breezy_janitor_store.tests import test_suite as suite

    return suite(id_prefix=__name__)
