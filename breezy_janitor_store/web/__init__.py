"""The web side (WSGI).

* ``http``: request and router; ``app``: ``StoreApp`` and its route table;
* ``api``: HTTP API handlers; ``browse``: HTML pages; ``files``: plain
  HTTP reads of directories and ``.bzr`` files;
* ``filters``: request ids, path checks, HEAD, access log; ``logs``: one
  log format; ``metrics`` and ``opsmetrics``: Prometheus metrics;
* ``server``: the embedded HTTP server.
"""
