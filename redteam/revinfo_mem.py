"""Anonymous: revision-info (and the branch page) over a long history take
no stream slot and no deadline; measure server memory and CPU for N
concurrent anonymous requests.  REVS (default 20000) revisions."""

import os
import threading
import time
import urllib.request

from breezy import branchbuilder
from breezy.transport import get_transport_from_url
from common import Server, brz

from breezy_janitor_store.tests.hostile import cpu_seconds, reset_peak_memory

REVS = int(os.environ.get("REVS", "20000"))
CLIENTS = int(os.environ.get("CLIENTS", "16"))
s = Server()
path = os.path.join(s.tmp, "long")
t0 = time.time()
bb = branchbuilder.BranchBuilder(get_transport_from_url("file://" + path), format="2a")
bb.start_series()
parent = None
for n in range(REVS):
    acts = (
        [
            ("add", ("", b"root-id", "directory", None)),
            ("add", ("f", b"f-id", "file", b"0\n")),
        ]
        if n == 0
        else [("modify", ("f", b"%d\n" % n))]
    )
    revid = b"r%06d" % n
    bb.build_snapshot(
        [parent] if parent else [],
        acts,
        message="m" * 200,
        revision_id=revid,
        timestamp=1e9 + n,
        timezone=0,
        committer="x <x@x>",
    )
    parent = revid
bb.finish_series()
print(f"built {REVS} revisions in {time.time() - t0:.0f}s")
t0 = time.time()
print(
    brz("push", "-d", path, s.worker_url("hello/lintian-fixes")).stderr.strip()[-200:],
    f"{time.time() - t0:.0f}s",
)
url = s.public + f"/bzr/hello/revision-info?old=null:&new={parent.decode()}"
m0 = s.mem()
reset_peak_memory(s.pid)
c0 = cpu_seconds(s.pid)
t = time.time()
data = urllib.request.urlopen(url, timeout=600).read()
one = time.time() - t
print(
    f"one request: {len(data)} bytes in {one:.1f}s; RSS before {m0['VmRSS'] // 1024} MiB, peak {s.mem()['VmHWM'] // 1024} MiB"
)
reset_peak_memory(s.pid)
c0 = cpu_seconds(s.pid)


def get(u):
    try:
        urllib.request.urlopen(u, timeout=600).read()
    except Exception as e:
        print("client error", e)


ts = [threading.Thread(target=get, args=(url,)) for _ in range(CLIENTS)]
t = time.time()
for x in ts:
    x.start()
for x in ts:
    x.join()
print(
    f"{CLIENTS} concurrent: {time.time() - t:.1f}s wall, server CPU {cpu_seconds(s.pid) - c0:.1f}s, peak RSS {s.mem()['VmHWM'] // 1024} MiB"
)
# branch page and history page far back
for u in [
    s.public + "/bzr/hello/lintian-fixes/",
    s.public + f"/bzr/hello/lintian-fixes/?page={REVS // 50}",
    s.public + "/bzr/hello/",
]:
    reset_peak_memory(s.pid)
    t = time.time()
    try:
        r = urllib.request.urlopen(u, timeout=600)
        n = len(r.read())
        st = r.status
    except Exception as e:
        st, n = e, 0
    print(
        f"{u[len(s.public) :]}: {st} {n} bytes {time.time() - t:.1f}s peak {s.mem()['VmHWM'] // 1024} MiB"
    )
