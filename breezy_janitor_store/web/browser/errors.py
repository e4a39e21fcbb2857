"""Refusals of the public face as HTML pages, for browsers.

A request that prefers ``text/html`` to ``text/plain`` (as browsers' do)
gets its refusal as a page with the same status, headers and reason, and
links back to the codebase it named and to the list of codebases; every
other client (breezy, curl, the janitor) keeps the plain-text sentence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ...store import layout
from ..http import STATUS, Request, negotiate
from . import render

if TYPE_CHECKING:
    from ..face import Face

__all__ = ["html_refusal"]

_OFFERS = ("text/plain", "text/html")


def wants_html(req: Request) -> bool:
    """Whether the client prefers an HTML page to plain text."""
    if req.method not in ("GET", "HEAD"):
        return False
    return negotiate(req.environ.get("HTTP_ACCEPT"), _OFFERS) == "text/html"


def html_refusal(
    face: Face,
    req: Request,
    status: int,
    reason: str,
    headers: Iterable[tuple[str, str]],
) -> list[bytes] | None:
    """The refusal as an HTML page, or None when it should stay plain text
    (the admin face, a client that does not prefer HTML)."""
    if not face.is_public or not wants_html(req):
        return None
    prefix = face.prefix
    script = req.environ.get("SCRIPT_NAME", "").rstrip("/")
    home = f"{script}{prefix}/"
    back = back_text = None
    path = req.path
    if prefix and path.startswith(prefix + "/"):
        codebase = path[len(prefix) + 1 :].split("/", 1)[0]
        if layout.is_valid_name(codebase) and "/" in path[len(prefix) + 1 :]:
            back, back_text = f"{home}{codebase}/", codebase
    body = render.render(
        "error.html",
        title=f"{status} {STATUS.get(status, '')}",
        crumbs=[("Home", f"{script}/"), ("bzr", home)],
        status=status,
        phrase=STATUS.get(status, ""),
        reason=reason,
        home=home,
        back=back,
        back_text=back_text,
    )
    extra = [(k, v) for k, v in headers if k.lower() != "content-type"]
    return render.respond(req, body, status, extra)
