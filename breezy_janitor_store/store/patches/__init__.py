"""Patches of breezy and vcsgraph the store needs, installed explicitly.

* ``cycles``: repositories the garbage collector can free (vcsgraph's
  parents providers hide references from it);
* ``packing``: one autopack at a time per shared repository, across
  processes and hosts.

Each module's ``install()`` is called by the entry points (``StoreApp``,
``serve``), never as a side effect of an import or of creating a
``Storage``; each module lists the breezy private names it touches.
"""
