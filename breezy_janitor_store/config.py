"""Settings of ``serve``: command line, environment, janitor config file.

The janitor's configuration is a protobuf text-format file; only its
``campaign { name: ... }`` entries and ``database_location`` matter here, so
a small text-format reader does, without the janitor or protobuf installed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

__all__ = [
    "ConfigError",
    "JanitorConfig",
    "env_default",
    "parse_text_format",
    "read_janitor_config",
]


class ConfigError(Exception):
    """The configuration file cannot be read or parsed."""


_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<punct>[{}<>:;,\[\]])
    |(?P<word>[A-Za-z0-9_.+\-]+)""",
    re.VERBOSE,
)
_ESCAPES = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}

Message = list[tuple[str, "str | Message"]]


def _unquote(literal: str) -> str:
    def repl(m: re.Match) -> str:
        e = m.group(1)
        if e[0] == "x":
            return chr(int(e[1:], 16))
        if e[0].isdigit():
            return chr(int(e, 8))
        return _SIMPLE.get(e, e)

    return _ESCAPES.sub(repl, literal[1:-1])


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            line = text.count("\n", 0, pos) + 1
            raise ConfigError(f"line {line}: unexpected {text[pos]!r}")
        pos = m.end()
        if m.lastgroup:
            out.append((m.lastgroup, m.group(m.lastgroup)))
    return out


def parse_text_format(text: str) -> Message:
    """Parse protobuf text format into nested ``[(field, value), ...]``."""
    tokens = _tokens(text)
    pos = 0

    def message(closer: str | None) -> Message:
        nonlocal pos
        fields: Message = []
        while True:
            if pos >= len(tokens):
                if closer is None:
                    return fields
                raise ConfigError(f"missing {closer!r}")
            kind, value = tokens[pos]
            if kind == "punct" and value in (";", ","):
                pos += 1
                continue
            if kind == "punct" and value == closer:
                pos += 1
                return fields
            if kind != "word":
                raise ConfigError(f"expected a field name, got {value!r}")
            name = value
            pos += 1
            if pos < len(tokens) and tokens[pos] == ("punct", ":"):
                pos += 1
            if pos >= len(tokens):
                raise ConfigError(f"missing value for {name}")
            kind, value = tokens[pos]
            pos += 1
            if kind == "punct" and value in "{<":
                fields.append((name, message("}" if value == "{" else ">")))
            elif kind == "punct" and value == "[":
                while tokens[pos] != ("punct", "]"):
                    kind, value = tokens[pos]
                    pos += 1
                    if kind == "punct" and value in "{<":
                        fields.append((name, message("}" if value == "{" else ">")))
                    elif kind != "punct":
                        fields.append((name, _scalar(kind, value)))
                pos += 1
            elif kind in ("string", "word"):
                scalar = _scalar(kind, value)
                # adjacent string literals concatenate
                while (
                    kind == "string"
                    and pos < len(tokens)
                    and tokens[pos][0] == "string"
                ):
                    scalar += _unquote(tokens[pos][1])
                    pos += 1
                fields.append((name, scalar))
            else:
                raise ConfigError(f"unexpected {value!r} after {name}")

    try:
        return message(None)
    except IndexError:
        raise ConfigError("unexpected end of file") from None


def _scalar(kind: str, value: str) -> str:
    return _unquote(value) if kind == "string" else value


@dataclass
class JanitorConfig:
    """What the store uses from a janitor configuration file."""

    campaigns: list[str] = field(default_factory=list)
    database_location: str | None = None


def read_janitor_config(path: str) -> JanitorConfig:
    """Read campaign names and ``database_location`` from a janitor config."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeError) as e:
        raise ConfigError(
            f"cannot read {path}: {getattr(e, 'strerror', None) or e}"
        ) from None
    try:
        fields = parse_text_format(text)
    except ConfigError as e:
        raise ConfigError(f"cannot parse {path}: {e}") from None
    config = JanitorConfig()
    for name, value in fields:
        if name == "campaign" and isinstance(value, list):
            config.campaigns.extend(
                v for k, v in value if k == "name" and isinstance(v, str)
            )
        elif name == "database_location" and isinstance(value, str):
            config.database_location = value
    return config


def env_default(value, variable: str, default=None, convert=str):
    """``value`` if given, else the environment variable, else ``default``."""
    if value is not None:
        return value
    raw = os.environ.get(variable)
    if raw is None or raw == "":
        return default
    try:
        return convert(raw)
    except ValueError:
        raise ConfigError(f"invalid value for {variable}: {raw!r}") from None
