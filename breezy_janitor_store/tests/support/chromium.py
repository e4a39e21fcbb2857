"""Headless Chromium for page tests: run it on a URL, read its console."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from .features import CHROMIUM as CHROMIUM_FEATURE


class ChromiumMixin(unittest.TestCase):
    """``chromium(url, *args)``, the Content Security Policy violations
    Chromium reports for a page, and how wide a page lays out in a narrow
    viewport (tests using it ``require`` the feature)."""

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

    def layout_width(
        self, html: bytes, viewport: int = 375, selector: str | None = None
    ) -> tuple[int, int]:
        """``(document scroll width, viewport width)`` of the page ``html``
        laid out in a viewport ``viewport`` CSS pixels wide (with
        ``selector``, the scroll width of the first element it selects:
        a box that scrolls sideways is wider than it shows).

        Headless Chromium's windows are at least 500 pixels wide, so the
        page is loaded in a frame of that width (its own viewport: media
        queries apply to it) from a local copy; the framing document reads
        the frame's layout once it loaded (a page's CSP forbids scripts in
        it, so the page itself runs none)."""
        folder = tempfile.mkdtemp(prefix="bjs-layout-")
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        with open(os.path.join(folder, "page.html"), "wb") as f:
            f.write(html)
        with open(os.path.join(folder, "frame.html"), "w") as f:
            f.write(
                "<!DOCTYPE html><html><body style='margin:0'>"
                f'<iframe src="page.html" style="width:{viewport}px;height:800px;'
                'border:0" onload="var d = this.contentDocument; '
                f"var e = {'d.querySelector(' + repr(selector) + ')' if selector else 'd.documentElement'}; "
                "document.body.setAttribute('data-width', "
                "e.scrollWidth + ' ' + this.contentWindow.innerWidth)"
                '"></iframe></body></html>'
            )
        proc = self.chromium(
            "file://" + os.path.join(folder, "frame.html"),
            "--allow-file-access-from-files",
            "--dump-dom",
        )
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        m = re.search(rb'data-width="([0-9]+) ([0-9]+)"', proc.stdout)
        self.assertIsNotNone(m, proc.stdout[-2000:])
        return int(m.group(1)), int(m.group(2))
