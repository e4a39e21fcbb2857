"""The web side (WSGI).

* ``http``: request and router; ``app``: ``StoreApp`` and its route table;
* ``face``: what a handler receives (``handler(face, req, **groups)``): which
  codebase a request names and whether it exists here, who may write in
  which realm, the face's prefix;
* ``smart``: the smart endpoint (``POST .../.bzr/smart``) and its
  admission checks;
* ``api``: HTTP API handlers; ``browse``: HTML pages; ``files``: plain
  HTTP reads of directories and ``.bzr`` files;
* ``filters``: request ids, path checks, HEAD, access log; ``logs``: one
  log format; ``metrics`` and ``opsmetrics``: Prometheus metrics;
* ``server``: the embedded HTTP server; ``connguard``: its request-head
  deadline and connections per address; ``framing``: ambiguous
  ``Content-Length`` refused;
* ``revinfo``: revision-info's slot, timeout and cap; ``validators``:
  ``ETag``, ``304`` and ``Cache-Control`` of the API and file answers;
* ``browser`` (``browser/``): the public face's code browser (trees, files, annotations,
  feeds, downloads), its pages made from ``templates/``.
"""
