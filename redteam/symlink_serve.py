"""Operator-planted (or restored-from-backup) symlinks in the storage
directory: does the server follow them for anonymous reads?"""

import os
import shutil

from common import Server, brz, raw_http, split_response

s = Server()
b = s.make_branch()
brz("push", "-d", b, s.worker_url("hello/lintian-fixes"), check=True)
outside = os.path.join(s.tmp, "outside")
shutil.copytree(os.path.join(s.dir, "hello"), outside, symlinks=True)
open(os.path.join(outside, ".bzr", "SECRET"), "w").write("TOPSECRET")
os.symlink(outside, os.path.join(s.dir, "linked"))
os.symlink(
    os.path.join(outside, ".bzr", "SECRET"),
    os.path.join(s.dir, "hello", ".bzr", "leak"),
)
for p in [
    "/bzr/",
    "/bzr/linked/",
    "/bzr/linked/.bzr/SECRET",
    "/bzr/hello/.bzr/leak",
    "/bzr/linked/lintian-fixes/.bzr/branch/last-revision",
]:
    st, h, body = split_response(
        raw_http(
            s.public,
            f"GET {p} HTTP/1.1\r\nConnection: close\r\nAccept: text/plain".encode(),
        )
    )
    print(p, st, body[:80])
print(
    brz("revno", s.public + "/bzr/linked/lintian-fixes").stdout.strip()
    or brz("revno", s.public + "/bzr/linked/lintian-fixes").stderr.strip()[-120:]
)
