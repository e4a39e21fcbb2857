"""Patches of breezy and vcsgraph the store needs, installed explicitly.

* ``cycles``: repositories the garbage collector can free (vcsgraph's
  parents providers hide references from it);
* ``packing``: one autopack at a time per shared repository, across
  processes and hosts.

Nothing is installed by importing a module or creating a ``Storage``:
:func:`install` is called by ``StoreApp`` (every request a store serves)
and by the commands that open repositories without it (``check``,
``backup``).  Each module lists the breezy private names it touches.
"""

from __future__ import annotations


def install(*, serving: bool = True) -> None:
    """Install what the store needs, process-wide (idempotent).

    * :func:`cycles.install`: a repository a request opened is freed when
      the request is done with it, not by a later full collection;
    * :func:`packing.install` (``serving``): concurrent pushes to one
      shared repository autopack one at a time, across processes and hosts;
    * :func:`~breezy_janitor_store.store.provenance.install` (``serving``):
      a branch tip a writer sets is one of the revisions it sent;
    * :func:`~breezy_janitor_store.store.tipcheck.install` (``serving``):
      a branch tip is stored, and its revno is its left-hand distance.
    """
    from .. import provenance, tipcheck
    from . import cycles, packing

    cycles.install()
    if serving:
        packing.install()
        provenance.install()
        tipcheck.install()
