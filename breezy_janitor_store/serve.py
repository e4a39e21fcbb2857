"""Settings and start-up of ``brz janitor-store serve``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .app import ADMIN, DEFAULT_CLIENT_MAX_SIZE, DEFAULT_DIFF_TIMEOUT, PUBLIC, StoreApp
from .config import ConfigError, env_default, read_janitor_config
from .policies import Campaigns
from .storage import Storage

__all__ = ["ServeSettings", "build_apps", "run_serve"]


def _campaign_list(raw: str) -> list[str]:
    return [c.strip() for c in raw.split(",") if c.strip()]


@dataclass
class ServeSettings:
    """Everything ``serve`` needs, from options, environment and config."""

    directory: str
    listen: str = "localhost"
    port: int = 9929
    public_port: int = 9930
    campaigns: list[str] | None = None
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
        public_url: str | None = None,
        diff_timeout: float | None = None,
    ) -> ServeSettings:
        """Options first, then ``BZR_STORE_*`` variables, then defaults.

        The database URL comes from ``database_url``, else ``DATABASE_URL``,
        else the config file's ``database_location``.

        :raises ConfigError: bad directory, config file or value.
        """
        directory = env_default(directory, "BZR_STORE_PATH", os.getcwd())
        if not os.path.isdir(directory):
            problem = (
                "is not a directory" if os.path.exists(directory) else "does not exist"
            )
            raise ConfigError(f"storage directory {directory} {problem}")
        campaigns = env_default(campaigns, "BZR_STORE_CAMPAIGNS", None, _campaign_list)
        config = env_default(config, "BZR_STORE_CONFIG")
        database_url = env_default(database_url, "DATABASE_URL")
        credentials = env_default(credentials, "BZR_STORE_CREDENTIALS")
        if config is not None:
            janitor = read_janitor_config(config)
            campaigns = (campaigns or []) + janitor.campaigns or None
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
            client_max_size=env_default(
                client_max_size,
                "BZR_STORE_CLIENT_MAX_SIZE",
                DEFAULT_CLIENT_MAX_SIZE,
                int,
            ),
            database_url=database_url or None,
            credentials=credentials,
            break_locks_older_than=env_default(
                break_locks_older_than, "BZR_STORE_BREAK_LOCKS_OLDER_THAN", None, float
            ),
            public_url=env_default(public_url, "BZR_STORE_PUBLIC_URL"),
            diff_timeout=env_default(
                diff_timeout, "BZR_STORE_DIFF_TIMEOUT", DEFAULT_DIFF_TIMEOUT, float
            ),
        )
        for name in ("port", "public_port"):
            if not 0 <= getattr(settings, name) <= 65535:
                raise ConfigError(
                    f"invalid {name.replace('_', '-')}: {getattr(settings, name)}"
                )
        if settings.client_max_size <= 0:
            raise ConfigError("client-max-size must be positive")
        if settings.diff_timeout <= 0:
            raise ConfigError("diff-timeout must be positive")
        older_than = settings.break_locks_older_than
        if older_than is not None and older_than <= 0:
            raise ConfigError("break-locks-older-than must be positive")
        return settings


def build_apps(settings: ServeSettings) -> tuple[StoreApp, StoreApp]:
    """The admin and public faces, sharing storage and policies.

    :raises ConfigError: bad database URL or credentials file.
    """
    storage = Storage(settings.directory)
    campaigns = Campaigns(settings.campaigns)
    common = {
        "storage": storage,
        "campaigns": campaigns,
        "client_max_size": settings.client_max_size,
        "break_locks_older_than": settings.break_locks_older_than,
        "public_url": settings.public_url,
        "diff_timeout": settings.diff_timeout,
    }
    public = {}
    if settings.database_url:
        from .auth import BasicAuth
        from .db import Database, PostgresCodebases, PostgresWorkers

        database = Database(settings.database_url)
        common["codebase_policy"] = PostgresCodebases(database)
        public["write_policy"] = BasicAuth(PostgresWorkers(database))
    elif settings.credentials:
        from .auth import BasicAuth, CredentialsFile

        public["write_policy"] = BasicAuth(CredentialsFile(settings.credentials))
    return StoreApp(face=ADMIN, **common), StoreApp(face=PUBLIC, **common, **public)


def run_serve(settings: ServeSettings, out) -> None:
    """Serve both faces until interrupted; print their URLs first."""
    from .server import make_server, serve_forever, server_url

    admin, public = build_apps(settings)
    _log_to_stderr()
    servers = []
    for face, app, port in (
        (ADMIN, admin, settings.port),
        (PUBLIC, public, settings.public_port),
    ):
        try:
            servers.append(make_server(app, settings.listen, port))
        except OSError as e:
            for server in servers:
                server.server_close()
            raise ConfigError(
                f"cannot listen on {settings.listen} port {port} for the {face} "
                f"face: {e.strerror or e}"
            ) from None

    def ready() -> None:
        for s in servers:
            out.write(server_url(s) + "\n")
        out.flush()

    serve_forever(servers, ready)


def _log_to_stderr() -> None:
    """Access lines (common log format) and the store's warnings and errors
    (with request ids) on standard error, unless logging is set up already."""
    import logging
    import sys

    from .filters import RequestIdLogFilter

    access = logging.getLogger("breezy_janitor_store.access")
    package = logging.getLogger(__name__.rpartition(".")[0])  # or as a plugin
    if access.handlers or package.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    errors = logging.StreamHandler(sys.stderr)
    errors.addFilter(RequestIdLogFilter())
    errors.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
        )
    )
    errors.setLevel(logging.WARNING)
    package.addHandler(errors)
