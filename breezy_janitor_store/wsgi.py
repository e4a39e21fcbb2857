"""The store for a WSGI server such as gunicorn: ``breezy_janitor_store.wsgi:application``.

``application`` is one face of the store, configured by the same
environment variables as ``brz janitor-store serve`` (``BZR_STORE_PATH``,
``BZR_STORE_CAMPAIGNS``, ``BZR_STORE_CONFIG``, ``DATABASE_URL``, ... — all
but the address and ports, which are the WSGI server's) plus
``BZR_STORE_FACE``: ``admin`` (the default) or ``public``.  The two faces are
meant for different networks, so each gets its own server::

    BZR_STORE_PATH=/srv/bzr gunicorn -k gthread -w 4 --threads 8 \\
        -b 10.0.0.5:9929 breezy_janitor_store.wsgi:application
    BZR_STORE_PATH=/srv/bzr BZR_STORE_FACE=public gunicorn -k gthread -w 4 \\
        --threads 8 -b 0.0.0.0:9930 breezy_janitor_store.wsgi:application

or, without the variable, ``'breezy_janitor_store.wsgi:make_application("public")'``.

The application is built on first use, once per process, so importing this
module needs no configuration and every worker process builds its own.
"""

from __future__ import annotations

import os
import threading

from .policy.config import ConfigError
from .web.app import ADMIN, PUBLIC, StoreApp

__all__ = ["FACE_VARIABLE", "make_application"]  # and ``application`` (lazy)

#: Environment variable choosing the face ``application`` serves.
FACE_VARIABLE = "BZR_STORE_FACE"

_lock = threading.Lock()
_application: StoreApp | None = None


def make_application(face: str | None = None) -> StoreApp:
    """Build one face of the store from the ``BZR_STORE_*`` environment.

    :param face: ``"admin"`` or ``"public"``; default: ``$BZR_STORE_FACE``,
        else ``"admin"``.
    :raises ConfigError: a bad setting (the WSGI server then fails to boot).
    """
    import breezy
    from breezy.plugin import load_plugins

    from .serve import (
        ServeSettings,
        build_apps,
        freeze_startup_objects,
        logger,
        setup_logging,
    )

    face = face or os.environ.get(FACE_VARIABLE) or ADMIN
    if face not in (ADMIN, PUBLIC):
        raise ConfigError(
            f"{FACE_VARIABLE} must be {ADMIN!r} or {PUBLIC!r}, not {face!r}"
        )
    if breezy._global_state is None:
        # As ``brz`` does: configuration, logging to ~/.brz.log, formats.
        breezy.initialize(setup_ui=False)
    # Every plugin, as under ``brz janitor-store serve`` (does nothing twice).
    load_plugins()
    from .web.server import HELD_LOCKS

    settings = ServeSettings.resolve()
    admin, public = build_apps(settings)
    HELD_LOCKS.install()  # the write-locks gauge
    # every logger, as ``serve`` writes them
    setup_logging(debug=settings.debug, log_format=settings.log_format)
    for line in [f"face: {face}", *settings.describe()]:
        logger.info("%s", line)
    freeze_startup_objects()
    return admin if face == ADMIN else public


def __getattr__(name: str) -> StoreApp:
    # ``application`` is built lazily (PEP 562), once per process.
    global _application
    if name != "application":
        raise AttributeError(name)
    with _lock:
        if _application is None:
            _application = make_application()
    return _application
