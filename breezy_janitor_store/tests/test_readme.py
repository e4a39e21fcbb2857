"""The README does what it says: its walkthrough is run for real and must
print what the README shows; CI runs the README's test command."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from typing import ClassVar

from .support.fixtures import (
    PROJECT_ROOT,
    StoreTestCase,
    plugin_env,
    reap,
    stop_process,
)

README = os.path.join(PROJECT_ROOT, "README.md")
CI_SCRIPT = os.path.join(PROJECT_ROOT, ".ci", "run")
#: The ports the README's commands use (admin, public).
README_PORTS = (9929, 9930)
#: Printed after each walkthrough command by the script that runs them.
MARKER = "@@readme-step-done@@"


def read_readme() -> str:
    with open(README, encoding="utf-8") as f:
        return f.read()


def first_screen_commands(text: str) -> list[str]:
    """The indented command lines above the README's first section."""
    head = text.split("\n## ", 1)[0]
    return [line[4:] for line in head.splitlines() if line.startswith("    ")]


def section(text: str, title: str) -> str:
    """The body of the ``## title...`` section."""
    match = re.search(
        rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL
    )
    if match is None:
        raise AssertionError(f"README has no section {title!r}")
    return match.group(1)


def walkthrough_steps(text: str) -> list[tuple[str, list[str]]]:
    """``(command, expected output lines)`` of the walkthrough's code block."""
    steps: list[tuple[str, list[str]]] = []
    for line in section(text, "30-second walkthrough").splitlines():
        if not line.startswith("    "):
            continue
        line = line[4:]
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line.rstrip())
    return steps


def matches(expected: str, actual: str) -> bool:
    """``actual`` is ``expected``, where ``...`` stands for any text."""
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def transcript(steps: list[tuple[str, list[str]]]) -> str:
    return "".join(
        f"$ {command}\n" + "".join(f"{line}\n" for line in output)
        for command, output in steps
    )


class CheckoutTestCase(StoreTestCase):
    """A test of the source checkout (README, CI script), not of an
    installed package."""

    def setUp(self) -> None:
        super().setUp()
        if not os.path.exists(README):
            self.skipTest("needs the source checkout (README.md)")


class ReadmeTests(CheckoutTestCase):
    maxDiff = None

    def test_ci_runs_the_readme_test_command_once(self) -> None:
        tests = [
            c
            for c in first_screen_commands(read_readme())
            if "pytest" in c or "selftest" in c
        ]
        self.assertEqual(len(tests), 1, tests)
        command = tests[0]
        self.assertEqual(
            command.count("pytest") + command.count("selftest"), 1, command
        )
        with open(CI_SCRIPT, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
        self.assertIn(command, lines)

    def start_first_screen_server(self, checkout: str) -> tuple[int, int]:
        """Run the README's serve command in ``checkout`` (without its
        install steps, on free ports); return the admin and public ports."""
        serve = [c for c in first_screen_commands(read_readme()) if " serve" in c]
        self.assertEqual(len(serve), 1, serve)
        parts = [p.strip() for p in serve[0].split("&&")]
        steps = [
            p for p in parts if not p.startswith(("python3 -m venv", ".venv/bin/pip"))
        ]
        self.assertIn("janitor-store serve", steps[-1])
        script = " && ".join(
            [*steps[:-1], f"exec {steps[-1]} --port 0 --public-port 0"]
        )
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=checkout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.walkthrough_env(),
        )
        self.addCleanup(reap, proc)
        self.addCleanup(stop_process, proc, signal.SIGTERM, 30)
        urls = [proc.stdout.readline().decode().strip() for _ in range(2)]
        if not all(urls):
            self.fail(proc.stderr.read().decode())
        ports = [
            int(re.fullmatch(r"http://127\.0\.0\.1:(\d+)/", u).group(1)) for u in urls
        ]
        return ports[0], ports[1]

    def walkthrough_env(self) -> dict[str, str]:
        """A fresh user's environment: no identity, temporary files in the test's
        directory, ``brz`` only after ``. .venv/bin/activate``."""
        env = plugin_env(TMPDIR=self.tmp)
        for key in ("BRZ_EMAIL", "EMAIL", "VIRTUAL_ENV"):
            env.pop(key, None)
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if p and p != bindir
        )
        return env

    def make_venv(self, checkout: str) -> None:
        """``.venv/bin/brz`` (this interpreter's breezy with this checkout's
        plugin) and ``.venv/bin/activate``, as ``pip install .`` leaves them."""
        bindir = os.path.join(checkout, ".venv", "bin")
        os.makedirs(bindir)
        brz = os.path.join(bindir, "brz")
        with open(brz, "w") as f:
            f.write(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m breezy "$@"\n')
        os.chmod(brz, 0o755)
        with open(os.path.join(bindir, "activate"), "w") as f:
            f.write(f'PATH={shlex.quote(bindir)}:"$PATH"\nexport PATH\n')

    def test_walkthrough_prints_what_the_readme_shows(self) -> None:
        checkout = self.path("checkout")
        os.mkdir(checkout)
        self.make_venv(checkout)
        ports = self.start_first_screen_server(checkout)
        steps = walkthrough_steps(read_readme())
        self.assertTrue(steps)

        def to_test(text: str) -> str:
            for readme_port, port in zip(README_PORTS, ports):
                text = text.replace(f":{readme_port}/", f":{port}/")
            return text

        def to_readme(text: str) -> str:
            for readme_port, port in zip(README_PORTS, ports):
                text = text.replace(f":{port}/", f":{readme_port}/")
            return text

        script = "".join(
            f"{to_test(command)}\nprintf '\\n{MARKER} %d\\n' $?\n"
            for command, _ in steps
        )
        proc = subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", script],
            cwd=checkout,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.walkthrough_env(),
            timeout=600,
            check=False,
        )
        chunks = re.split(rf"\n{MARKER} (\d+)\n", proc.stdout.decode())
        self.assertEqual(len(chunks), 2 * len(steps) + 1, proc.stdout.decode())
        actual = []
        for (command, expected), out, status in zip(steps, chunks[0::2], chunks[1::2]):
            lines = [to_readme(line.rstrip()) for line in out.splitlines()]
            while lines and not lines[-1]:
                lines.pop()
            if len(lines) == len(expected):
                # Keep the README's wording where "..." stands for text.
                lines = [e if matches(e, a) else a for e, a in zip(expected, lines)]
            failed = any("brz: ERROR" in e for e in expected)
            if (status != "0") != failed:
                lines.append(f"[exit status {status}]")
            actual.append((command, lines))
        self.assertEqual(transcript(steps), transcript(actual))

        # Nothing the walkthrough does leaves unknown files in its trees.
        (scratch,) = [
            os.path.join(self.tmp, d)
            for d in os.listdir(self.tmp)
            if os.path.isdir(os.path.join(self.tmp, d, "hello"))
        ]
        for tree in ("hello", "copy"):
            status = subprocess.run(
                [os.path.join(checkout, ".venv", "bin", "brz"), "status", "--short"],
                cwd=os.path.join(scratch, tree),
                capture_output=True,
                env=self.walkthrough_env(),
                check=True,
            )
            self.assertEqual(status.stdout, b"", tree)


class ProcessTalkTests(CheckoutTestCase):
    #: Words about how the code came to be rather than what it does.
    PATTERN = re.compile(
        r"\bissue [0-9]+|\b(this|first|second) session\b|^\s*# (>>>|<<<)",
        re.IGNORECASE | re.MULTILINE,
    )
    SKIP_DIRS: ClassVar[set[str]] = {
        ".git",
        ".venv",
        "build",
        "node_modules",
        "__pycache__",
        ".cache",
    }

    def test_comments_and_docs_describe_the_code(self) -> None:
        found = []
        for root, dirs, files in os.walk(PROJECT_ROOT):
            dirs[:] = [
                d
                for d in dirs
                if d not in self.SKIP_DIRS and not d.endswith(".egg-info")
            ]
            for name in files:
                if not name.endswith((".py", ".md")):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for match in self.PATTERN.finditer(text):
                    if path == os.path.abspath(__file__):
                        continue
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(
                        f"{os.path.relpath(path, PROJECT_ROOT)}:{line}: {match.group(0)}"
                    )
        self.assertEqual(found, [])
