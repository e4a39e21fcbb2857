"""Parsing the store's HTML pages (html5lib)."""

from __future__ import annotations

from html.parser import HTMLParser

_VOID = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta")
    + ("source", "track", "wbr")
)


class Page(HTMLParser):
    """A parsed page: well-formedness checked; links, commands and text kept."""

    def __init__(self, html: bytes) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.commands: list[str] = []
        self.text: list[str] = []
        self._command: list[str] | None = None
        self.feed(html.decode("utf-8"))
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if tag == "code" and "cmd" in (attrs.get("class") or "").split():
            self._command = []
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs) -> None:
        if tag not in _VOID:
            self.errors.append(f"self-closed <{tag}/>")

    def handle_endtag(self, tag) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()
        if tag == "code" and self._command is not None:
            self.commands.append("".join(self._command))
            self._command = None

    def handle_data(self, data) -> None:
        self.text.append(data)
        if self._command is not None:
            self._command.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)
