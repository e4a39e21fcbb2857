"""Start-up errors of ``brz janitor-store serve`` name what is wrong."""

from __future__ import annotations

import socket
import subprocess

from .support.fixtures import StoreTestCase, brz_command, plugin_env


class StartupErrorTests(StoreTestCase):
    def serve_fails(self, *args: str) -> str:
        """Run ``serve ARGS``, which must stop at once with status 3 and one
        line on standard error; return that line."""
        proc = subprocess.run(
            [*brz_command(), "janitor-store", "serve", *args],
            capture_output=True,
            check=False,
            env=plugin_env(),
            timeout=120,
        )
        self.assertEqual(proc.returncode, 3, proc.stderr)
        self.assertEqual(proc.stdout, b"")
        lines = proc.stderr.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        return lines[0]

    def test_storage_path_that_is_a_file(self) -> None:
        path = self.path("a-file")
        with open(path, "w"):
            pass
        self.assertEqual(
            self.serve_fails("-d", path),
            f"brz: ERROR: storage directory {path} is not a directory",
        )

    def test_missing_storage_directory(self) -> None:
        path = self.path("missing")
        self.assertEqual(
            self.serve_fails("-d", path),
            f"brz: ERROR: storage directory {path} does not exist",
        )

    def test_port_in_use_names_the_port_and_the_face(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = str(taken.getsockname()[1])
            for face, ports in (
                ("admin", ("--port", port, "--public-port", "0")),
                ("public", ("--port", "0", "--public-port", port)),
            ):
                with self.subTest(face=face):
                    self.assertEqual(
                        self.serve_fails(
                            "-d", self.storage_dir, "--listen", "127.0.0.1", *ports
                        ),
                        f"brz: ERROR: cannot listen on 127.0.0.1:{port} "
                        f"({face} face): Address already in use",
                    )
