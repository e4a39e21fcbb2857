"""Worker: branch tips and tags a push would never make (revno far from the
revision's, a ghost tip, tags to ghosts and odd names); then the pages."""

from breezy import branch as _b
from common import Server, brz, raw_http, split_response

from breezy_janitor_store.tests.hostile import leaks

s = Server()
b = s.make_branch(revisions=3)
brz("push", "-d", b, s.worker_url("hello/lintian-fixes"), check=True)
tip = (
    brz("log", "--show-ids", "-r-1", b)
    .stdout.split("revision-id: ")[1]
    .split()[0]
    .encode()
)


def pages(label):
    for p in [
        "/bzr/hello/",
        "/bzr/hello/lintian-fixes/",
        "/bzr/hello/lintian-fixes/?page=2",
        "/bzr/hello/lintian-fixes/?page=20000000000000",
        "/bzr/hello/+revision/" + tip.decode(),
    ]:
        raw = raw_http(
            s.public, f"GET {p} HTTP/1.1\r\nConnection: close".encode(), timeout=60
        )
        st, h, body = split_response(raw)
        print(
            f"  [{label}] {p[:50]:50} {st} {len(body)}B leaks={leaks(raw, s.dir, s.tmp)}"
        )


br = _b.Branch.open(s.worker_url("hello/lintian-fixes"))
for revno, revid in [(10**15, tip), (-5, tip), (0, tip), (1, b"ghost-revision-id")]:
    try:
        with br.lock_write():
            br._client.call(
                b"Branch.set_last_revision_info",
                br._remote_path(),
                br._lock_token,
                br.repository._lock_token or b"",
                b"%d" % revno,
                revid,
            )
        print(f"set_last_revision_info({revno}, {revid[:20]!r}) accepted")
    except Exception as e:
        print(
            f"set_last_revision_info({revno}, {revid[:20]!r}) refused: {str(e)[:140]}"
        )
    pages(f"{revno}")
for name, target in [
    ("<b>x</b>", tip),
    ("a" * 10000, tip),
    ("ghost", b"no-such-rev"),
    ("\u202e", tip),
]:
    try:
        br = _b.Branch.open(s.worker_url("hello/lintian-fixes"))
        br.tags.set_tag(name, target)
        print(f"tag {name[:12]!r} -> {target[:12]!r} accepted")
    except Exception as e:
        print(f"tag {name[:12]!r} refused: {str(e)[:140]}")
pages("tags")
import os
import subprocess

from common import PY, env

p = brz("branch", s.public + "/bzr/hello/lintian-fixes", os.path.join(s.tmp, "copy"))
print(
    "anonymous brz branch of ghost tip:",
    p.returncode,
    (p.stdout + p.stderr).strip()[-160:],
)
p = subprocess.run(
    [PY, "-m", "breezy", "janitor-store", "check", "-d", s.dir],
    env=env(),
    capture_output=True,
    text=True,
)
print("check:", p.returncode, (p.stdout + p.stderr).strip()[-300:])
