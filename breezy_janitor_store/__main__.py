"""``python -m breezy_janitor_store ARGS``: the same as ``brz janitor-store ARGS``.

For an image or a virtualenv that runs the store without the ``brz``
script on its path, or without the plugin installed.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``brz janitor-store`` with this process's arguments; exits."""
    import breezy.__main__  # sets the locale as ``brz`` does

    from . import register_commands

    register_commands(__package__ or "breezy_janitor_store")
    sys.argv = ["brz", "janitor-store", *sys.argv[1:]]
    breezy.__main__.main()


if __name__ == "__main__":
    main()
