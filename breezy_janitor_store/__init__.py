"""A Bazaar code-hosting store for the Debian Janitor, as a breezy plugin.

``from breezy_janitor_store import StoreApp`` gives the store as a PEP 3333
WSGI callable; ``brz janitor-store serve`` runs it on an embedded server.

The layers are its folders, lowest first; a module imports only from its
own layer and the layers below it (``tests/test_layering.py`` checks it, and
that imports form no cycle):

* ``store/``: the bzr side, no HTTP: layout rules, the jailed transport,
  storage, branches, history, diffs, locks, checks, and the breezy patches
  (``store/patches/``);
* ``smart/``: the bzr smart protocol over one HTTP POST;
* ``policy/``: which codebases and campaigns exist, who writes, settings,
  credentials and the janitor's database;
* ``web/``: WSGI: the faces, routes and handlers, filters, metrics and the
  embedded server.

Entry points stay thin at the top: ``serve`` and ``cmds`` (``brz
janitor-store``), ``wsgi`` (for gunicorn), ``plugin`` (the installed breezy
plugin), ``__main__`` (``python -m breezy_janitor_store``).
"""

from __future__ import annotations

version_info = (0, 1, 0, "final", 0)
__version__ = "0.1.0"

__all__ = ["StoreApp", "__version__", "version_info"]


def __getattr__(name: str):
    # Imported lazily: loading the plugin must stay cheap for every brz run.
    if name == "StoreApp":
        from .web.app import StoreApp

        return StoreApp
    raise AttributeError(name)


#: The commands of the ``cmds`` module: ``janitor-store`` and one per action.
COMMANDS = (
    "janitor-store",
    "janitor-store-serve",
    "janitor-store-add-worker",
    "janitor-store-break-lock",
    "janitor-store-gc",
    "janitor-store-check",
    "janitor-store-backup",
)


def register_commands(package: str) -> None:
    """Register the ``brz janitor-store`` commands from ``package``'s ``cmds``."""
    from breezy.commands import plugin_cmds

    for name in COMMANDS:
        if name not in plugin_cmds:
            class_name = "cmd_" + name.replace("-", "_")
            plugin_cmds.register_lazy(class_name, [], package + ".cmds")
