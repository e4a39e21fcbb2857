"""Anonymous/worker: proxy headers (X-Forwarded-For, Forwarded, X-Request-Id,
X-Forwarded-Proto/Host) from an untrusted peer must not reach the lock
record, the access log or links."""

from common import Server, brz, raw_http, split_response

s = Server()
b = s.make_branch()
brz("push", "-d", b, s.worker_url("hello/lintian-fixes"), check=True)
spoof = b"\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=7.7.7.7;proto=https;host=evil.example\r\nX-Request-Id: forged-id-123\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Real-IP: 8.8.8.8"
raw = raw_http(
    s.public,
    b"GET /bzr/hello/revision-info?old=null:&new="
    + brz("log", "--show-ids", "-r-1", b)
    .stdout.split("revision-id: ")[1]
    .split()[0]
    .encode()
    + b" HTTP/1.1\r\nConnection: close\r\nHost: real.example"
    + spoof,
)
st, h, body = split_response(raw)
print("revision-info links:", body[:300])
print("x-request-id echoed:", h.get("x-request-id"))
# lock taken with spoofed headers through breezy's client is awkward; look at the log
log = s.stderr()
print(
    "log mentions 6.6.6.6/7.7.7.7/8.8.8.8/forged-id:",
    [
        x
        for x in ("6.6.6.6", "7.7.7.7", "8.8.8.8", "forged-id-123", "evil.example")
        if x in log
    ],
)
raw = raw_http(
    s.public,
    b'GET /bzr/hello/ HTTP/1.1\r\nConnection: close\r\nHost: evil.example"><script>'
    + spoof,
)
st, h, body = split_response(raw)
print("page with hostile Host:", st, b"evil.example" in body, b"<script>" in body)
