"""Trusted reverse proxies: the client's address and request id behind one.

Behind nginx every connection comes from nginx.  The proxy names the client
in ``X-Forwarded-For`` (or RFC 7239 ``Forwarded``), the scheme it was
reached by in ``X-Forwarded-Proto`` and its own id for the request in
``X-Request-Id``; these headers are believed only from the addresses listed
in the ``--forwarded-allow-ips`` setting (``FORWARDED_ALLOW_IPS``, the
variable gunicorn and uvicorn read for the same list): addresses or
networks, comma-separated, or ``*`` for any (only where nothing but the
proxies reach the store: every hop trusted, the left-most entry, the
client's own, is believed).  Nothing is trusted by default.

From a trusted peer, the client is the right-most address of the
forwarding chain that is not itself a trusted proxy (each proxy appends the
address it saw, so only the entries trusted proxies added are believed).
``REMOTE_ADDR`` becomes that address (the peer's own stays in
``environ[PEER_KEY]``), so the access log, lock records, authentication
logs and metrics name the client.  From anyone else, the four headers are
removed from the environ unread.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from .config import ConfigError

__all__ = [
    "FORWARDED_ALLOW_IPS_ENV",
    "PEER_KEY",
    "REQUEST_ID_RE",
    "TRUSTED_REQUEST_ID_KEY",
    "TrustedProxies",
]

#: Environment variable of ``--forwarded-allow-ips`` (gunicorn's name).
FORWARDED_ALLOW_IPS_ENV = "FORWARDED_ALLOW_IPS"
#: environ key keeping the address of the connection's peer.
PEER_KEY = "breezy_janitor_store.peer_addr"
#: environ key of a trusted proxy's valid ``X-Request-Id``.
TRUSTED_REQUEST_ID_KEY = "breezy_janitor_store.proxy_request_id"
#: A request id taken from a proxy: nginx's ``$request_id`` (32 hex
#: digits), UUIDs and the like; nothing that could break a log line.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")

_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REQUEST_ID",
)
_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> str | None:
    """The IP address in a forwarding entry (ports, brackets and an IPv6
    zone removed, IPv4-mapped IPv6 as IPv4), or ``None``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


class TrustedProxies:
    """The peers whose forwarding headers are believed.

    :param spec: ``"10.0.0.1,192.168.0.0/16,::1"``, ``"*"``, a list of such
        entries, or ``None``/``""`` for none.
    :raises ConfigError: an entry that is neither an address nor a network.
    """

    def __init__(self, spec: str | Iterable[str] | None = None) -> None:
        entries = spec.split(",") if isinstance(spec, str) else list(spec or ())
        self.any = False
        self.networks: list[Network] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            if entry == "*":
                self.any = True
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ConfigError(
                    f"invalid forwarded-allow-ips entry {entry!r}: give IP "
                    "addresses or networks (10.0.0.0/8), comma-separated, or *"
                ) from None

    def __bool__(self) -> bool:
        return self.any or bool(self.networks)

    def __repr__(self) -> str:
        shown = ["*"] if self.any else [str(n) for n in self.networks]
        return f"TrustedProxies({','.join(shown)!r})"

    def trusts(self, address: str | None) -> bool:
        """Whether ``address`` (a peer's) is a trusted proxy."""
        if not self or not address:
            return False
        if self.any:
            return True
        normal = _address(address)
        if normal is None:
            return False
        ip = ipaddress.ip_address(normal)
        return any(ip in network for network in self.networks)

    def client(self, peer: str, chain: list[str]) -> str:
        """The client's address: the right-most entry of ``chain`` (client
        first, as proxies append) not a trusted proxy, walking left from
        ``peer`` (trusted) through trusted hops only; an entry that is no
        address ends the walk at the last address seen."""
        client = peer
        for entry in reversed(chain):
            address = _address(entry)
            if address is None:
                break
            client = address
            if not self.trusts(address):
                break
        return client

    def apply(self, environ: dict) -> None:
        """Rewrite ``environ`` for a request (see the module's description)."""
        peer = environ.get("REMOTE_ADDR") or ""
        environ[PEER_KEY] = peer
        if not self.trusts(peer):
            for key in _HEADERS:
                environ.pop(key, None)
            return
        forwarded = environ.pop("HTTP_FORWARDED", None)
        xff = environ.pop("HTTP_X_FORWARDED_FOR", None)
        if forwarded:
            chain = [m.group(1) for m in _FOR.finditer(forwarded)]
        else:
            chain = [e for e in (xff or "").split(",") if e.strip()]
        if chain:
            environ["REMOTE_ADDR"] = self.client(peer, chain)
        proto = (environ.pop("HTTP_X_FORWARDED_PROTO", None) or "").strip().lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
        rid = (environ.pop("HTTP_X_REQUEST_ID", None) or "").strip()
        if REQUEST_ID_RE.match(rid):
            environ[TRUSTED_REQUEST_ID_KEY] = rid


#: Trusting nobody: the default.
NO_PROXIES = TrustedProxies()
