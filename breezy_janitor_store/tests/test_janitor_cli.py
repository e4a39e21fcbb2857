"""``serve`` as a drop-in for ``janitor.bzr_store``: its command line, a
strictly read janitor config, the cache branches and what it logs at start."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import unittest

from ..policy.policies import Campaigns
from ..web.app import StoreApp
from .support.fixtures import FREE_PORTS, StoreTestCase, brz, plugin_env, start_serve

#: A janitor config as the janitor's own example writes one.
JANITOR_CONFIG = """\
# janitor.conf
logs_location: "https://s3.example.org"
committer: "Janitor Bot <janitor@example.org>"
distribution {
  name: "unstable"
  archive_mirror_uri: "http://deb.debian.org/debian"
  component: "main"
  lintian_suppress_tag: "bad-distribution-in-changes-file"
  vendor: "debian"
}
distribution {
  name: "jammy"
  vendor: "ubuntu"
}
distribution { name: "trixie" }
campaign {
  name: "lintian-fixes"
  command: "lintian-brush"
  branch_name: "lintian-fixes"
  debian_build {
    build_distribution: "lintian-fixes"
    base_distribution: "unstable"
  }
  bugtracker { kind: debian url: "https://bugs.debian.org/lintian-brush" }
}
campaign {
  name: "fresh-releases"
  merge_proposal { value_threshold: 10 }
  debian_build { base_distribution: "unstable" }
}
"""


def stop_and_read_log(test: unittest.TestCase, proc: subprocess.Popen) -> str:
    """Stop ``serve`` with SIGINT; its standard error."""
    proc.send_signal(signal.SIGINT)
    test.assertEqual(proc.wait(30), 0)
    log = proc.stderr.read().decode()
    test.assertNotIn("Traceback", log)
    return log


class JanitorCommandLineTests(StoreTestCase):
    def write(self, name: str, text: str) -> str:
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assertFails(self, message: str, *args: str, **env: str) -> None:
        """``serve ARGS`` stops with status 3 and one line: ``message``."""
        proc = brz("janitor-store", "serve", *args, env=plugin_env(**env), check=False)
        err = proc.stderr.decode()
        self.assertEqual(proc.returncode, 3, err)
        self.assertEqual(err.strip(), f"brz: ERROR: {message}")

    def test_janitor_entrypoint_runs_unchanged(self) -> None:
        """The janitor image's arguments (free ports here), then a worker's
        pushes of a campaign branch and of the cache branch."""
        config = self.write("janitor.conf", JANITOR_CONFIG)
        proc, admin, public = start_serve(
            self,
            "--port=0",
            "--public-port=0",
            "--listen-address=127.0.0.1",
            "--vcs-path",
            self.storage_dir,
            "--config",
            config,
            "--client-max-size=0",
            "--debug",
        )
        work = self.make_branch()
        brz("push", "-q", f"bzr+{admin}/hello/lintian-fixes", cwd=work)
        for vendor in ("debian", "ubuntu"):
            brz("push", "-q", f"bzr+{admin}/hello/{vendor}/latest", cwd=work)
            self.assertTrue(
                os.path.isdir(
                    os.path.join(self.storage_dir, "hello", vendor, "latest", ".bzr")
                )
            )
        proc_out = brz("push", f"bzr+{admin}/hello/unchanged", cwd=work, check=False)
        self.assertNotEqual(proc_out.returncode, 0)
        brz("branch", f"bzr+{public}/bzr/hello/debian/latest", self.path("copy"))
        log = stop_and_read_log(self, proc)
        for line in (
            f"storage directory: {self.storage_dir}",
            (
                "campaigns: lintian-fixes, fresh-releases; "
                "cache branches under: debian/latest, ubuntu/latest"
            ),
            "codebases: any valid name (created on the first write)",
            "public-face writers: none (read-only)",
            "largest request body: no limit",
        ):
            self.assertIn(line + "\n", log)

    def test_generic_campaign_cache_branch(self) -> None:
        """A campaign without ``debian_build`` has its cache branch at
        ``CODEBASE/main``, where the janitor's worker pushes it."""
        config = self.write(
            "janitor.conf",
            'campaign {\n  name: "lintian-fixes"\n  debian_build { }\n}\n'
            'campaign {\n  name: "upstream-merge"\n}\n',
        )
        proc, admin, _ = start_serve(
            self, "--vcs-path", self.storage_dir, "--config", config, *FREE_PORTS
        )
        work = self.make_branch()
        brz("push", "-q", f"bzr+{admin}/hello/main", cwd=work)
        self.assertTrue(
            os.path.isdir(os.path.join(self.storage_dir, "hello", "main", ".bzr"))
        )
        self.assertIn(
            "campaigns: lintian-fixes, upstream-merge; "
            "cache branches under: debian/latest, main\n",
            stop_and_read_log(self, proc),
        )

    def test_client_max_size_zero_is_no_limit(self) -> None:
        """With ``0`` a body larger than the default limit is read, not
        refused before it is sent."""
        for args, refused in ((["--client-max-size=0"], False), ([], True)):
            with self.subTest(args=args):
                _, admin, _ = start_serve(
                    self, "-d", self.storage_dir, *FREE_PORTS, *args
                )
                host, port = admin.removeprefix("http://").split(":")
                with socket.create_connection((host, int(port)), timeout=60) as s:
                    s.sendall(
                        b"POST /hello/.bzr/smart HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 2000000000\r\n\r\nbzr message 3 (bzr 1.6)\n"
                    )
                    s.shutdown(socket.SHUT_WR)
                    status = s.recv(64).split(b" ")[1]
                self.assertEqual(status == b"413", refused, status)

    def test_storage_directory_errors(self) -> None:
        a_file = self.write("file", "")
        missing = self.path("missing")
        self.assertFails(
            f"storage directory {a_file} is not a directory", "--vcs-path", a_file
        )
        self.assertFails(
            "--directory and --vcs-path differ; give one of them",
            "-d",
            self.storage_dir,
            "--vcs-path",
            missing,
        )

    def test_port_in_use_names_port_and_face(self) -> None:
        _, admin, public = start_serve(self, "-d", self.storage_dir, *FREE_PORTS)
        admin_port = admin.rsplit(":", 1)[1]
        public_port = public.rsplit(":", 1)[1]
        self.assertFails(
            f"cannot listen on 127.0.0.1:{admin_port} (admin face): "
            "Address already in use",
            "-d",
            self.storage_dir,
            "--listen-address=127.0.0.1",
            f"--port={admin_port}",
            "--public-port=0",
        )
        self.assertFails(
            f"cannot listen on 127.0.0.1:{public_port} (public face): "
            "Address already in use",
            "-d",
            self.storage_dir,
            "--listen",
            "127.0.0.1",
            "--port=0",
            f"--public-port={public_port}",
        )

    def test_gcp_logging_without_its_library(self) -> None:
        try:
            importlib.import_module("google.cloud.logging")
        except ImportError:
            pass
        else:
            self.skipTest("google-cloud-logging is installed")
        self.assertFails(
            "--gcp-logging needs the google-cloud-logging library "
            "(pip install 'breezy-janitor-store[gcp]')",
            "-d",
            self.storage_dir,
            "--gcp-logging",
            *FREE_PORTS,
        )

    def test_campaign_names_follow_the_naming_rule(self) -> None:
        rule = "names follow [a-z0-9][a-z0-9+.-]+"
        self.assertFails(
            f"invalid campaign name 'Lintian_Fixes' (--campaign): {rule}",
            "-d",
            self.storage_dir,
            "--campaign",
            "lintian-fixes",
            "--campaign",
            "Lintian_Fixes",
        )
        self.assertFails(
            f"invalid campaign name 'k' (BZR_STORE_CAMPAIGNS): {rule}",
            "-d",
            self.storage_dir,
            BZR_STORE_CAMPAIGNS="lintian-fixes,k",
        )

    def test_config_mistakes_name_file_and_line(self) -> None:
        rule = "names follow [a-z0-9][a-z0-9+.-]+"
        cases = [
            (
                'campaign {\n  nme: "lintian-fixes"\n}\n',
                2,
                "unknown field 'nme' in Campaign",
            ),
            (
                'campaign { name: "a" }\ncampaign {\n}\n',
                1,
                f"invalid campaign name 'a': {rule}",
            ),
            (
                'campaign { name: "ok-one" }\ncampaign {\n  branch_name: "x"\n}\n',
                2,
                "campaign without a name",
            ),
            (
                'campaign {\n  name: "Lintian_Fixes"\n}\n',
                2,
                f"invalid campaign name 'Lintian_Fixes': {rule}",
            ),
            (
                'database_locaton: "postgresql:///janitor"\n',
                1,
                "unknown field 'database_locaton' in Config",
            ),
            (
                'distribution {\n name: "x"\n vendr: "debian"\n}\n',
                3,
                "unknown field 'vendr' in Distribution",
            ),
            (
                'distribution {\n vendor: "Debian"\n}\n',
                2,
                f"invalid distribution vendor 'Debian': {rule}",
            ),
            ('campaign: "lintian-fixes"\n', 1, "campaign must be a block { ... }"),
        ]
        for text, line, message in cases:
            with self.subTest(message=message):
                config = self.write("janitor.conf", text)
                self.assertFails(
                    f"{config}, line {line}: {message}",
                    "-d",
                    self.storage_dir,
                    "--config",
                    config,
                )
        config = self.write("janitor.conf", 'campaign {\n  name: "x\n}\n')
        proc = brz(
            "janitor-store",
            "serve",
            "-d",
            self.storage_dir,
            "--config",
            config,
            env=plugin_env(),
            check=False,
        )
        self.assertEqual(proc.returncode, 3)
        self.assertIn(f"cannot parse {config}: line 2:", proc.stderr.decode())

    def test_log_without_config(self) -> None:
        creds = self.write("credentials", "")
        proc, _, _ = start_serve(
            self,
            "-d",
            self.storage_dir,
            *FREE_PORTS,
            "--credentials",
            creds,
            "--client-max-size",
            "1000",
        )
        log = stop_and_read_log(self, proc)
        self.assertIn("campaigns: any campaign\n", log)
        self.assertIn(f"public-face writers: the workers in {creds}\n", log)
        self.assertIn("largest request body: 1000 bytes\n", log)


class CampaignPolicyTests(unittest.TestCase):
    def test_embedded_campaign_names_are_checked(self) -> None:
        with self.assertRaisesRegex(
            ValueError, "invalid campaign name: 'Lintian_Fixes'"
        ):
            StoreApp("/nonexistent", campaigns=["lintian-fixes", "Lintian_Fixes"])
        self.assertIn("debian", Campaigns(["lintian-fixes", "debian"]))
