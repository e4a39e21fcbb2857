"""Repositories that can be freed once a request is done with them.

vcsgraph's parents providers are Rust objects that hold Python references
without reporting them to Python's cyclic garbage collector.  breezy's pack
repositories keep such a provider that calls back into the repository
(``CachingParentsProvider(CallableToParentsProviderAdapter(
repository._get_parent_map_no_fallbacks))``, or ``CachingParentsProvider(
repository)``), so the collector never frees the repository: every one a
server opens, several per smart request, stays in memory with its indices
and caches for the life of the process, and every full collection walks
them all again.

:func:`install` makes the providers vcsgraph builds refer to a repository
weakly: a repository's bound method is called through a
:class:`weakref.WeakMethod`, a repository itself through a
:func:`weakref.proxy`.  A provider lives as long as the repository holding
it, so nothing is lost; one used after its repository is gone raises
``ReferenceError``.

breezy and vcsgraph names replaced or used: ``vcsgraph.graph.CachingParentsProvider``
and ``CallableToParentsProviderAdapter`` (replaced by :func:`install`), and
no breezy private name (breezy's ``_get_parent_map_no_fallbacks`` is only what
it hands the provider).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import vcsgraph.graph
from breezy.repository import Repository

__all__ = ["install"]

_CachingParentsProvider = vcsgraph.graph.CachingParentsProvider
_CallableToParentsProviderAdapter = vcsgraph.graph.CallableToParentsProviderAdapter


def _weak(value: Any) -> Any:
    """``value``, referring weakly to the repository it belongs to, if any."""
    if isinstance(value, Repository):
        return weakref.proxy(value)
    if isinstance(getattr(value, "__self__", None), Repository):
        method = weakref.WeakMethod(value)

        def call(*args: Any) -> Any:
            bound = method()
            if bound is None:
                raise ReferenceError("the repository of this graph is gone")
            return bound(*args)

        return call
    return value


def caching_parents_provider(
    parent_provider: Any = None, get_parent_map: Callable | None = None
) -> Any:
    """vcsgraph's ``CachingParentsProvider``, weak to a repository given as
    ``parent_provider`` (``get_parent_map``, which vcsgraph calls with
    arguments of its own, is a client's remote repository's: not served)."""
    return _CachingParentsProvider(_weak(parent_provider), get_parent_map)


def callable_to_parents_provider_adapter(callable: Callable) -> Any:
    """vcsgraph's ``CallableToParentsProviderAdapter``, weak to a repository."""
    return _CallableToParentsProviderAdapter(_weak(callable))


def install() -> None:
    """Let the repositories breezy opens be freed (idempotent)."""
    vcsgraph.graph.CachingParentsProvider = caching_parents_provider
    vcsgraph.graph.CallableToParentsProviderAdapter = (
        callable_to_parents_provider_adapter
    )
