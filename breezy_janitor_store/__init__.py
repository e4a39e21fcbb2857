"""A Bazaar code-hosting store for the Debian Janitor, as a breezy plugin.

``from breezy_janitor_store import StoreApp`` gives the store as a PEP 3333
WSGI callable; ``brz janitor-store serve`` runs it on an embedded server.

Modules, lower layers first; a module imports only from its own layer and
the layers listed before it (``tests/test_layering.py`` checks the bzr side
and the policies never import the web side, and that imports form no
cycle):

* bzr side (no HTTP): ``layout`` (naming and layout rules), ``durable``
  (syncing files and directories), ``transport``
  (``StoreTransport``, the one enforcement point for disk access),
  ``holders`` (lock records naming the worker a lock is taken for),
  ``cycles`` (repositories the garbage collector can free), ``packing``
  (autopacks), ``storage`` (the storage directory: codebases,
  shared repositories, their transports), ``gc`` (abandoned uploads,
  obsolete packs), ``branches`` (opening branches and repositories through
  the jail), ``history`` and ``diff`` (reading revisions), ``locks`` (held
  locks: listing, breaking), ``damage`` (telling a damaged repository),
  ``check`` and ``backup`` (is the store sound; a consistent copy of it),
  ``smart`` (the smart protocol over one POST),
  ``context`` (the current request's id, for log lines), ``dircap`` (how
  many campaign and role directories), ``tipcheck`` (tips a push would
  make), ``connguard`` (request-head deadline, connections per address);
* policies: ``policies`` (which codebases and campaigns exist, who
  writes), ``config`` (settings), ``sizes`` (``1G``), ``storagedir``
  (which directory is the store), ``proxy`` (trusted reverse proxies: the
  client's address and request id), ``auth`` and ``db`` (workers' Basic
  credentials, the janitor's database);
* web side (WSGI): ``http`` (request, router), ``opsmetrics`` (process
  metrics, in-flight gauges, several multiprocess directories),
  ``metrics``, ``filters``
  (request ids, path checks, HEAD, access log), ``browse`` (HTML pages),
  ``files`` (plain HTTP reads of directories and ``.bzr`` files),
  ``api`` (HTTP API handlers), ``app`` (``StoreApp`` and its route table),
  ``server`` (the embedded HTTP server), ``framing`` (ambiguous
  ``Content-Length`` refused), ``revinfo`` (revision-info's slot, timeout
  and cap);
* entry points: ``serve`` and ``cmds`` (``brz janitor-store``), ``wsgi``
  (for gunicorn), ``plugin`` (the installed breezy plugin), ``__main__``
  (``python -m breezy_janitor_store``).
"""

from __future__ import annotations

version_info = (0, 1, 0, "final", 0)
__version__ = "0.1.0"

__all__ = ["StoreApp", "__version__", "version_info"]


def __getattr__(name: str):
    # Imported lazily: loading the plugin must stay cheap for every brz run.
    if name == "StoreApp":
        from .app import StoreApp

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
