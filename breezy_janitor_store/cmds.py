"""``brz janitor-store``: a thin command-line shell over the library."""

from __future__ import annotations

from typing import ClassVar

from breezy import errors
from breezy.commands import Command
from breezy.option import ListOption, Option

from .config import ConfigError

__all__ = ["cmd_janitor_store"]


class cmd_janitor_store(Command):
    __doc__ = """Run the Debian Janitor's bzr store.

    Actions:

      serve   Serve the store's two faces over HTTP until SIGINT or SIGTERM:
              the admin face (trusted network; workers push to
              bzr+http://HOST:PORT/CODEBASE/CAMPAIGN[/ROLE]) and the
              public face (read-only; branches under /bzr/).  Prints the
              two URLs it listens on, admin first.

      add-worker NAME
              Set the password of worker NAME in the --credentials file
              (created if missing; an existing line for NAME is replaced).
              Asks for the password twice, without echo; reads one line
              from standard input when it is not a terminal.

      break-lock CODEBASE[/CAMPAIGN[/ROLE]]
              Break the write lock a killed client left behind: the
              branch lock of CAMPAIGN[/ROLE], or for a bare CODEBASE its
              shared repository's lock.  With --older-than, only if it is
              older than that many seconds.  Only break a lock whose
              holder is gone: the admin face lists held locks at
              GET /CODEBASE/locks.

    Who may write on the public face: with --database-url (the janitor's
    PostgreSQL database), the workers of its worker table, and only the
    codebases of its codebase table exist; without one, the workers of
    the --credentials file, if given; otherwise nobody.  A worker gives
    its name and password over HTTP Basic authentication (brz takes them
    from authentication.conf).

    Layout of the storage directory: CODEBASE/ is a shared repository,
    CODEBASE/CAMPAIGN/ the campaign's main branch and
    CODEBASE/CAMPAIGN/ROLE/ any other role.  Names follow
    [a-z0-9][a-z0-9+.-]+.

    Each option also reads an environment variable: --directory
    BZR_STORE_PATH, --listen BZR_STORE_HOST, --port BZR_STORE_ADMIN_PORT,
    --public-port BZR_STORE_PUBLIC_PORT, --campaign BZR_STORE_CAMPAIGNS
    (comma-separated), --config BZR_STORE_CONFIG, --client-max-size
    BZR_STORE_CLIENT_MAX_SIZE, --public-url BZR_STORE_PUBLIC_URL,
    --diff-timeout BZR_STORE_DIFF_TIMEOUT, --database-url DATABASE_URL (else the
    config file's database_location), --credentials
    BZR_STORE_CREDENTIALS, --break-locks-older-than
    BZR_STORE_BREAK_LOCKS_OLDER_THAN (off unless set: before a write,
    break the locks it would wait for when older than that many seconds;
    a push still running that long loses its lock).

    :Examples:
        Serve the current directory on localhost:9929 and :9930::

            brz janitor-store serve

        Serve /srv/bzr for two campaigns, on any free ports::

            brz janitor-store serve -d /srv/bzr --port 0 --public-port 0 \\
                --campaign lintian-fixes --campaign fresh-releases
    """

    takes_args: ClassVar[list[str]] = ["action", "name?"]
    takes_options: ClassVar[list] = [
        Option(
            "directory",
            short_name="d",
            type=str,
            help="Storage directory (default: .).",
        ),
        Option("listen", type=str, help="Address to listen on (default: localhost)."),
        Option(
            "port", type=int, help="Admin face port (default: 9929; 0: any free port)."
        ),
        Option(
            "public-port",
            type=int,
            help="Public face port (default: 9930; 0: any free port).",
        ),
        ListOption(
            "campaign",
            type=str,
            help="A known campaign (repeatable; default: any name).",
        ),
        Option(
            "config",
            type=str,
            help="Janitor configuration file (protobuf text format).",
        ),
        Option(
            "client-max-size",
            type=int,
            help="Largest request body in bytes (default: 1 GiB).",
        ),
        Option(
            "public-url",
            type=str,
            help="Root URL of the public face, for links to its pages.",
        ),
        Option(
            "diff-timeout",
            type=float,
            help="Seconds a diff may take before it is cut off (default: 30).",
        ),
        Option(
            "database-url",
            type=str,
            help="The janitor's PostgreSQL database: codebases and workers.",
        ),
        Option(
            "credentials",
            type=str,
            help="File of worker credentials (name:hash lines), without a database.",
        ),
        Option(
            "break-locks-older-than",
            type=int,
            help="serve: break locks older than SECONDS before writes (default: never).",
        ),
        Option(
            "older-than",
            type=int,
            help="break-lock: only a lock older than SECONDS.",
        ),
    ]
    encoding_type = "replace"

    def run(
        self,
        action: str,
        name: str | None = None,
        directory: str | None = None,
        listen: str | None = None,
        port: int | None = None,
        public_port: int | None = None,
        campaign: list[str] | None = None,
        config: str | None = None,
        client_max_size: int | None = None,
        database_url: str | None = None,
        credentials: str | None = None,
        break_locks_older_than: int | None = None,
        older_than: int | None = None,
        public_url: str | None = None,
        diff_timeout: float | None = None,
    ) -> int:
        if action == "add-worker":
            return self._add_worker(name, credentials)
        if action == "break-lock":
            return self._break_lock(name, directory, older_than)
        if action != "serve" or name is not None:
            raise errors.CommandError(
                f"unknown action {action!r}; try 'brz help janitor-store'"
            )
        from .serve import ServeSettings, run_serve

        try:
            settings = ServeSettings.resolve(
                directory=directory,
                listen=listen,
                port=port,
                public_port=public_port,
                campaigns=campaign or None,
                config=config,
                client_max_size=client_max_size,
                database_url=database_url,
                credentials=credentials,
                break_locks_older_than=break_locks_older_than,
                public_url=public_url,
                diff_timeout=diff_timeout,
            )
            run_serve(settings, self.outf)
        except ConfigError as e:
            raise errors.CommandError(str(e)) from None
        return 0

    def _add_worker(self, name: str | None, credentials: str | None) -> int:
        import getpass
        import sys

        from .auth import add_worker
        from .config import env_default

        if name is None:
            raise errors.CommandError("add-worker needs a worker NAME")
        path = env_default(credentials, "BZR_STORE_CREDENTIALS")
        if path is None:
            raise errors.CommandError("add-worker needs --credentials FILE")
        if sys.stdin.isatty():
            password = getpass.getpass(f"Password for {name}: ")
            if getpass.getpass("Again: ") != password:
                raise errors.CommandError("the passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise errors.CommandError("empty password")
        try:
            new = add_worker(path, name, password)
        except ConfigError as e:
            raise errors.CommandError(str(e)) from None
        self.outf.write(f"{'Added' if new else 'Updated'} worker {name} in {path}\n")
        return 0

    def _break_lock(
        self, location: str | None, directory: str | None, older_than: int | None
    ) -> int:
        import os

        from . import layout, locks
        from .config import env_default
        from .storage import Storage

        if location is None:
            raise errors.CommandError("break-lock needs CODEBASE[/CAMPAIGN[/ROLE]]")
        try:
            where = layout.parse_location(location.strip("/"))
        except layout.InvalidName as e:
            raise errors.CommandError(str(e)) from None
        storage = Storage(env_default(directory, "BZR_STORE_PATH", os.getcwd()))
        if not storage.has_repository(where.codebase):
            raise errors.CommandError(
                f"no codebase {where.codebase} in {storage.directory}"
            )
        try:
            held = locks.break_lock(storage, where, older_than=older_than)
        except locks.LockChanged as e:
            raise errors.CommandError(str(e)) from None
        if held is None:
            younger = "" if older_than is None else f" older than {older_than} s"
            self.outf.write(f"No lock{younger} held on {where}\n")
        else:
            self.outf.write(f"Broke the {held.describe()}\n")
        return 0
