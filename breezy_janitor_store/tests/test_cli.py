"""``brz janitor-store``, the plugin's registration and its help."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import signal
import subprocess
from unittest import mock

from .. import __version__
from ..cmds import cmd_janitor_store_serve
from ..serve import ServeSettings
from .support.fixtures import (
    FREE_PORTS,
    StoreTestCase,
    assert_stops_cleanly,
    brz,
    http_request,
    plugin_env,
    start_serve,
)


class PluginTests(StoreTestCase):
    def test_plugin_from_checkout_is_listed_with_version(self) -> None:
        out = brz("plugins", env=plugin_env()).stdout.decode()
        self.assertIn(f"janitor_store {__version__}", out)

    def test_installed_plugin_is_listed(self) -> None:
        if importlib.util.find_spec("breezy.plugins.janitor_store") is None:
            self.skipTest("not installed (pip install .)")
        out = brz("plugins").stdout.decode()
        self.assertIn(f"janitor_store {__version__}", out)

    def test_help(self) -> None:
        """A summary and the list of actions, as ``brz help`` gives."""
        out = brz("help", "janitor-store", env=plugin_env()).stdout.decode()
        self.assertIn("Usage:   brz janitor-store ACTION [ARGS...]", out)
        for action in ("serve", "add-worker", "break-lock", "gc"):
            self.assertRegex(out, rf"\n +{action} +[A-Z]")
        self.assertNotIn("--public-port", out)  # each action's page has it
        self.assertLess(len(out.splitlines()), 60)

    def test_actions_are_named_as_typed(self) -> None:
        """Usage lines and placeholders name ``brz janitor-store ACTION``."""
        env = plugin_env()
        out = brz("janitor-store", "break-lock", "--help", env=env).stdout.decode()
        self.assertIn("Usage:   brz janitor-store break-lock LOCATION", out)
        self.assertIn("--directory=DIR", out)
        self.assertIn("--older-than=SECONDS", out)
        out = brz("janitor-store", "serve", "--help", env=env).stdout.decode()
        self.assertNotIn("=ARG", out)
        self.assertNotIn("janitor-store-serve", out)
        # the internal commands stay out of ``brz help commands``
        out = brz("help", "commands", env=env).stdout.decode()
        self.assertEqual(
            [line.split()[0] for line in out.splitlines() if "janitor" in line],
            ["janitor-store"],
        )

    def test_sizes_with_units(self) -> None:
        env = plugin_env()
        with mock.patch.dict(os.environ, {"BZR_STORE_CLIENT_MAX_SIZE": "2M"}):
            settings = ServeSettings.resolve(directory=self.storage_dir)
        self.assertEqual(settings.client_max_size, 2 * 1024**2)
        _, admin, _ = start_serve(
            self, "-d", self.storage_dir, *FREE_PORTS, "--client-max-size", "1K"
        )
        status, _, body = http_request(admin + "/hello/.bzr/smart", data=b"x" * 1025)
        self.assertEqual(status, 413, body)
        self.assertIn(b"exceeds the limit of 1024", body)
        proc = brz(
            "janitor-store",
            "serve",
            "-d",
            self.storage_dir,
            *FREE_PORTS,
            env=env | {"BZR_STORE_CLIENT_MAX_SIZE": "lots"},
            check=False,
        )
        self.assertEqual(proc.returncode, 3)
        self.assertIn(b"BZR_STORE_CLIENT_MAX_SIZE", proc.stderr)
        proc = brz(
            "janitor-store",
            "serve",
            "-d",
            self.storage_dir,
            *FREE_PORTS,
            "--client-max-size",
            "1X",
            env=env,
            check=False,
        )
        self.assertEqual(proc.returncode, 3)
        self.assertIn(b"invalid size '1X'", proc.stderr)

    def test_each_action_has_its_own_help(self) -> None:
        env = plugin_env()
        for args in (
            ["help", "janitor-store-serve"],
            ["janitor-store", "serve", "--help"],
        ):
            with self.subTest(args=args):
                out = brz(*args, env=env).stdout.decode()
                self.assertIn("--public-port", out)
                self.assertNotIn("--older-than", out)
        out = brz("janitor-store", "break-lock", "--help", env=env).stdout.decode()
        self.assertIn("--older-than", out)
        self.assertNotIn("--public-port", out)


class ActionOptionTests(StoreTestCase):
    """Each action takes its own options only: another action's is an error."""

    def assertRefused(self, message: str, *args: str) -> None:
        proc = brz("janitor-store", *args, env=plugin_env(), check=False)
        err = proc.stderr.decode()
        self.assertEqual(proc.returncode, 3, err)
        self.assertEqual(err.strip(), f"brz: ERROR: {message}")

    def test_option_of_another_action(self) -> None:
        self.assertRefused(
            "no such option: --older-than",
            "serve",
            "-d",
            self.storage_dir,
            "--older-than",
            "5",
            *FREE_PORTS,
        )
        self.assertRefused(
            "no such option: --port", "break-lock", "--port", "1", "hello"
        )
        self.assertRefused("no such option: -d", "add-worker", "-d", ".", "w1")

    def test_every_serve_option_is_a_setting(self) -> None:
        """``serve`` hands its options to ``ServeSettings.resolve`` by name."""
        accepted = set(inspect.signature(ServeSettings.resolve).parameters)
        accepted |= set(inspect.signature(cmd_janitor_store_serve.run).parameters)
        for option in cmd_janitor_store_serve.takes_options:
            name = option if isinstance(option, str) else option.name
            self.assertIn(name.replace("-", "_"), accepted)

    def test_missing_or_unknown_action(self) -> None:
        self.assertRefused(
            "janitor-store needs an ACTION (add-worker, backup, break-lock, check, gc, serve)"
        )
        self.assertRefused(
            "janitor-store needs an ACTION (add-worker, backup, break-lock, check, gc, serve) before -d",
            "-d",
            ".",
            "serve",
        )
        self.assertRefused(
            "unknown action 'frob'; actions: add-worker, backup, break-lock, check, gc, serve", "frob"
        )
        self.assertRefused(
            "extra argument to command janitor-store serve: extra", "serve", "extra"
        )

    def test_action_command_runs_directly(self) -> None:
        proc = brz(
            "janitor-store-break-lock",
            "-d",
            self.storage_dir,
            "hello",
            env=plugin_env(),
            check=False,
        )
        self.assertEqual(proc.returncode, 3)
        self.assertIn(b"no codebase hello", proc.stderr)


class ServeCommandTests(StoreTestCase):
    def serve(self, *args: str, **env: str) -> tuple[subprocess.Popen, str, str]:
        return start_serve(self, *args, **env)

    def test_serve_push_branch_and_interrupt(self) -> None:
        proc, admin, public = self.serve(
            "-d", self.storage_dir, *FREE_PORTS, "--campaign", "lintian-fixes"
        )
        self.assertRegex(admin, r"^http://127\.0\.0\.1:\d+$")
        self.assertRegex(public, r"^http://127\.0\.0\.1:\d+$")
        self.assertNotEqual(admin, public)
        work = self.make_branch(revisions=2)
        brz("push", f"bzr+{admin}/hello/lintian-fixes", cwd=work)
        brz("branch", f"bzr+{public}/bzr/hello/lintian-fixes", self.path("copy"))
        self.assertEqual(
            http_request(admin + "/hello/other/.bzr/smart", data=b"x")[0], 404
        )
        assert_stops_cleanly(self, proc)

    def test_sigterm_and_an_inherited_ignored_sigint_stop_it_cleanly(self) -> None:
        """A service manager's SIGTERM, and SIGINT even where the parent
        ignored it (a shell's background job), stop it with status 0."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig.name):
                proc, admin, _ = self.serve(
                    "-d", self.storage_dir, *FREE_PORTS, ignore_sigint=True
                )
                self.assertEqual(http_request(admin + "/health")[2], b"ok")
                assert_stops_cleanly(self, proc, sig)

    def test_environment_and_config_file(self) -> None:
        config = self.path("janitor.conf")
        with open(config, "w") as f:
            f.write(
                "# janitor config\n"
                'campaign {\n  name: "from-config"\n  branch_name: "x"\n'
                '  debian_build { base_distribution: "unstable" }\n}\n'
                "campaign { name: 'second' }\n"
            )
        _, admin, _ = self.serve(
            "--config",
            config,
            "--client-max-size",
            "200000",
            BZR_STORE_PATH=self.storage_dir,
            BZR_STORE_ADMIN_PORT="0",
            BZR_STORE_PUBLIC_PORT="0",
            BZR_STORE_PUBLIC_URL="https://janitor.example.org/",
        )
        work = self.make_branch()
        brz("push", f"bzr+{admin}/hello/from-config", cwd=work)
        self.assertTrue(
            os.path.isdir(os.path.join(self.storage_dir, "hello", "from-config"))
        )
        revid = brz("revision-info", "-d", work).stdout.split()[1].decode()
        status, _, body = http_request(
            f"{admin}/hello/revision-info?old=null:&new={revid}"
        )
        self.assertEqual(status, 200, body)
        self.assertTrue(
            json.loads(body)[0]["link"].startswith(
                "https://janitor.example.org/bzr/hello/+revision/"
            ),
            body,
        )
        self.assertEqual(
            http_request(admin + "/hello/lintian-fixes/.bzr/smart", data=b"x")[0], 404
        )
        status, _, body = http_request(
            admin + "/hello/second/.bzr/smart", data=b"x" * 200001
        )
        self.assertEqual(status, 413)
        self.assertIn(b"exceeds the limit of 200000", body)

    def test_errors_are_one_line_with_status_3(self) -> None:
        bad_config = self.path("bad.conf")
        with open(bad_config, "w") as f:
            f.write("campaign { name: \n")
        cases = [
            (["-d", self.path("missing")], "does not exist"),
            (
                ["-d", self.storage_dir, "--config", self.path("nope.conf")],
                "cannot read",
            ),
            (["-d", self.storage_dir, "--config", bad_config], "cannot parse"),
            (["-d", self.storage_dir, "--port", "70000"], "invalid port"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                proc = brz(
                    "janitor-store", "serve", *args, env=plugin_env(), check=False
                )
                err = proc.stderr.decode()
                self.assertEqual(proc.returncode, 3, err)
                self.assertIn(message, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
                self.assertNotIn("Traceback", err)

    def test_port_in_use(self) -> None:
        _, admin, _ = self.serve("-d", self.storage_dir, *FREE_PORTS)
        port = admin.rsplit(":", 1)[1]
        proc = brz(
            "janitor-store",
            "serve",
            "-d",
            self.storage_dir,
            "--port",
            port,
            "--public-port",
            "0",
            env=plugin_env(),
            check=False,
        )
        self.assertEqual(proc.returncode, 3)
        self.assertIn("cannot listen", proc.stderr.decode())
