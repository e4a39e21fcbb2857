"""``brz janitor-store ACTION``: a thin command-line shell over the library.

Each action is a breezy command of its own (``janitor-store-serve``,
``janitor-store-add-worker``, ``janitor-store-break-lock``) with only its own
options, so breezy's option parser refuses an option of another action.
``brz janitor-store ACTION ARGS...`` hands ``ARGS`` to the command of
``ACTION`` unchanged.
"""

from __future__ import annotations

from typing import ClassVar

from breezy import errors
from breezy.commands import Command, get_cmd_object, plugin_cmds
from breezy.option import ListOption, Option

from .policy.config import ConfigError

__all__ = [
    "cmd_janitor_store",
    "cmd_janitor_store_add_worker",
    "cmd_janitor_store_backup",
    "cmd_janitor_store_break_lock",
    "cmd_janitor_store_check",
    "cmd_janitor_store_gc",
    "cmd_janitor_store_serve",
]

#: Prefix of the command of each action.
PREFIX = "janitor-store-"


def actions() -> list[str]:
    """The registered actions of ``brz janitor-store``."""
    return sorted(
        name[len(PREFIX) :] for name in plugin_cmds if name.startswith(PREFIX)
    )


class cmd_janitor_store(Command):
    __doc__ = """Run the Debian Janitor's bzr store.

    Each action takes only its own options: ``brz janitor-store ACTION
    --help`` lists them.  Every action needs the storage directory
    (``-d DIR`` or BZR_STORE_PATH) but add-worker.

    Actions:

      serve       Serve the store's admin and public faces over HTTP.
      add-worker  Set a worker's password in a credentials file.
      break-lock  Break a write lock a killed client left behind.
      gc          Remove abandoned uploads and obsolete packs.
      check       Report what is wrong with each codebase.
      backup      Copy the store, consistently, while it serves.

    Layout of the storage directory: CODEBASE/ is a shared repository,
    CODEBASE/CAMPAIGN/ the campaign's main branch and
    CODEBASE/CAMPAIGN/ROLE/ any other role.  Names follow
    [a-z0-9][a-z0-9+.-]+.

    :Examples:
        Serve /srv/bzr on localhost:9929 and :9930::

            brz janitor-store serve -d /srv/bzr

        Options of one action::

            brz janitor-store serve --help
    """

    takes_args: ClassVar[list[str]] = ["action", "args*"]
    encoding_type = "replace"

    def run_argv_aliases(self, argv: list[str], alias_argv: list[str] | None = None):
        """Run the command of the action named by the first argument."""
        argv = list(alias_argv or []) + list(argv)
        if argv and argv[0] in ("--help", "-h", "--usage"):
            return super().run_argv_aliases(argv[:1])
        if not argv or argv[0].startswith("-"):
            before = f" before {argv[0]}" if argv else ""
            raise errors.CommandError(
                f"janitor-store needs an ACTION ({', '.join(actions())}){before}"
            )
        action, rest = argv[0], argv[1:]
        if action not in actions():
            raise errors.CommandError(
                f"unknown action {action!r}; actions: {', '.join(actions())}"
            )
        return get_cmd_object(PREFIX + action).run_argv_aliases(rest)

    def run(self, action: str, args: list[str] | None = None) -> int:
        # Only reached through ``--help``/``--usage``, handled by breezy.
        raise errors.CommandError(f"unknown action {action!r}")


class _Action(Command):
    """An action of ``brz janitor-store``: named so in usage lines, help and
    errors (its command, ``janitor-store-ACTION``, is hidden)."""

    hidden = True
    encoding_type = "replace"

    def name(self) -> str:
        return "janitor-store " + super().name().removeprefix(PREFIX)


def _size(text: str) -> int:
    """An option's size: bytes, or a number with K, M or G."""
    from .policy.sizes import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise errors.CommandError(str(e)) from None


_directory = Option(
    "directory",
    short_name="d",
    type=str,
    argname="DIR",
    help="Storage directory (BZR_STORE_PATH; required).",
)
_credentials = Option(
    "credentials",
    type=str,
    argname="FILE",
    help="File of worker credentials, name:hash lines (BZR_STORE_CREDENTIALS).",
)


class cmd_janitor_store_serve(_Action):
    __doc__ = """Serve the store's two faces over HTTP until SIGINT or SIGTERM.

    The admin face (trusted network; workers push to
    bzr+http://HOST:PORT/CODEBASE/CAMPAIGN[/ROLE]) and the public face
    (read-only for anonymous clients; branches under /bzr/).  Prints the
    two URLs it listens on, admin first.

    Who may write on the public face: with --database-url (the janitor's
    PostgreSQL database), the workers of its worker table, and only the
    codebases of its codebase table exist; without one, the workers of
    the --credentials file, if given; otherwise nobody.  A worker gives
    its name and password over HTTP Basic authentication (brz takes them
    from authentication.conf).

    The options of the janitor's own store (janitor.bzr_store) work too:
    --vcs-path is --directory, --listen-address is --listen, and
    --port, --public-port, --config, --client-max-size (0: no limit),
    --debug and --gcp-logging mean the same, so the janitor image's
    entrypoint runs unchanged.  At start the store logs the storage
    directory, the campaigns in effect and where codebases and worker
    credentials come from.

    Each option also reads an environment variable: --directory
    (--vcs-path) BZR_STORE_PATH, --listen (--listen-address) BZR_STORE_HOST, --port BZR_STORE_ADMIN_PORT,
    --public-port BZR_STORE_PUBLIC_PORT, --campaign BZR_STORE_CAMPAIGNS
    (comma-separated), --config BZR_STORE_CONFIG, --client-max-size
    BZR_STORE_CLIENT_MAX_SIZE, --public-url BZR_STORE_PUBLIC_URL,
    --diff-timeout BZR_STORE_DIFF_TIMEOUT, --database-url DATABASE_URL (else the
    config file's database_location), --credentials
    BZR_STORE_CREDENTIALS, --break-locks-older-than
    BZR_STORE_BREAK_LOCKS_OLDER_THAN (off unless set: before a write,
    break the locks it would wait for when older than that many seconds;
    a push still running that long loses its lock), --lock-lease
    BZR_STORE_LOCK_LEASE (default 120; 0 or off: never: a lock taken for a
    client whose holder has not used it for that many seconds is broken by
    the next writer that would wait for it), --gc-interval
    BZR_STORE_GC_INTERVAL (every that many seconds, default 3600, run
    'janitor-store gc' with its defaults on every codebase; 0: never),
    --max-connections BZR_STORE_MAX_CONNECTIONS, --max-streams
    BZR_STORE_MAX_STREAMS, --drain-timeout BZR_STORE_DRAIN_TIMEOUT,
    --no-sync BZR_STORE_SYNC=0 (every write is synced to disk before the
    response acknowledging it, unless turned off).

    On SIGTERM or SIGINT it stops accepting connections, finishes the
    requests in flight and waits up to --drain-timeout seconds until the
    branch and repository locks taken through it are released (a push in
    progress completes); a second signal stops it at once.

    :Examples:
        Serve /srv/bzr on localhost:9929 and :9930::

            brz janitor-store serve -d /srv/bzr

        Serve /srv/bzr for two campaigns, on any free ports::

            brz janitor-store serve -d /srv/bzr --port 0 --public-port 0 \\
                --campaign lintian-fixes --campaign fresh-releases
    """

    takes_options: ClassVar[list] = [
        _directory,
        Option(
            "vcs-path",
            type=str,
            argname="DIR",
            help="Storage directory (as janitor.bzr_store).",
        ),
        Option(
            "listen",
            type=str,
            argname="HOST",
            help="Address to listen on (default: localhost).",
        ),
        Option(
            "listen-address",
            type=str,
            argname="HOST",
            help="Address to listen on (as janitor.bzr_store).",
        ),
        Option(
            "port",
            type=int,
            argname="PORT",
            help="Admin face port (default: 9929; 0: any free port).",
        ),
        Option(
            "public-port",
            type=int,
            argname="PORT",
            help="Public face port (default: 9930; 0: any free port).",
        ),
        ListOption(
            "campaign",
            type=str,
            argname="NAME",
            help="A known campaign (repeatable; default: any name).",
        ),
        Option(
            "config",
            type=str,
            argname="FILE",
            help="Janitor configuration file (protobuf text format).",
        ),
        Option(
            "client-max-size",
            type=_size,
            argname="SIZE",
            help="Largest request body: bytes, or with K, M or G (default: 1G; "
            "0: no limit).",
        ),
        Option(
            "public-url",
            type=str,
            argname="URL",
            help="Root URL of the public face, for links to its pages.",
        ),
        Option(
            "diff-timeout",
            type=float,
            argname="SECONDS",
            help="Seconds a diff may take before it is cut off (default: 30).",
        ),
        Option(
            "database-url",
            type=str,
            argname="URL",
            help="The janitor's PostgreSQL database: codebases and workers.",
        ),
        _credentials,
        Option(
            "break-locks-older-than",
            type=int,
            argname="SECONDS",
            help="Break locks older than SECONDS before writes (default: never).",
        ),
        Option(
            "lock-lease",
            type=str,
            argname="SECONDS",
            help="Break a lock taken for a client once its holder has not used "
            "it for SECONDS, when a writer waits for it (default: 120; 0 or "
            "off: never).",
        ),
        Option(
            "gc-interval",
            type=float,
            argname="SECONDS",
            help="Seconds between garbage collections (default: 3600; 0: never).",
        ),
        Option("debug", help="Log debug messages too."),
        Option(
            "gcp-logging",
            help="Log to Google Cloud Logging (needs google-cloud-logging).",
        ),
        Option(
            "max-connections",
            type=int,
            argname="N",
            help="Connections each face holds at most (default: a share of the "
            "file-descriptor limit, 384 under 1024).",
        ),
        Option(
            "max-streams",
            type=int,
            argname="N",
            help="Heavy streams (branch, push) run at once by writers, and as "
            "many by readers (default: the number of CPUs).",
        ),
        Option(
            "drain-timeout",
            type=float,
            argname="SECONDS",
            help="Seconds to wait on SIGTERM for requests and write locks "
            "(default: 30).",
        ),
        Option(
            "no-sync",
            help="Do not sync writes before acknowledging them (throw-away "
            "stores only: a crash can lose acknowledged pushes).",
        ),
        Option(
            "forwarded-allow-ips",
            type=str,
            argname="ADDRESSES",
            help="Reverse proxies (addresses or networks, comma-separated; *: "
            "any) whose X-Forwarded-For, Forwarded, X-Forwarded-Proto and "
            "X-Request-Id are believed (default: none; FORWARDED_ALLOW_IPS).",
        ),
        Option(
            "log-format",
            type=str,
            argname="FORMAT",
            help="text (default) or json: one JSON object a line "
            "(BZR_STORE_LOG_FORMAT).",
        ),
        Option(
            "allow-other-content",
            help="Serve a directory holding more than codebases "
            "(BZR_STORE_ALLOW_OTHER_CONTENT=1).",
        ),
    ]
    encoding_type = "replace"

    def run(
        self,
        directory: str | None = None,
        vcs_path: str | None = None,
        listen: str | None = None,
        listen_address: str | None = None,
        campaign: list[str] | None = None,
        **options,
    ) -> int:
        """Serve; every other option is :meth:`ServeSettings.resolve`'s
        argument of the same name."""
        from .serve import ServeSettings, run_serve

        try:
            settings = ServeSettings.resolve(
                directory=_same("--directory", directory, "--vcs-path", vcs_path),
                listen=_same("--listen", listen, "--listen-address", listen_address),
                campaigns=campaign or None,
                **options,
            )
            run_serve(settings, self.outf)
        except ConfigError as e:
            raise errors.CommandError(str(e)) from None
        return 0


def _storage_directory(value: str | None) -> str:
    """The storage directory an action works on (see :mod:`.storagedir`)."""
    from .policy.storagedir import storage_directory

    try:
        return storage_directory(value)
    except ConfigError as e:
        raise errors.CommandError(str(e)) from None


def _same(name: str, value: str | None, alias: str, alias_value: str | None):
    """The value of an option given under its name or its ``janitor.bzr_store``
    alias; both is an error unless they agree."""
    if value is not None and alias_value is not None and value != alias_value:
        raise errors.CommandError(f"{name} and {alias} differ; give one of them")
    return value if value is not None else alias_value


class cmd_janitor_store_add_worker(_Action):
    __doc__ = """Set the password of worker NAME in a credentials file.

    The --credentials file is created if missing; an existing line for NAME
    is replaced.  Asks for the password twice, without echo; reads one line
    from standard input when it is not a terminal.  The file holds a salted
    scrypt hash per worker, for ``serve --credentials``.
    """

    takes_args: ClassVar[list[str]] = ["name"]
    takes_options: ClassVar[list] = [_credentials]
    encoding_type = "replace"

    def run(self, name: str, credentials: str | None = None) -> int:
        import getpass
        import sys

        from .policy.auth import add_worker
        from .policy.config import env_default

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


class cmd_janitor_store_break_lock(_Action):
    __doc__ = """Break the write lock a killed client left behind.

    The branch lock of CODEBASE/CAMPAIGN[/ROLE], or for a bare CODEBASE its
    shared repository's lock.  With --older-than, only if it is older than
    that many seconds.  Only break a lock whose holder is gone: the admin
    face lists held locks at GET /CODEBASE/locks.
    """

    takes_args: ClassVar[list[str]] = ["location"]
    takes_options: ClassVar[list] = [
        _directory,
        Option(
            "older-than",
            type=int,
            argname="SECONDS",
            help="Only a lock older than SECONDS.",
        ),
    ]
    encoding_type = "replace"

    def run(
        self,
        location: str,
        directory: str | None = None,
        older_than: int | None = None,
    ) -> int:

        from .policy.storagedir import branch_exists
        from .store import layout, locks
        from .store.storage import Storage

        try:
            where = layout.parse_location(location.strip("/"))
        except layout.InvalidName as e:
            raise errors.CommandError(str(e)) from None
        storage = Storage(_storage_directory(directory))
        if not storage.has_repository(where.codebase):
            raise errors.CommandError(
                f"no codebase {where.codebase} in {storage.directory}"
            )
        disk = layout.to_disk(where.segments)
        if where.segments and not branch_exists(storage.path(where.codebase), disk):
            raise errors.CommandError(f"no branch {where} in {storage.directory}")
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


class cmd_janitor_store_gc(_Action):
    __doc__ = """Remove abandoned uploads and obsolete packs; report what was freed.

    In each CODEBASE's shared repository (default: every codebase), removes
    the packs in .bzr/repository/upload/ that no write group is writing
    (left by a store process killed mid-push, or a push that never resumed
    its suspended write group) and the packs an autopack moved to
    .bzr/repository/obsolete_packs/, once they are older than --older-than
    seconds (default: one day).  An upload is kept while any of its files
    changed within the last hour whatever --older-than says: a push in
    progress writes its pack as its data arrives.  A codebase whose
    pack lock is held (an autopack or another gc) is skipped; one that
    cannot be collected (a symlink planted in it) is reported and the others
    collected, then the command exits 1.  Safe to run while the store
    serves; ``serve`` also runs it every --gc-interval.
    """

    takes_args: ClassVar[list[str]] = ["codebase*"]
    takes_options: ClassVar[list] = [
        _directory,
        Option(
            "older-than",
            type=float,
            argname="SECONDS",
            help="Only files older than SECONDS (default: 86400).",
        ),
    ]
    encoding_type = "replace"

    def run(
        self,
        codebase_list: list[str] | None = None,
        directory: str | None = None,
        older_than: float | None = None,
    ) -> int:

        from .policy.storagedir import other_content
        from .store import gc, layout, patches
        from .store.storage import Storage

        # it opens every repository: each freed once collected
        patches.install(serving=False)
        storage = Storage(_storage_directory(directory))
        if not storage.codebases() and other_content(storage.directory):
            raise errors.CommandError(
                f"{storage.directory} is not a store: it holds no codebase "
                "(a directory with a .bzr) but other files"
            )
        if older_than is not None and older_than < 0:
            raise errors.CommandError("--older-than must not be negative")
        for name in codebase_list or ():
            if not layout.is_valid_name(name) or not storage.has_repository(name):
                raise errors.CommandError(f"no codebase {name} in {storage.directory}")
        report = gc.collect(
            storage,
            codebase_list or None,
            older_than=gc.DEFAULT_OLDER_THAN if older_than is None else older_than,
        )
        for line in report.lines():
            self.outf.write(line + "\n")
        return 1 if report.failed else 0


def _storage_and_codebases(directory: str | None, codebases: list[str] | None):
    """The storage directory (``-d``, BZR_STORE_PATH, else .) and the
    codebases named on the command line, each checked to exist."""
    import os

    from .policy.config import env_default
    from .store import layout, patches
    from .store.storage import Storage

    # check and backup open every repository: each freed once done with
    patches.install(serving=False)
    storage = Storage(env_default(directory, "BZR_STORE_PATH", os.getcwd()))
    if not os.path.isdir(storage.directory):
        raise errors.CommandError(f"no storage directory {storage.directory}")
    for name in codebases or ():
        if not layout.is_valid_name(name) or not storage.has_repository(name):
            raise errors.CommandError(f"no codebase {name} in {storage.directory}")
    return storage, codebases or None


class cmd_janitor_store_check(_Action):
    __doc__ = """Report what is wrong with each CODEBASE (default: every codebase).

    Runs breezy's repository and branch checks and the store's own rules:
    files the layout has no place for, symbolic links, branch references,
    stacked or bound branches and branch.conf options a push could not
    write, pack-names naming missing packs or indices of other sizes,
    pack records that cannot be read, tips missing from the repository,
    and leftovers of pushes in upload/.  Reports every problem of every
    codebase, one line each (CODEBASE: PATH: KIND: WHAT), or a JSON
    document with --json; exits 1 when anything is wrong.  Reads through
    the store's jail, under each repository's read lock: safe to run
    while the store serves.
    """

    takes_args: ClassVar[list[str]] = ["codebase*"]
    takes_options: ClassVar[list] = [
        _directory,
        Option("json", help="Print a JSON document."),
    ]
    encoding_type = "replace"

    def run(
        self,
        codebase_list: list[str] | None = None,
        directory: str | None = None,
        json: bool = False,
    ) -> int:
        import json as json_module

        from .store.check import check_store

        storage, codebases = _storage_and_codebases(directory, codebase_list)
        reports = check_store(storage, codebases)
        damaged = [r for r in reports if r.problems]
        if json:
            document = {
                "clean": not damaged,
                "codebases": {r.codebase: r.as_json() for r in reports},
            }
            self.outf.write(json_module.dumps(document, indent=2) + "\n")
        else:
            for report in damaged:
                for line in report.lines():
                    self.outf.write(line + "\n")
            self.outf.write(
                f"{len(reports)} codebases checked, "
                + (
                    f"{len(damaged)} damaged: {', '.join(r.codebase for r in damaged)}"
                    if damaged
                    else "no problems"
                )
                + "\n"
            )
        return 1 if damaged else 0


class cmd_janitor_store_backup(_Action):
    __doc__ = """Copy the store (or each CODEBASE) into DEST while it serves.

    Each codebase is copied as of one moment: its repository first
    (pack-names read under the repository's read lock, then the packs and
    indices it names), then its branches, each naming revisions the copy
    has.  Files are hard-linked when DEST is on the same filesystem (pack
    data never changes), else copied; a second backup into the same DEST
    copies only what changed, and drops what the store no longer has.
    Restoring is serving DEST; 'janitor-store check -d DEST' is clean.
    """

    takes_args: ClassVar[list[str]] = ["dest", "codebase*"]
    takes_options: ClassVar[list] = [_directory]
    encoding_type = "replace"

    def run(
        self,
        dest: str,
        codebase_list: list[str] | None = None,
        directory: str | None = None,
    ) -> int:
        from .store.backup import BackupError, backup_store

        storage, codebases = _storage_and_codebases(directory, codebase_list)
        try:
            report = backup_store(storage, dest, codebases)
        except BackupError as e:
            raise errors.CommandError(str(e)) from None
        for line in report.lines():
            self.outf.write(line + "\n")
        return 1 if report.failed else 0
