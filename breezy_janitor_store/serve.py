"""Settings and start-up of ``brz janitor-store serve``."""

from __future__ import annotations

import atexit
import collections
import contextlib
import gc
import logging
import os
import sys
import threading
import urllib.parse
from dataclasses import dataclass, field

from .policy.config import (
    DEFAULT_VENDOR,
    GENERIC_CACHE,
    ConfigError,
    check_campaign_names,
    env_default,
    read_janitor_config,
)
from .policy.policies import Campaigns
from .policy.proxy import FORWARDED_ALLOW_IPS_ENV, TrustedProxies
from .policy.sizes import parse_size
from .policy.storagedir import check_store_directory, storage_directory
from .smart import leases
from .store import durable, locks
from .store.budget import StreamBudget
from .store.gc import Collector
from .store.storage import Storage
from .web import logs
from .web.app import (
    ADMIN,
    DEFAULT_CLIENT_MAX_SIZE,
    DEFAULT_DIFF_TIMEOUT,
    PUBLIC,
    StoreApp,
)
from .web.filters import access_logger
from .web.server import DRAIN_TIMEOUT

__all__ = [
    "ServeSettings",
    "build_apps",
    "freeze_startup_objects",
    "run_serve",
    "setup_logging",
]

logger = logging.getLogger(__name__)


def _campaign_list(raw: str) -> list[str]:
    return [c.strip() for c in raw.split(",") if c.strip()]


#: Default seconds between garbage collections (``--gc-interval``).
DEFAULT_GC_INTERVAL = 3600.0
#: ``client_max_size`` of the faces for ``--client-max-size 0`` (no limit).
NO_LIMIT = sys.maxsize


@dataclass
class ServeSettings:
    """Everything ``serve`` needs, from options, environment and config."""

    directory: str
    listen: str = "localhost"
    port: int = 9929
    public_port: int = 9930
    #: Known campaigns; ``None``: every valid name.
    campaigns: list[str] | None = None
    #: Namespaces admitted besides the campaigns: the config's vendors,
    #: whose role ``latest`` is a codebase's cache branch, and ``main``
    #: (itself the cache branch) when a campaign has no ``debian_build``.
    namespaces: list[str] = field(default_factory=list)
    #: Largest request body in bytes; ``0``: no limit.
    client_max_size: int = DEFAULT_CLIENT_MAX_SIZE
    #: The janitor's PostgreSQL database (codebases and workers), if any.
    database_url: str | None = None
    #: File of ``name:hash`` worker credentials (without a database).
    credentials: str | None = None
    #: Root URL of the public face, for links to its pages.
    public_url: str | None = None
    #: Seconds a diff may take.
    diff_timeout: float = DEFAULT_DIFF_TIMEOUT
    #: Break branch/repository locks older than this before writes (seconds).
    break_locks_older_than: float | None = None
    #: Seconds a lock taken for a client is held without its holder using
    #: it before a writer waiting for it breaks it; None: never.
    lock_lease: float | None = leases.DEFAULT_LEASE
    #: Log debug messages too.
    debug: bool = False
    #: Send the log to Google Cloud Logging instead of standard error.
    gcp_logging: bool = False
    #: Seconds between garbage collections of the repositories; 0: never.
    gc_interval: float = DEFAULT_GC_INTERVAL
    #: Connections each face holds at most (None: a share of the fd limit).
    max_connections: int | None = None
    #: Heavy streams run at once by writers, and by readers (None: CPUs).
    max_streams: int | None = None
    #: Seconds a stopping server waits for requests and write locks.
    drain_timeout: float = DRAIN_TIMEOUT
    #: Sync every write before acknowledging it (off: throw-away stores).
    sync: bool = True
    #: ``text`` or ``json`` (see :mod:`.logs`).
    log_format: str = "text"
    #: Reverse proxies whose forwarding headers are believed (comma-separated
    #: addresses or networks, ``*``: any); ``None``: nobody's.
    forwarded_allow_ips: str | None = None

    @classmethod
    def resolve(
        cls,
        *,
        directory: str | None = None,
        listen: str | None = None,
        port: int | None = None,
        public_port: int | None = None,
        campaigns: list[str] | None = None,
        config: str | None = None,
        client_max_size: int | None = None,
        database_url: str | None = None,
        credentials: str | None = None,
        break_locks_older_than: float | None = None,
        lock_lease: str | float | None = None,
        public_url: str | None = None,
        diff_timeout: float | None = None,
        debug: bool = False,
        gcp_logging: bool = False,
        gc_interval: float | None = None,
        max_connections: int | None = None,
        max_streams: int | None = None,
        drain_timeout: float | None = None,
        no_sync: bool = False,
        forwarded_allow_ips: str | None = None,
        allow_other_content: bool | None = None,
        log_format: str | None = None,
    ) -> ServeSettings:
        """Options first, then ``BZR_STORE_*`` variables, then defaults.

        The database URL comes from ``database_url``, else ``DATABASE_URL``,
        else the config file's ``database_location``.

        :raises ConfigError: bad directory, config file or value.
        """
        directory = storage_directory(directory)
        check_store_directory(directory, allow_other_content)
        if campaigns is not None:
            check_campaign_names(campaigns, "--campaign")
        else:
            campaigns = env_default(None, "BZR_STORE_CAMPAIGNS", None, _campaign_list)
            check_campaign_names(campaigns or [], "BZR_STORE_CAMPAIGNS")
        config = env_default(config, "BZR_STORE_CONFIG")
        database_url = env_default(database_url, "DATABASE_URL")
        credentials = env_default(credentials, "BZR_STORE_CREDENTIALS")
        namespaces: list[str] = []
        if config is not None:
            janitor = read_janitor_config(config)
            campaigns = (campaigns or []) + janitor.campaigns or None
            if janitor.campaigns:
                namespaces = janitor.vendors or [DEFAULT_VENDOR]
                if janitor.generic_campaigns:
                    namespaces.append(GENERIC_CACHE)
            database_url = database_url or janitor.database_location
        if database_url and credentials:
            raise ConfigError(
                "--credentials is for use without a database: "
                "with one, workers come from its worker table"
            )
        settings = cls(
            directory=directory,
            listen=env_default(listen, "BZR_STORE_HOST", "localhost"),
            port=env_default(port, "BZR_STORE_ADMIN_PORT", 9929, int),
            public_port=env_default(public_port, "BZR_STORE_PUBLIC_PORT", 9930, int),
            campaigns=campaigns,
            namespaces=[n for n in namespaces if n not in (campaigns or ())],
            client_max_size=env_default(
                client_max_size,
                "BZR_STORE_CLIENT_MAX_SIZE",
                DEFAULT_CLIENT_MAX_SIZE,
                parse_size,
            ),
            database_url=database_url or None,
            credentials=credentials,
            break_locks_older_than=env_default(
                break_locks_older_than, "BZR_STORE_BREAK_LOCKS_OLDER_THAN", None, float
            ),
            lock_lease=_lock_lease(lock_lease),
            public_url=env_default(public_url, "BZR_STORE_PUBLIC_URL"),
            diff_timeout=env_default(
                diff_timeout, "BZR_STORE_DIFF_TIMEOUT", DEFAULT_DIFF_TIMEOUT, float
            ),
            debug=debug,
            gcp_logging=gcp_logging,
            gc_interval=env_default(
                gc_interval, "BZR_STORE_GC_INTERVAL", DEFAULT_GC_INTERVAL, float
            ),
            max_connections=env_default(
                max_connections, "BZR_STORE_MAX_CONNECTIONS", None, int
            ),
            max_streams=env_default(max_streams, "BZR_STORE_MAX_STREAMS", None, int),
            drain_timeout=env_default(
                drain_timeout, "BZR_STORE_DRAIN_TIMEOUT", DRAIN_TIMEOUT, float
            ),
            sync=False if no_sync else durable.sync_from_environment(),
        )
        for name in ("port", "public_port"):
            if not 0 <= getattr(settings, name) <= 65535:
                raise ConfigError(
                    f"invalid {name.replace('_', '-')}: {getattr(settings, name)}"
                )
        if settings.client_max_size < 0:
            raise ConfigError("client-max-size must be positive, or 0 for no limit")
        if settings.diff_timeout <= 0:
            raise ConfigError("diff-timeout must be positive")
        if settings.gc_interval < 0:
            raise ConfigError("gc-interval must be positive, or 0 for never")
        if settings.max_connections is not None and settings.max_connections <= 0:
            raise ConfigError("max-connections must be positive")
        if settings.max_streams is not None and settings.max_streams <= 0:
            raise ConfigError("max-streams must be positive")
        if settings.drain_timeout < 0:
            raise ConfigError("drain-timeout must not be negative")
        older_than = settings.break_locks_older_than
        if older_than is not None and older_than <= 0:
            raise ConfigError("break-locks-older-than must be positive")
        settings.forwarded_allow_ips = env_default(
            forwarded_allow_ips, FORWARDED_ALLOW_IPS_ENV
        )
        TrustedProxies(settings.forwarded_allow_ips)  # raises ConfigError
        settings.log_format = env_default(log_format, logs.LOG_FORMAT_ENV, "text")
        try:
            logs.check_format(settings.log_format)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return settings

    def describe(self) -> list[str]:
        """What the store serves and where its policies come from, one
        line each, for the log at start (no password is shown)."""
        if self.campaigns:
            campaigns = "campaigns: " + ", ".join(self.campaigns)
            if self.namespaces:
                campaigns += "; cache branches under: " + ", ".join(
                    n if n == GENERIC_CACHE else f"{n}/latest" for n in self.namespaces
                )
        else:
            campaigns = "campaigns: any campaign"
        if self.database_url:
            database = _redacted(self.database_url)
            codebases = f"codebases: the codebase table of {database}"
            workers = f"public-face writers: the worker table of {database}"
        else:
            codebases = "codebases: any valid name (created on the first write)"
            workers = (
                f"public-face writers: the workers in {self.credentials}"
                if self.credentials
                else "public-face writers: none (read-only)"
            )
        limit = f"{self.client_max_size} bytes" if self.client_max_size else "no limit"
        lease = f"{self.lock_lease:g} s" if self.lock_lease else "off"
        proxies = TrustedProxies(self.forwarded_allow_ips)
        return [
            "forwarding headers believed from: "
            + (self.forwarded_allow_ips if proxies else "nobody"),
            f"storage directory: {self.directory}",
            campaigns,
            codebases,
            workers,
            f"largest request body: {limit}",
            f"lock lease: {lease}",
            "writes synced before acknowledged"
            if self.sync
            else "writes NOT synced (--no-sync): a crash can lose acknowledged pushes",
        ]


def _lock_lease(value: str | float | None) -> float | None:
    """``--lock-lease``, else ``BZR_STORE_LOCK_LEASE``, else the default:
    seconds, or ``0``/``off`` for no lease."""
    source = "--lock-lease"
    if value is None:
        value = os.environ.get("BZR_STORE_LOCK_LEASE") or None
        source = "BZR_STORE_LOCK_LEASE"
    if value is None:
        return leases.DEFAULT_LEASE
    try:
        return leases.parse_lease(value)
    except ValueError:
        raise ConfigError(
            f"invalid value for {source}: {value!r} "
            "(seconds, or 0 or 'off' for no lease)"
        ) from None


def _redacted(url: str) -> str:
    """``url`` without its password."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def build_apps(settings: ServeSettings) -> tuple[StoreApp, StoreApp]:
    """The admin and public faces, sharing storage and policies.

    :raises ConfigError: bad database URL or credentials file.
    """
    storage = Storage(settings.directory, sync=settings.sync)
    names = settings.campaigns and settings.campaigns + settings.namespaces
    common = {
        "storage": storage,
        "campaigns": Campaigns(names),
        "client_max_size": settings.client_max_size or NO_LIMIT,
        "break_locks_older_than": settings.break_locks_older_than,
        "lock_lease": settings.lock_lease,
        "public_url": settings.public_url,
        "diff_timeout": settings.diff_timeout,
        # one budget for both faces: it bounds the process's memory
        "stream_budget": StreamBudget(settings.max_streams),
        "trusted_proxies": TrustedProxies(settings.forwarded_allow_ips),
    }
    public = {}
    if settings.database_url:
        from .policy.auth import BasicAuth
        from .policy.db import Database, PostgresCodebases, PostgresWorkers

        database = Database(settings.database_url)
        common["codebase_policy"] = PostgresCodebases(database)
        public["write_policy"] = BasicAuth(PostgresWorkers(database))
    elif settings.credentials:
        from .policy.auth import BasicAuth, CredentialsFile

        public["write_policy"] = BasicAuth(CredentialsFile(settings.credentials))
    return StoreApp(face=ADMIN, **common), StoreApp(face=PUBLIC, **common, **public)


def freeze_startup_objects() -> None:
    """Keep what start-up made (modules, plugins, the applications: tens of
    thousands of objects) out of the cyclic garbage collector's sight, so
    that its full collections, every few requests, walk only what requests
    made since (``gc.freeze``).  Called once the applications are built."""
    gc.collect()
    gc.freeze()


def run_serve(settings: ServeSettings, out) -> None:
    """Serve both faces until interrupted; print their URLs first."""
    from .web.server import make_server, serve_forever, server_url

    admin, public = build_apps(settings)
    setup_logging(
        debug=settings.debug, gcp=settings.gcp_logging, log_format=settings.log_format
    )
    servers = []
    for face, app, port in (
        (ADMIN, admin, settings.port),
        (PUBLIC, public, settings.public_port),
    ):
        try:
            servers.append(
                make_server(
                    app,
                    settings.listen,
                    port,
                    max_connections=settings.max_connections,
                )
            )
        except OSError as e:
            for server in servers:
                server.server_close()
            raise ConfigError(
                f"cannot listen on {settings.listen}:{port} ({face} face): "
                f"{e.strerror or e}"
            ) from None

    for line in settings.describe():
        logger.info("%s", line)
    freeze_startup_objects()

    def ready() -> None:
        for s in servers:
            out.write(server_url(s) + "\n")
        out.flush()
        logger.info(
            "serving the admin face on %s and the public face on %s (pid %d)",
            *(server_url(s) for s in servers),
            os.getpid(),
        )

    def still_held(url: str, nonce: str | None) -> bool:
        return locks.is_held(admin.storage, url, nonce)

    collector = None
    if settings.gc_interval:
        collector = Collector(admin.storage, settings.gc_interval)
        collector.start()
    try:
        serve_forever(servers, ready, settings.drain_timeout, still_held)
    finally:
        if collector is not None:
            collector.stop()
        logs.flush_all()  # brz leaves by os._exit: no atexit handlers run


#: Log format of every message (see :mod:`.logs`).
LOG_FORMAT = logs.TEXT_FORMAT


def setup_logging(
    *, debug: bool = False, gcp: bool = False, log_format: str = "text"
) -> None:
    """Every logger of the process (the store's messages and access lines,
    breezy's, the libraries') in one format, ``log_format`` (``text`` or
    ``json``, see :mod:`.logs`): on standard error, or with ``gcp`` to
    Google Cloud Logging.  Informational messages and up, the store's debug
    ones too with ``debug``.  Does nothing when the store's loggers have
    handlers already, or the second time.

    :raises ConfigError: ``gcp`` without its library or credentials.
    """
    access = access_logger
    package = logging.getLogger(__name__.rpartition(".")[0])  # or as a plugin
    if access.handlers or package.handlers:
        return
    level = logging.DEBUG if debug else logging.INFO
    access.setLevel(logging.INFO)
    if gcp:
        package.setLevel(level)
        _setup_gcp_logging(level)
        return  # both loggers propagate to the root logger's cloud handler
    handler = BatchedLines(sys.stderr)
    handler.setFormatter(logs.formatter(log_format))
    logs.route_all(handler, level)


class BatchedLines(logging.Handler):
    """Log lines written to ``stream`` a batch at a time.

    A request only formats its line and queues it: no lock is taken and no
    system call made on its way (one write per line, under the handler's
    lock, made concurrent requests queue behind each other).  A thread
    (started again in a forked child) writes what was queued every
    ``interval`` seconds, and at exit.  At most ``limit`` lines wait: past
    that the oldest are dropped; a batch the stream refuses is dropped, and
    the next one is tried.
    """

    def __init__(self, stream, interval: float = 0.25, limit: int = 100_000) -> None:
        super().__init__()
        self.stream = stream
        self._lines: collections.deque[str] = collections.deque(maxlen=limit)
        self._interval = interval
        self._stopping = threading.Event()
        self._start()
        os.register_at_fork(after_in_child=self._start)
        atexit.register(self.close)

    def _start(self) -> None:
        threading.Thread(target=self._run, name="log-lines", daemon=True).start()

    def handle(self, record: logging.LogRecord) -> bool:
        # (``Handler.handle`` takes the handler's lock around ``emit``)
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - as logging's own handlers do
            self.handleError(record)

    def flush(self) -> None:
        """Write what is queued, in order (after a write in progress)."""
        self._write(self.lock.acquire())

    def _write(self, locked: bool) -> None:
        if not locked:
            return
        try:
            lines = []
            with contextlib.suppress(IndexError):
                while True:
                    lines.append(self._lines.popleft())
            if lines:
                with contextlib.suppress(OSError, ValueError):  # dropped
                    self.stream.write("".join(lines))
                    self.stream.flush()
        finally:
            self.lock.release()

    def close(self) -> None:
        self._stopping.set()
        # a stream blocked for good does not hold up the exit
        self._write(self.lock.acquire(timeout=5))
        super().close()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.flush()


def _setup_gcp_logging(level: int) -> None:
    try:
        import google.auth.exceptions
        import google.cloud.logging
    except ImportError:
        raise ConfigError(
            "--gcp-logging needs the google-cloud-logging library "
            "(pip install 'breezy-janitor-store[gcp]')"
        ) from None
    try:
        client = google.cloud.logging.Client()
        client.setup_logging(log_level=level)
    except (google.auth.exceptions.GoogleAuthError, OSError, ValueError) as e:
        # no credentials, no project, ...
        first = str(e).strip().splitlines()[:1] or [type(e).__name__]
        raise ConfigError(f"--gcp-logging: {first[0]}") from None
