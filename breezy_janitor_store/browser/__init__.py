"""The public face's code browser: trees, files, annotations, downloads.

Every view is a ``handler(app, req, **groups)`` of :data:`app.ROUTES`;
pages are Jinja2 templates (``breezy_janitor_store/templates``, autoescaped)
rendered through :mod:`.render`; what a view reads of the application goes
through the helpers of :mod:`.common`.
"""
