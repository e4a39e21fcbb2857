"""Settings of ``serve``: command line, environment, janitor config file.

The janitor's configuration is a protobuf text-format file (its
``config.proto``); the store reads its ``campaign`` names, each
``distribution``'s ``vendor`` (the namespace of the cache branches) and
``database_location``, with a small text-format reader, without the janitor
or protobuf installed.  The blocks it reads are checked strictly: a field
``config.proto`` does not have there, or a campaign without a valid name, is
an error naming the file and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..store.layout import NAME_RE, is_valid_name

__all__ = [
    "DEFAULT_VENDOR",
    "GENERIC_CACHE",
    "ConfigError",
    "Field",
    "JanitorConfig",
    "check_campaign_names",
    "env_default",
    "parse_text_format",
    "read_janitor_config",
]

#: The vendor of a distribution that names none (the janitor's default).
DEFAULT_VENDOR = "debian"
#: Where the janitor keeps the cache branch of a campaign without
#: ``debian_build``: ``CODEBASE/main``.
GENERIC_CACHE = "main"

#: Fields of the janitor's ``config.proto`` messages the store reads.
_KNOWN_FIELDS = {
    "Config": frozenset(
        {
            "logs_location",
            "database_location",
            "committer",
            "distribution",
            "origin",
            "oauth2_provider",
            "artifact_location",
            "zipkin_address",
            "campaign",
            "git_location",
            "bzr_location",
            "redis_location",
            "user_agent",
            "bugtracker",
            "apt_repository",
        }
    ),
    "Campaign": frozenset(
        {
            "name",
            "branch_name",
            "merge_proposal",
            "force_build",
            "skip_setup_validation",
            "default_empty",
            "debian_build",
            "generic_build",
            "bugtracker",
            "command",
        }
    ),
    "Distribution": frozenset(
        {
            "name",
            "archive_mirror_uri",
            "signed_by",
            "chroot",
            "chroot_alias",
            "component",
            "lintian_profile",
            "lintian_suppress_tag",
            "build_command",
            "vendor",
            "extra",
        }
    ),
}


class ConfigError(Exception):
    """A setting, or the configuration file, is wrong (one line, for users)."""


_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<punct>[{}<>:;,\[\]])
    |(?P<word>[A-Za-z0-9_.+\-]+)""",
    re.VERBOSE,
)
_ESCAPES = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


@dataclass(frozen=True)
class Field:
    """One field of a text-format message: name, value and line number."""

    name: str
    value: str | list[Field]
    line: int


Message = list[Field]


def _unquote(literal: str) -> str:
    def repl(m: re.Match) -> str:
        e = m.group(1)
        if e[0] == "x":
            return chr(int(e[1:], 16))
        if e[0].isdigit():
            return chr(int(e, 8))
        return _SIMPLE.get(e, e)

    return _ESCAPES.sub(repl, literal[1:-1])


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """``(kind, text, line)`` of each token."""
    out, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ConfigError(f"line {line}: unexpected {text[pos]!r}")
        if m.lastgroup:
            out.append((m.lastgroup, m.group(m.lastgroup), line))
        line += m.group(0).count("\n")
        pos = m.end()
    return out


def parse_text_format(text: str) -> Message:
    """Parse protobuf text format into nested :class:`Field` lists.

    :raises ConfigError: a syntax error, naming its line.
    """
    tokens = _tokens(text)
    pos = 0
    last_line = tokens[-1][2] if tokens else 1

    def take() -> tuple[str, str, int]:
        nonlocal pos
        if pos >= len(tokens):
            raise ConfigError(f"line {last_line}: unexpected end of file")
        pos += 1
        return tokens[pos - 1]

    def message(closer: str | None) -> Message:
        nonlocal pos
        fields: Message = []
        while True:
            if pos >= len(tokens):
                if closer is None:
                    return fields
                raise ConfigError(f"line {last_line}: missing {closer!r}")
            kind, value, line = take()
            if kind == "punct" and value in (";", ","):
                continue
            if kind == "punct" and value == closer:
                return fields
            if kind != "word":
                raise ConfigError(f"line {line}: expected a field name, got {value!r}")
            name = value
            if pos < len(tokens) and tokens[pos][:2] == ("punct", ":"):
                pos += 1
            kind, value, vline = take()
            if kind == "punct" and value in "{<":
                fields.append(Field(name, message("}" if value == "{" else ">"), line))
            elif kind == "punct" and value == "[":
                while True:
                    kind, value, vline = take()
                    if (kind, value) == ("punct", "]"):
                        break
                    if kind == "punct" and value in "{<":
                        closing = "}" if value == "{" else ">"
                        fields.append(Field(name, message(closing), vline))
                    elif kind != "punct":
                        fields.append(Field(name, _scalar(kind, value), vline))
            elif kind in ("string", "word"):
                scalar = _scalar(kind, value)
                # adjacent string literals concatenate
                while (
                    kind == "string"
                    and pos < len(tokens)
                    and tokens[pos][0] == "string"
                ):
                    scalar += _unquote(take()[1])
                fields.append(Field(name, scalar, line))
            else:
                raise ConfigError(f"line {vline}: unexpected {value!r} after {name}")

    return message(None)


def _scalar(kind: str, value: str) -> str:
    return _unquote(value) if kind == "string" else value


@dataclass
class JanitorConfig:
    """What the store uses from a janitor configuration file."""

    campaigns: list[str] = field(default_factory=list)
    #: Vendors of the distributions: namespaces of the cache branches.
    vendors: list[str] = field(default_factory=list)
    #: Whether a campaign has no ``debian_build``: the janitor keeps the
    #: cache branch of such campaigns at ``CODEBASE/main``.
    generic_campaigns: bool = False
    database_location: str | None = None


def read_janitor_config(path: str) -> JanitorConfig:
    """Read campaign names, vendors and ``database_location`` from a janitor
    config.

    :raises ConfigError: unreadable or unparsable file, a field the janitor's
        ``Config``, ``Campaign`` or ``Distribution`` has not, a campaign
        without a name, or a name that breaks the naming rule; each naming
        ``path`` and the line.
    """
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

    def error(line: int, message: str) -> ConfigError:
        return ConfigError(f"{path}, line {line}: {message}")

    def check_fields(message: Message, kind: str) -> None:
        for f in message:
            if f.name not in _KNOWN_FIELDS[kind]:
                raise error(f.line, f"unknown field {f.name!r} in {kind}")

    def block(f: Field) -> Message:
        if not isinstance(f.value, list):
            raise error(f.line, f"{f.name} must be a block {{ ... }}")
        return f.value

    def name_in(message: Message, what: str, key: str) -> str | None:
        values = [f for f in message if f.name == key]
        if len(values) > 1:
            raise error(values[1].line, f"{what} has more than one {key}")
        if not values:
            return None
        value = values[0].value
        if not isinstance(value, str) or not is_valid_name(value):
            shown = value if isinstance(value, str) else "a block"
            raise error(
                values[0].line,
                f"invalid {what} {key} {shown!r}: names follow {_RULE}",
            )
        return value

    check_fields(fields, "Config")
    config = JanitorConfig()
    for f in fields:
        if f.name == "campaign":
            campaign = block(f)
            check_fields(campaign, "Campaign")
            name = name_in(campaign, "campaign", "name")
            if name is None:
                raise error(f.line, "campaign without a name")
            config.campaigns.append(name)
            if not any(c.name == "debian_build" for c in campaign):
                config.generic_campaigns = True
        elif f.name == "distribution":
            distribution = block(f)
            check_fields(distribution, "Distribution")
            vendor = name_in(distribution, "distribution", "vendor")
            config.vendors.append(vendor or DEFAULT_VENDOR)
        elif f.name == "database_location":
            if not isinstance(f.value, str):
                raise error(f.line, "database_location must be a string")
            config.database_location = f.value
    config.vendors = sorted(set(config.vendors))
    return config


_RULE = NAME_RE.pattern.removesuffix(r"\Z")


def check_campaign_names(names: list[str], source: str) -> list[str]:
    """``names``, each checked against the naming rule.

    :raises ConfigError: naming the first invalid one and ``source``.
    """
    for name in names:
        if not is_valid_name(name):
            raise ConfigError(
                f"invalid campaign name {name!r} ({source}): names follow {_RULE}"
            )
    return names


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
