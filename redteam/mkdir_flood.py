"""Worker: file-level mkdir of role directories is allowed (any valid name),
so a worker can create unbounded empty directories; pages and tools that
walk a codebase then pay for each one on every anonymous request."""

import os
import time
import urllib.request

from breezy import branch as _b
from common import Server, brz

from breezy_janitor_store.tests.hostile import cpu_seconds

N = int(os.environ.get("DIRS", "5000"))
s = Server()
b = s.make_branch()
brz("push", "-d", b, s.worker_url("hello/lintian-fixes"), check=True)


def page_cost():
    c0, t = cpu_seconds(s.pid), time.time()
    r = urllib.request.urlopen(s.public + "/bzr/hello/", timeout=300)
    body = r.read()
    return round(time.time() - t, 2), round(cpu_seconds(s.pid) - c0, 2), len(body)


print("codebase page before:", page_cost())
br = _b.Branch.open(s.worker_url("hello/lintian-fixes"))
cl = br._client
t = time.time()
ok = 0
last = None
for i in range(N):
    try:
        cl.call(b"mkdir", b"r%06d-" % i + b"x" * 150, b"")
        ok += 1
    except Exception as e:
        last = e
print(f"{ok}/{N} mkdir in {time.time() - t:.0f}s; last error: {str(last)[:150]}")
print(
    "directories on disk:", len(os.listdir(os.path.join(s.dir, "hello/lintian-fixes")))
)
print("codebase page after (wall s, server CPU s, bytes):", page_cost())
print("branch page after:", end=" ")
c0, t = cpu_seconds(s.pid), time.time()
urllib.request.urlopen(s.public + "/bzr/hello/lintian-fixes/", timeout=300).read()
print(round(time.time() - t, 2), round(cpu_seconds(s.pid) - c0, 2))
