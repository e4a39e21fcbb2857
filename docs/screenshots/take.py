"""Screenshots of every page kind of the code browser, in headless Chromium.

``python docs/screenshots/take.py [OUTDIR]`` builds a small demo store with
the real ``brz`` (a codebase ``hello`` whose ``debian/latest`` cache branch
is the base, a ``lintian-fixes`` branch two commits ahead holding a merge),
serves it on a free loopback port and saves one PNG per page kind (and a
few at phone width) in ``OUTDIR`` (default: this directory), and the
benchmark tables of ``benchmarks/results/browse.md`` and
``browse-memory.md`` as pages.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

CONTROL = """Source: hello
Section: devel
Priority: optional
Maintainer: Jane Doe <jane@example.com>
Build-Depends: debhelper-compat (= 13)
Standards-Version: 4.1.0

Package: hello
Architecture: any
Depends: ${shlibs:Depends}, ${misc:Depends}
Description: example package
 The classic greeting, and a good example.
"""

MAIN = '''"""Say hello."""

import sys


def greet(name: str) -> str:
    """A greeting for ``name``."""
    return f"Hello, {name}!"


def main(argv: list[str]) -> int:
    for name in argv[1:] or ["world"]:
        print(greet(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''


def brz(*args: str, cwd: str | None = None) -> str:
    env = {**os.environ, "BRZ_EMAIL": "Jane Doe <jane@example.com>"}
    return subprocess.run(
        ["brz", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def write(root: str, path: str, text: str) -> None:
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def build(tmp: str, admin: str) -> dict[str, str]:
    base = os.path.join(tmp, "base")
    brz("init", "-q", base)
    write(base, "debian/control", CONTROL)
    write(
        base,
        "debian/changelog",
        "hello (2.10-1) unstable; urgency=medium\n\n  * New upstream release.\n\n -- Jane Doe <jane@example.com>  Mon, 07 Dec 2026 10:00:00 +0000\n",
    )
    write(base, "src/hello.py", MAIN)
    write(base, "README.md", "# hello\n\nThe classic greeting.\n")
    brz("add", "-q", cwd=base)
    brz("commit", "-q", "-m", "Import hello 2.10", cwd=base)
    write(base, "src/hello.py", MAIN.replace("world", "World"))
    brz("commit", "-q", "-m", "Capitalise the default name", cwd=base)
    brz("push", "-q", f"bzr+{admin}/hello/debian/latest", cwd=base)
    work = os.path.join(tmp, "work")
    brz("branch", "-q", base, work)
    side = os.path.join(tmp, "side")
    brz("branch", "-q", base, side)
    write(
        side, "debian/upstream/metadata", "Repository: https://example.com/hello.git\n"
    )
    brz("add", "-q", cwd=side)
    brz("commit", "-q", "-m", "Add upstream metadata file", cwd=side)
    write(
        work,
        "debian/control",
        CONTROL.replace("4.1.0", "4.6.2").replace(
            "Priority: optional\n", "Priority: optional\nRules-Requires-Root: no\n"
        ),
    )
    brz(
        "commit",
        "-q",
        "-m",
        "Update standards version to 4.6.2, no changes needed.\n\nFixes: lintian: out-of-date-standards-version",
        cwd=work,
    )
    brz("merge", "-q", side, cwd=work)
    brz("commit", "-q", "-m", "Merge upstream metadata", cwd=work)
    brz("push", "-q", f"bzr+{admin}/hello/lintian-fixes", cwd=work)
    revs = {}
    for n in ("1", "2", "3", "4"):
        revs[n] = brz("revision-info", "-d", work, "-r", n).split()[1]
    return revs


def shoot(url: str, out: str, width: int = 1200, height: int = 900) -> None:
    profile = tempfile.mkdtemp(prefix="bjs-shot-")
    try:
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={out}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    print(out)


def markdown_page(text: str) -> str:
    """A page of ``text``: its headings, paragraphs and tables (the
    markdown the benchmark results use)."""
    out, table, para = [], [], []

    def flush() -> None:
        if para:
            out.append(f"<p>{html.escape(' '.join(para))}</p>")
            para.clear()
        if table:
            rows = [
                r for r in table if not set(r.replace("|", "").strip()) <= set("-: ")
            ]
            cells = [
                [html.escape(c.strip()) for c in r.strip("|").split("|")] for r in rows
            ]
            head = "".join(f"<th>{c}</th>" for c in cells[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                for r in cells[1:]
            )
            out.append(f"<table><tr>{head}</tr>{body}</table>")
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            if para:
                flush()
            table.append(line)
        elif line.startswith("#"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif not line.strip():
            flush()
        else:
            if table:
                flush()
            para.append(line)
    flush()
    style = (
        "body{font-family:sans-serif;margin:1.5em;max-width:60em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}"
        "td{text-align:right}td:first-child{text-align:left}th{background:#eef}"
    )
    return f"<!DOCTYPE html><html><head><style>{style}</style></head><body>{''.join(out)}</body></html>"


def main(argv: list[str]) -> int:
    out = argv[0] if argv else HERE
    os.makedirs(out, exist_ok=True)
    import breezy

    breezy.initialize().__enter__()
    from breezy.plugin import load_plugins

    load_plugins()
    from breezy_janitor_store.store.storage import Storage
    from breezy_janitor_store.web.app import StoreApp
    from breezy_janitor_store.web.server import make_server

    tmp = tempfile.mkdtemp(prefix="bjs-shots-")
    try:
        storage = Storage(os.path.join(tmp, "store"))
        os.makedirs(storage.directory, exist_ok=True)
        servers = [
            make_server(StoreApp(face=face, storage=storage), "127.0.0.1", 0)
            for face in ("admin", "public")
        ]
        for s in servers:
            threading.Thread(target=s.serve_forever, daemon=True).start()
        admin = f"http://127.0.0.1:{servers[0].server_address[1]}"
        public = f"http://127.0.0.1:{servers[1].server_address[1]}"
        revs = build(tmp, admin)
        q = lambda r: urllib.parse.quote(r, safe="")
        b = f"{public}/bzr/hello"
        tip = q(revs["4"])
        pages = {
            "home": f"{public}/",
            "codebases": f"{public}/bzr/",
            "codebase-matrix": f"{b}/",
            "branch": f"{b}/lintian-fixes/",
            "revision": f"{b}/+revision/{q(revs['3'])}",
            "revno": f"{b}/lintian-fixes/+revno/4",
            "compare": f"{b}/+compare/{q(revs['2'])}..{tip}",
            "tree": f"{b}/+tree/?rev={tip}",
            "file": f"{b}/+file/src/hello.py?rev={tip}",
            "annotate": f"{b}/+annotate/debian/control?rev={tip}",
            "file-history": f"{b}/+log/debian/control?rev={tip}",
            "children": f"{b}/+children/{q(revs['2'])}",
            "error-404": f"{b}/+file/no-such-file?rev={tip}",
        }
        for name, url in pages.items():
            shoot(url, os.path.join(out, f"{name}.png"))
        for name in ("codebase-matrix", "revision", "file"):
            shoot(pages[name], os.path.join(out, f"{name}-phone.png"), 390, 844)
        for s in servers:
            s.shutdown()
        results = os.path.join(
            os.path.dirname(os.path.dirname(HERE)), "benchmarks", "results"
        )
        for name in ("browse", "browse-memory"):
            page = os.path.join(tmp, f"{name}.html")
            with open(os.path.join(results, f"{name}.md")) as f, open(page, "w") as g:
                g.write(markdown_page(f.read()))
            shoot(
                "file://" + page, os.path.join(out, f"benchmark-{name}.png"), 1200, 1100
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
