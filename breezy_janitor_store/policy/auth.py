"""Who may write on the public face: HTTP Basic credentials of workers.

A *credential check* is any object with ``check(username, password) -> bool``
(it may raise :class:`~breezy_janitor_store.policy.policies.PolicyUnavailable` when
its source is down, and may have ``check_ready()``).  Two come with the store:
:class:`CredentialsFile` (``name:hash`` lines, below) and
:class:`breezy_janitor_store.policy.db.PostgresWorkers` (the janitor's ``worker``
table).  :class:`BasicAuth` turns any credential check into the public face's
write policy.

A credentials file has one ``NAME:HASH`` line per worker (``#`` comments and
blank lines are ignored), where ``HASH`` is
``scrypt$N$R$P$SALT$KEY`` (SALT and KEY in base64) as written by
:func:`hash_password`; ``pbkdf2_sha256$ITERATIONS$SALT$KEY`` is accepted too.

Anonymous clients choose how many passwords the store checks, so checking
is bounded: a scrypt check costs 16 MiB and ~50 ms of CPU, and
:class:`CredentialsFile` runs at most :data:`HASH_WORKERS` of them at once
on its own threads (:class:`BoundedWork`; a request waits at most
:data:`HASH_WAIT` seconds for one, else ``503`` with ``Retry-After``), and
:class:`BasicAuth` remembers a rejected user name and password for
:data:`FAILURE_TTL` seconds, so repeating them costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent import futures
from typing import Any, Protocol

from .config import ConfigError
from .policies import Environ, PolicyUnavailable, Unauthorized

__all__ = [
    "DEFAULT_REALM",
    "WORKER_TTL",
    "BasicAuth",
    "BoundedWork",
    "CredentialCheck",
    "CredentialsFile",
    "TTLCache",
    "add_worker",
    "hash_password",
    "verify_password",
]

logger = logging.getLogger(__name__)

DEFAULT_REALM = "breezy janitor store"
#: Seconds a successful credential check is remembered (failures never are).
WORKER_TTL = 30.0
#: Seconds a rejected user name and password are remembered as wrong.
FAILURE_TTL = 60.0
#: Longest user name or password considered; longer ones are simply wrong.
MAX_CREDENTIAL_LENGTH = 1024
#: Characters of a user name shown in logs.
LOGGED_NAME_LENGTH = 64
#: Password hashes computed at once (each scrypt check holds 16 MiB).
HASH_WORKERS = 2
#: Seconds a request waits for a hashing thread before ``503``.
HASH_WAIT = 1.0
#: Requests waiting for a hashing thread beyond which ``503`` comes at once.
HASH_QUEUE = 64

_SCRYPT = "scrypt"
_PBKDF2 = "pbkdf2_sha256"
#: scrypt cost parameters of new hashes (16 MiB of memory, ~50 ms).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class CredentialCheck(Protocol):
    """Checks a worker's user name and password."""

    def check(self, username: str, password: str) -> bool:
        """Whether ``password`` is ``username``'s; may raise PolicyUnavailable."""
        ...


class TTLCache:
    """A small thread-safe map whose entries expire after their own TTL.

    Bounded: beyond ``max_entries`` the least recently stored entry goes.
    """

    def __init__(
        self, max_entries: int = 10000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self._clock = clock

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return default
            if entry[0] <= self._clock():
                del self._data[key]
                return default
            return entry[1]

    def put(self, key: Hashable, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._data.pop(key, None)
            self._data[key] = (self._clock() + ttl, value)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class SuccessCache:
    """Remembers ``(username, password)`` checks for ``ttl`` seconds (by
    default successful ones; :class:`BasicAuth` keeps its failures in one).

    Passwords are kept only as a keyed digest (the key lives in memory);
    at most ``max_entries`` pairs are kept.
    """

    def __init__(self, ttl: float, max_entries: int = 10000) -> None:
        self.ttl = ttl
        self._cache = TTLCache(max_entries)
        self._key = secrets.token_bytes(32)

    def _entry(self, username: str, password: str) -> tuple[str, bytes]:
        digest = hmac.new(
            self._key, password.encode("utf-8", "surrogatepass"), "sha256"
        )
        return username, digest.digest()

    def known(self, username: str, password: str) -> bool:
        return self._cache.get(self._entry(username, password), False)

    def remember(self, username: str, password: str) -> None:
        self._cache.put(self._entry(username, password), True, self.ttl)

    def clear(self) -> None:
        self._cache.clear()


class BoundedWork:
    """Runs costly calls on at most ``workers`` threads of its own.

    A caller waits at most ``wait`` seconds for a thread, and no more than
    ``queue`` callers wait at once; otherwise the call is not made and
    :class:`PolicyUnavailable` (``503`` with ``Retry-After``) is raised.
    Memory the calls allocate stays with those few threads.
    """

    def __init__(
        self,
        workers: int = HASH_WORKERS,
        wait: float = HASH_WAIT,
        queue: int = HASH_QUEUE,
        what: str = "password checks",
    ) -> None:
        self.wait = wait
        self._what = what
        self._executor = futures.ThreadPoolExecutor(
            workers, thread_name_prefix="bounded-work"
        )
        self._places = threading.BoundedSemaphore(workers + queue)

    def _busy(self) -> PolicyUnavailable:
        return PolicyUnavailable(
            f"too many {self._what} at once", retry_after=max(1, round(self.wait))
        )

    def __call__(self, function: Callable[..., Any], *args: Any) -> Any:
        if not self._places.acquire(blocking=False):
            raise self._busy()
        try:
            future = self._executor.submit(function, *args)
            try:
                return future.result(timeout=self.wait)
            except futures.TimeoutError:
                if future.cancel():
                    raise self._busy() from None
                return future.result()  # running already: it ends soon
        finally:
            self._places.release()


def shown_name(username: str) -> str:
    """``username`` for a log line: quoted, cut at :data:`LOGGED_NAME_LENGTH`."""
    if len(username) <= LOGGED_NAME_LENGTH:
        return repr(username)
    return f"{username[:LOGGED_NAME_LENGTH]!r}... ({len(username)} characters)"


def plausible(username: str, password: str) -> bool:
    """Whether credentials are worth checking at all (no NUL, sane length)."""
    return (
        0 < len(username) <= MAX_CREDENTIAL_LENGTH
        and len(password) <= MAX_CREDENTIAL_LENGTH
        and "\x00" not in username + password
    )


# -- password hashes --


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` for a credentials file."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P
    )
    return f"{_SCRYPT}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _derive(encoded: str, password: bytes) -> tuple[bytes, bytes]:
    """The key derived from ``password`` with ``encoded``'s parameters, and
    the stored key.  :raises ValueError: ``encoded`` is not a known hash."""
    scheme, *fields = encoded.split("$")
    if scheme == _SCRYPT and len(fields) == 5:
        n, r, p = (int(f) for f in fields[:3])
        salt, key = (base64.b64decode(f, validate=True) for f in fields[3:])
        maxmem = 128 * r * n * p + 2 * 1024 * 1024
        derived = hashlib.scrypt(
            password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=len(key)
        )
        return derived, key
    if scheme == _PBKDF2 and len(fields) == 3:
        iterations = int(fields[0])
        salt, key = (base64.b64decode(f, validate=True) for f in fields[1:])
        derived = hashlib.pbkdf2_hmac(
            "sha256", password, salt, iterations, dklen=len(key)
        )
        return derived, key
    raise ValueError("unknown password hash format")


def check_hash(encoded: str) -> None:
    """:raises ValueError: ``encoded`` is not a hash :func:`verify_password` reads."""
    try:
        scheme, *fields = encoded.split("$")
        numbers = fields[:3] if scheme == _SCRYPT else fields[:1]
        if (scheme, len(fields)) not in ((_SCRYPT, 5), (_PBKDF2, 3)):
            raise ValueError
        if any(int(n) <= 0 for n in numbers):
            raise ValueError
        for f in fields[len(numbers) :]:
            if not base64.b64decode(f, validate=True):
                raise ValueError
    except (ValueError, binascii.Error):
        raise ValueError("not a scrypt or pbkdf2_sha256 password hash") from None


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the hash ``encoded`` (constant time)."""
    try:
        derived, key = _derive(encoded, password.encode("utf-8", "surrogatepass"))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(derived, key)


# -- the credentials file --


def valid_worker_name(name: str) -> bool:
    """Worker names: printable, no ``:``, no whitespace."""
    return (
        bool(name)
        and name.isprintable()
        and ":" not in name
        and not any(c.isspace() for c in name)
    )


def parse_credentials(text: str, path: str = "credentials file") -> dict[str, str]:
    """``{name: hash}`` of a credentials file's text.

    :raises ConfigError: a malformed line (its number is given, not its text).
    """
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, encoded = line.partition(":")
        try:
            if not sep or not valid_worker_name(name):
                raise ValueError("expected NAME:HASH")
            check_hash(encoded)
        except ValueError as e:
            raise ConfigError(f"{path}, line {number}: {e}") from None
        entries[name] = encoded
    return entries


class CredentialsFile:
    """Workers and their password hashes, from a file of ``name:hash`` lines.

    The file is read again when it changes (so ``add-worker`` and removals
    take effect while serving); a successful check is remembered for ``ttl``
    seconds or until the file changes.  A file that cannot be read or parsed
    any more makes checks raise :class:`PolicyUnavailable` (503) rather than
    keep stale workers.  Hashes are computed by ``hashing`` (default: a
    :class:`BoundedWork` of :data:`HASH_WORKERS` threads).

    :raises ConfigError: the file cannot be read or parsed at start.
    """

    def __init__(
        self, path: str, *, ttl: float = WORKER_TTL, hashing: BoundedWork | None = None
    ) -> None:
        self.path = path
        self._hashing = hashing or BoundedWork()
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._entries: dict[str, str] = {}
        self._error: str | None = None
        self._successes = SuccessCache(ttl)
        self._reload(quiet=True)
        if self._error is not None:
            raise ConfigError(self._error)

    def _reload(self, quiet: bool = False) -> None:
        """Read the file if it changed since last time."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return
            with open(self.path, encoding="utf-8") as f:
                entries = parse_credentials(f.read(), self.path)
        except (OSError, UnicodeError) as e:
            stamp = None
            error = f"cannot read {self.path}: {getattr(e, 'strerror', None) or e}"
        except ConfigError as e:
            error = str(e)
        else:
            self._entries, self._stamp, self._error = entries, stamp, None
            self._successes.clear()
            return
        if error != self._error and not quiet:
            logger.error("credentials unavailable: %s", error)
        self._entries, self._stamp, self._error = {}, stamp, error
        self._successes.clear()

    def check_ready(self) -> None:
        """:raises PolicyUnavailable: the file cannot be read or parsed."""
        with self._lock:
            self._reload()
            if self._error is not None:
                raise PolicyUnavailable("credentials file unreadable")

    def check(self, username: str, password: str) -> bool:
        self.check_ready()
        if not plausible(username, password):
            return False
        if self._successes.known(username, password):
            return True
        encoded = self._entries.get(username)
        # an unknown name costs a hash check too, so it takes as long
        ok = self._hashing(_verify_or_pretend, password, encoded)
        if ok:
            self._successes.remember(username, password)
        return ok


def _verify_or_pretend(password: str, encoded: str | None) -> bool:
    """:func:`verify_password`, or as costly a check that fails (no hash)."""
    return verify_password(password, encoded or _dummy_hash()) and bool(encoded)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(8))


def add_worker(path: str, name: str, password: str) -> bool:
    """Set ``name``'s password in the credentials file ``path``.

    The file is created (mode 0600) if missing and replaced atomically; an
    existing line for ``name`` is replaced.  Returns whether ``name`` was new.

    :raises ConfigError: invalid name, or unreadable/unwritable file.
    """
    if not valid_worker_name(name):
        raise ConfigError(f"invalid worker name {name!r}: no ':' or whitespace")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    except (OSError, UnicodeError) as e:
        raise ConfigError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}")
    new_line = f"{name}:{hash_password(password)}"
    new = True
    for i, line in enumerate(lines):
        if line.strip().partition(":")[0] == name and not line.lstrip().startswith("#"):
            lines[i], new = new_line, False
    if new:
        lines.append(new_line)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None
    return new


# -- the write policy --


class BasicAuth:
    """Write policy: a request with valid HTTP Basic credentials may write.

    A request without credentials is read-only; its ``realm`` makes the store
    answer a write attempt with a ``401`` challenge, so ``brz`` retries with
    the credentials from ``authentication.conf``.  Wrong or malformed
    credentials raise :class:`Unauthorized` (``401``) and are logged with the
    user name (cut to :data:`LOGGED_NAME_LENGTH` characters) and client
    address, never the password; they are remembered as wrong for
    ``failure_ttl`` seconds, so a client repeating them costs no new check.
    On success ``environ["REMOTE_USER"]`` is the worker's name.
    """

    def __init__(
        self,
        credentials: CredentialCheck,
        realm: str = DEFAULT_REALM,
        *,
        failure_ttl: float = FAILURE_TTL,
    ) -> None:
        if '"' in realm or "\\" in realm or not realm.isprintable():
            raise ValueError("realm must be printable, without quotes or backslashes")
        self.credentials = credentials
        self.realm = realm
        self._failures = SuccessCache(failure_ttl)

    def __call__(self, environ: Environ) -> bool:
        header = environ.get("HTTP_AUTHORIZATION")
        if not header:
            return False
        client = environ.get("REMOTE_ADDR", "?")
        parsed = parse_basic(header)
        if parsed is None:
            logger.warning("malformed credentials from %s", client)
            raise Unauthorized("malformed credentials")
        username, password = parsed
        known = plausible(username, password) and not self._failures.known(
            username, password
        )
        if not known:
            ok = False
        else:
            ok = self.credentials.check(username, password)
            if not ok:
                self._failures.remember(username, password)
        if not ok:
            logger.warning(
                "rejected credentials of %s from %s", shown_name(username), client
            )
            raise Unauthorized("invalid credentials")
        environ["REMOTE_USER"] = username
        return True

    def check_ready(self) -> None:
        """:raises PolicyUnavailable: the credential source does not answer."""
        check_ready = getattr(self.credentials, "check_ready", None)
        if check_ready is not None:
            check_ready()


def parse_basic(header: str) -> tuple[str, str] | None:
    """``(user, password)`` of an ``Authorization: Basic`` header, or None."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None
