"""Injectable policies, settings and credentials (no HTTP).

* ``policies``: which codebases and campaigns exist, who writes;
* ``config``: settings (command line, environment, the janitor's config);
  ``sizes``: ``1G``; ``storagedir``: which directory is the store;
* ``proxy``: trusted reverse proxies (the client's address, request id);
* ``auth`` and ``db``: workers' Basic credentials, the janitor's database.
"""
