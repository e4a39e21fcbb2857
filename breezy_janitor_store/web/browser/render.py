"""Templates of the public face's pages and the headers they are sent with.

Pages are rendered from the package's Jinja2 templates with autoescaping:
every value from a repository or a request is escaped, and the few
helpers that build markup (:func:`markup`) escape what they put in it.  The
policy (:data:`CONTENT_SECURITY_POLICY`) allows no script, no frame, no
form, and only the two stylesheets below, by their hashes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable, Iterator
from importlib import resources

import jinja2
from markupsafe import Markup
from pygments.formatters import HtmlFormatter

from ..http import Request

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "HIGHLIGHT_STYLE",
    "HTML_HEADERS",
    "HTML_TYPE",
    "STYLE",
    "esc",
    "markup",
    "render",
    "respond",
    "stream",
]

HTML_TYPE = "text/html; charset=utf-8"
_TEMPLATES = resources.files("breezy_janitor_store.web") / "templates"
#: The stylesheet of every page (inline, allowed by its hash).
STYLE = (_TEMPLATES / "style.css").read_text(encoding="utf-8")
#: Pygments' classes for highlighted code, below ``.hl`` (inline on the
#: pages that show code, allowed by its hash).
HIGHLIGHT_STYLE = (
    re.sub(
        r"\s*/\*.*?\*/",
        "",
        HtmlFormatter(style="default").get_style_defs(".hl"),
    )
    + "\n"
)


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


#: Nothing but the pages' own inline stylesheets.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        f"style-src {_hash(STYLE)} {_hash(HIGHLIGHT_STYLE)}",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
#: Response headers of every HTML page.
HTML_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
]

#: Characters shown as U+FFFD: controls (but tab, CR and LF) and lone
#: surrogates (bytes of a revision property that are not UTF-8).
UNSHOWABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def esc(value: object) -> str:
    """``value`` as HTML text."""
    return html.escape(UNSHOWABLE.sub("\ufffd", str(value)), quote=True)


def markup(html_text: str) -> Markup:
    """Markup built by this package's helpers (which escape what they embed)."""
    return Markup(html_text)


def _finalize(value: object) -> object:
    """Every printed value loses control characters and lone surrogates."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return UNSHOWABLE.sub("\ufffd", value)


ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("breezy_janitor_store.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_finalize,
)
ENV.globals.update(style=Markup(STYLE), highlight_style=Markup(HIGHLIGHT_STYLE))


def render(name: str, **context: object) -> bytes:
    """The template ``name`` rendered whole."""
    return ENV.get_template(name).render(**context).encode("utf-8")


def stream(name: str, **context: object) -> Iterator[bytes]:
    """The template ``name`` rendered as it is iterated (lazily: iterables
    in ``context`` are consumed only as the page is sent)."""
    pending: list[str] = []
    size = 0
    for part in ENV.get_template(name).generate(**context):
        pending.append(part)
        size += len(part)
        if size >= 16 * 1024:
            yield "".join(pending).encode("utf-8")
            pending, size = [], 0
    if pending:
        yield "".join(pending).encode("utf-8")


def respond(
    req: Request,
    body: bytes,
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """A complete HTML response (kept in :data:`.caching.PAGES` when it is
    immutable)."""
    from . import caching

    all_headers = [
        ("Content-Length", str(len(body))),
        ("Content-Type", HTML_TYPE),
        *HTML_HEADERS,
        *headers,
    ]
    req.respond(status, None, all_headers)
    if status == 200:
        caching.PAGES.put(req, all_headers, body)
    return [body]
