"""breezy's entry point for the installed package.

``setup.py`` installs this file as ``breezy/plugins/janitor_store/`` so that
``brz`` finds the plugin; its submodules (commands, tests) are loaded from
the ``breezy_janitor_store`` package itself.
"""

import breezy_janitor_store as _package

__path__ = list(_package.__path__)
__doc__ = _package.__doc__
__version__ = _package.__version__
version_info = _package.version_info
_package.register_commands(__name__)


def test_suite():
    """The plugin's tests, with ids under ``breezy.plugins.janitor_store``."""
    from .tests import test_suite as suite

    return suite()
