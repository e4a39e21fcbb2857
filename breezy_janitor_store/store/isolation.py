"""No code of other plugins runs in the store: their hooks are dropped.

``brz`` loads every installed plugin before it runs a command, and breezy
bundles plugins whose hooks act on what the store does for its clients
(``email`` mails through a program named in branch configuration when a
branch's tip changes, ``upload`` copies a tree to a location it names,
``commitfromnews``, ``launchpad``, ...); an operator may install others.  A
writer controls the branches these hooks see, so none may run in the server:
:func:`drop_foreign_hooks` leaves, at every hook point breezy knows
(``breezy.hooks.known_hooks``), only the callbacks of breezy itself and of
this package.
"""

from __future__ import annotations

import logging
import threading

from breezy import hooks

__all__ = ["drop_foreign_hooks", "is_own_module"]

logger = logging.getLogger(__name__)

#: Modules whose hooks stay: this package (also as the installed plugin).
_OWN = ("breezy_janitor_store", "breezy.plugins.janitor_store")
_PLUGINS = "breezy.plugins."
_lock = threading.Lock()


def is_own_module(name: str | None) -> bool:
    """Whether module ``name`` is breezy's own (not a plugin) or this package's."""
    if not name:
        return False
    if any(name == own or name.startswith(own + ".") for own in _OWN):
        return not name.startswith("breezy_janitor_store.tests")
    return (name == "breezy" or name.startswith("breezy.")) and not name.startswith(
        _PLUGINS
    )


def _module_of(callback: object) -> str | None:
    """The module a hook callback comes from (through ``functools.partial``)."""
    target = getattr(callback, "func", callback)
    return getattr(target, "__module__", None)


def drop_foreign_hooks() -> list[str]:
    """Remove the hooks of plugins and other packages from every known
    hook point; return ``HOOKPOINT: module`` for each one removed.

    Hook points are rebuilt through breezy's public ``HookPoint`` API:
    each keeps its callbacks of breezy and of this package, in order, under
    their registered names.  A callback that cannot even be loaded is
    dropped as well.
    """
    dropped: list[str] = []
    with _lock:
        for key in list(hooks.known_hooks.keys()):
            try:
                points = hooks.known_hooks_key_to_object(key)
            except Exception as e:  # noqa: BLE001 - a plugin's own hook point
                logger.warning("hook point %s not loaded: %s", ".".join(key), e)
                continue
            for name, point in list(points.items()):
                dropped += _rebuild(points, name, point)
    for entry in dropped:
        logger.info("plugin hook not run in the store: %s", entry)
    return dropped


def _rebuild(points: hooks.Hooks, name: str, point: hooks.HookPoint) -> list[str]:
    """Replace hook point ``name`` of ``points`` by one holding only the
    store's and breezy's callbacks; what was dropped.

    Callbacks load as they are iterated: after one that fails to load, the
    rest cannot be reached, and are dropped with it.
    """
    kept: list[object] = []
    dropped: list[str] = []
    callbacks = iter(point)
    for index in range(len(point)):
        try:
            callback = next(callbacks)
        except Exception as e:  # noqa: BLE001 - a plugin that fails to load
            dropped.append(
                f"{name}: {len(point) - index} not loadable ({type(e).__name__})"
            )
            break
        module = _module_of(callback)
        if is_own_module(module):
            kept.append(callback)
        else:
            dropped.append(f"{name}: {module}")
    if not dropped:
        return []
    fresh = hooks.HookPoint(
        point.name, point.__doc__, point.introduced, point.deprecated
    )
    for callback in kept:
        fresh.hook(callback, points.get_hook_name(callback))
    points[name] = fresh
    return dropped
