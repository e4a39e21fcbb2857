"""The bzr side: the storage directory, its layout and what reads it (no HTTP).

* ``layout``: naming and layout rules, the one place that knows them
  (which directory holds campaign C role R, which files a writer may
  touch, which branch configuration and formats are refused);
* ``branchconf``: what a branch may hold in its ``.bzr`` (formats,
  configuration), beside the layout rules;
* ``transport``: ``StoreTransport``, the one enforcement point for disk
  access; ``paths``: client paths as segments and back, memoized;
  ``durable``: syncing files and the directories naming them;
* ``storage``: the storage directory (codebases, shared repositories,
  their transports); ``branches``: opening branches and repositories
  through the jail; ``history`` and ``diff``: reading revisions;
  ``textstream``: a file's text in pieces, never whole;
* ``holders`` and ``locks``: lock records naming the worker, held locks
  (listing, breaking); ``gc``: abandoned uploads and obsolete packs;
* ``provenance`` and ``contentcheck``: a revision is part of a writer's
  branch only once that writer sent it, and is what it says it is;
* ``damage``: telling a damaged repository; ``check`` and ``backup``: is
  the store sound, a consistent copy of it;
* ``dircap``: how many campaign and role directories a codebase may hold;
  ``tipcheck``: a branch tip is stored, and its revno is its left-hand
  distance from ``null:``;
* ``isolation``: other plugins' hooks are dropped; ``budget``: the stream
  budget and the memory bounds of one answer; ``context``: the current
  request's id, for log lines at any layer;
* ``patches``: the breezy and vcsgraph patches the store needs, installed
  explicitly by the entry points.
"""
