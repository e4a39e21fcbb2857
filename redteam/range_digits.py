"""Anonymous: a Range header whose numbers have more digits than Python's
int() accepts (4300) on a plain HTTP file read."""

from common import Server, brz, raw_http, split_response

from breezy_janitor_store.tests.hostile import leaks

s = Server()
b = s.make_branch()
brz("push", "-d", b, s.worker_url("hello/lintian-fixes"), check=True)
for spec in [
    "bytes=" + "9" * 5000 + "-",
    "bytes=0-" + "9" * 5000,
    "bytes=-" + "9" * 5000,
    "bytes=" + ",".join(["0-0"] * 5000),
    "bytes=" + "0" * 5000 + "1-2",
    "bytes=0-1," * 100 + "x",
]:
    raw = raw_http(
        s.public,
        b"GET /bzr/hello/.bzr/repository/pack-names HTTP/1.1\r\nConnection: close\r\nRange: "
        + spec.encode(),
        timeout=15,
    )
    st, h, body = split_response(raw)
    print(spec[:30], "->", st, body[:80], leaks(raw, s.dir, s.tmp))
print(
    "\n".join(l for l in s.stderr().splitlines() if "Error" in l or "Trace" in l)[:2000]
)
