"""Operator commands (check, backup, gc, break-lock) on a store where
symlinks were planted: does anything outside the store get read, copied,
written or deleted?"""

import os
import subprocess
import tempfile
import time

from common import PY, Server, brz, env

s = Server()
b = s.make_branch()
brz("push", "-d", b, s.worker_url("hello/lintian-fixes"), check=True)
s.stop_keep = True
outside = tempfile.mkdtemp(prefix="outside-")
secret = os.path.join(outside, "secret")
open(secret, "w").write("TOPSECRET\n")
os.makedirs(os.path.join(outside, "victimdir/sub"))
open(os.path.join(outside, "victimdir/sub/keep"), "w").write("keep\n")
old = time.time() - 10 * 86400
os.utime(os.path.join(outside, "victimdir/sub/keep"), (old, old))
d = s.dir
# planted links
os.symlink(
    secret,
    os.path.join(
        d, "hello/.bzr/repository/packs/0123456789abcdef0123456789abcdef.pack"
    ),
)
os.symlink(outside, os.path.join(d, "hello/other"))
os.symlink(
    os.path.join(outside, "victimdir"),
    os.path.join(d, "hello/.bzr/repository/obsolete_packs/dir"),
)
os.symlink(
    os.path.join(outside, "victimdir"),
    os.path.join(d, "hello/.bzr/repository/upload/dir"),
)
os.symlink(outside, os.path.join(d, "linked"))
os.unlink(os.path.join(d, "hello/lintian-fixes/.bzr/branch/tags"))
os.symlink(secret, os.path.join(d, "hello/lintian-fixes/.bzr/branch/tags"))


def run(*a):
    p = subprocess.run(
        [PY, "-m", "breezy", "janitor-store", *a],
        env=env(),
        capture_output=True,
        text=True,
    )
    print("$ janitor-store", " ".join(a[:3]), "-> rc", p.returncode)
    print("   ", (p.stdout + p.stderr).strip().replace("\n", "\n    ")[:900])
    return p


run("check", "-d", d)
dest = tempfile.mkdtemp(prefix="backup-")
run("backup", "-d", d, os.path.join(dest, "b"))
found = subprocess.run(
    ["grep", "-rl", "TOPSECRET", dest], capture_output=True, text=True
).stdout
print("secret in backup:", found or "no")
print(
    "symlinks in backup:",
    subprocess.run(["find", dest, "-type", "l"], capture_output=True, text=True).stdout
    or "none",
)
run("gc", "-d", d, "--older-than", "0")
print(
    "outside keep still there:",
    os.path.exists(os.path.join(outside, "victimdir/sub/keep")),
)
print("outside secret still there:", os.path.exists(secret))
run("break-lock", "-d", d, "linked")
run("break-lock", "-d", d, "hello/other")
