"""The public face's code browser: trees, files, annotations, downloads.

Every view is a ``handler(face, req, **groups)`` of
:data:`breezy_janitor_store.web.app.ROUTES`; pages are Jinja2 templates
(``breezy_janitor_store/web/templates``, autoescaped) rendered through
:mod:`.render`; what a view reads of the application goes through the
helpers of :mod:`.common`.

* views: ``tree`` (a directory of a revision), ``blob`` (a file,
  highlighted or raw), ``annotate``, ``filelog`` (a file's history),
  ``archive`` (a tarball), ``compare`` (two revisions), ``revision``
  (revision pages, ``+revno``), ``children`` (the revisions after one on
  each branch), ``feeds`` (Atom);
* helpers: ``common`` (requests, repositories, slots), ``diffs`` (the
  diffs of revision and compare pages, with each file's counts), ``render``
  (templates and headers), ``caching`` (ETags, 304s, the page cache),
  ``urls`` (the views' paths), ``twins`` (JSON twins, ETag scope),
  ``errors`` (refusals as HTML pages).
"""
