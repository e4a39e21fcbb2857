"""WSGI applications of the load benchmark, for gunicorn (``$BJS_LOAD_DIR``).

* ``store_app``: both faces of the store on one port, as the store's own
  ``wsgi`` module builds them: ``/bzr/...`` and ``/`` go to the public
  face's pages and branches, everything else to the admin face;
* ``breezy_app``: breezy's stock writable smart WSGI app.
"""

from __future__ import annotations

import os

import breezy

if breezy._global_state is None:
    breezy.initialize(setup_ui=False)


def _store_app():
    from breezy.plugin import load_plugins

    from breezy_janitor_store.serve import (
        ServeSettings,
        build_apps,
        freeze_startup_objects,
        setup_logging,
    )

    load_plugins()
    admin, public = build_apps(
        ServeSettings.resolve(directory=os.environ["BJS_LOAD_DIR"])
    )
    setup_logging()
    freeze_startup_objects()  # as the store's own ``wsgi`` module does

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        face = public if path == "/" or path.startswith("/bzr/") else admin
        return face(environ, start_response)

    return app


def _breezy_app():
    from .servers import breezy_wsgi_app

    return breezy_wsgi_app(os.environ["BJS_LOAD_DIR"])


def __getattr__(name: str):
    # Built in the worker that imports it (gunicorn loads the app per worker).
    if name == "store_app":
        app = _store_app()
    elif name == "breezy_app":
        app = _breezy_app()
    else:
        raise AttributeError(name)
    globals()[name] = app
    return app
