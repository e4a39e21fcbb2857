"""Anonymous: odd paths, encodings, queries, ranges and methods on both
faces; report any 5xx, traceback or server path."""

from common import Server, brz, raw_http, split_response

from breezy_janitor_store.tests.hostile import leaks

s = Server()
b = s.make_branch(revisions=3)
brz("push", "-d", b, s.worker_url("hello/lintian-fixes"), check=True)
revid = brz("log", "--show-ids", "-r-1", b).stdout.split("revision-id: ")[1].split()[0]

paths = [
    "/bzr/hello/%ff/",
    "/bzr/hello/%c0%ae%c0%ae/",
    "/bzr/%2e%2e/",
    "/bzr/hello/..%2f..%2f/",
    "/bzr/hello%00/",
    "/bzr/hello/lintian-fixes/?page=-1",
    "/bzr/hello/lintian-fixes/?page=99999999999999999999999",
    "/bzr/hello/lintian-fixes/?page=1e9",
    "/bzr/hello/lintian-fixes/?page=%ff",
    "/bzr/hello/lintian-fixes/?page=0",
    "/bzr/hello/lintian-fixes/?page=1&page=2",
    "/bzr/hello/+revision/",
    "/bzr/hello/+revision/%ff",
    "/bzr/hello/+revision/null:",
    "/bzr/hello/+revision/" + "a" * 100000,
    "/bzr/hello/+revision/" + revid + "/x",
    "/bzr/hello/diff?old=null:&new=" + revid + "&path=../../etc/passwd",
    "/bzr/hello/diff?old=null:&new=" + revid + "&path=%00",
    "/bzr/hello/diff?old=null:&new=" + revid + "&path=/file",
    "/bzr/hello/diff?old=null:&new=" + revid + "&path=%ff",
    "/bzr/hello/diff?old=%ff&new=" + revid,
    "/bzr/hello/diff?old=null:&new=null:",
    "/bzr/hello/diff?old=current:&new=" + revid,
    "/bzr/hello/diff?old=ghost&new=" + revid,
    "/bzr/hello/revision-info?old=" + revid + "&new=null:",
    "/bzr/hello/revision-info?old=%ff&new=" + revid,
    "/bzr/hello/revision-info?old=null:&new=" + revid + "&old=x",
    "/bzr/hello/revision-info?old=null:&new=" + "x" * 70000,
    "/bzr/hello/.bzr/repository/pack-names",
    "/bzr/hello/.bzr/repository/lock/held/info",
    "/bzr/hello/lintian-fixes/.bzr/branch/lock/held/info",
    "/bzr/hello/lintian-fixes/.bzr/branch/last-revision",
    "/bzr/hello/.bzr/janitor-store/",
    "/bzr/hello/.bzr/",
    "/bzr/hello/.bzr/repository/",
    "/bzr/hello/.bzr/repository/packs/",
    "/bzr/hello/.bzr/repository/upload/",
    "/bzr/hello/.bzr/./repository/pack-names",
    "/bzr/hello/.bzr//repository/pack-names",
    "/bzr/hello/.bzr/repository/pack-names/",
    "/bzr/hello/lintian-fixes/.bzr/smart",
    "/bzr/hello/.bzr/smart",
    "//bzr/hello/",
    "/bzr//hello/",
    "/bzr/hello//lintian-fixes/",
    "/bzr/./hello/",
    "/bzr/hello/lintian-fixes/main/",
    "/bzr/hello/lintian-fixes/main/main/",
    "/bzr/hello/lintian-fixes/upstream/.bzr/branch/",
    "/bzr/hello/lintian-fixes/x/y/",
    "/bzr/HELLO/",
    "/bzr/hello\u00e9/".encode().decode("latin-1"),
    "/bzr/" + "a" * 300 + "/",
    "/bzr/repositories?x=%ff",
    "/?%ff=%ff",
    "/bzr/?format=%ff",
    "/metrics",
    "/hello/locks",
    "/bzr/hello/locks",
    "/ready",
    "/health/",
    "http://evil/bzr/hello/",
    "*",
    "/bzr/hello/lintian-fixes/.bzr/branch/branch.conf",
]
methods = [
    "GET",
    "HEAD",
    "OPTIONS",
    "PUT",
    "DELETE",
    "PROPFIND",
    "POST",
    "TRACE",
    "CONNECT",
    "G\x00ET",
]
bad = []
for face in (s.public, s.admin):
    for p in paths:
        pp = p if face == s.public or not p.startswith("/bzr/") else p[4:]
        for m in ["GET"] if "diff" in p or "revision" in p else methods:
            raw = raw_http(
                face,
                f"{m} {pp} HTTP/1.1".encode("latin-1") + b"\r\nConnection: close",
                timeout=15,
            )
            st, h, body = split_response(raw)
            lk = leaks(raw, s.dir, s.tmp)
            if st >= 500 or st == 0 or lk:
                bad.append(
                    (
                        face == s.public and "public" or "admin",
                        m,
                        pp[:120],
                        st,
                        lk,
                        body[:200],
                    )
                )
for x in bad:
    print(x)
print("checked", len(paths) * len(methods) * 2, "bad", len(bad))
