"""Headless Chromium for page tests: run it on a URL, read its console."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import unittest

from .features import CHROMIUM as CHROMIUM_FEATURE


class ChromiumMixin(unittest.TestCase):
    """``chromium(url, *args)`` and the Content Security Policy violations
    Chromium reports for a page (tests using it ``require`` the feature)."""

    def chromium(self, url: str, *args: str) -> subprocess.CompletedProcess:
        profile = tempfile.mkdtemp(prefix="bjs-chromium-")
        self.addCleanup(shutil.rmtree, profile, ignore_errors=True)
        return subprocess.run(
            [
                CHROMIUM_FEATURE.feature.path,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                *args,
                url,
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )

    def csp_violations(self, url: str) -> list[str]:
        """Chromium's console lines about the Content Security Policy."""
        proc = self.chromium(url, "--enable-logging=stderr", "--v=0", "--dump-dom")
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        self.assertIn(b"</html>", proc.stdout)
        return [
            line
            for line in proc.stderr.decode(errors="replace").splitlines()
            if "Content Security Policy" in line
        ]
