"""Worker: try the mutating verbs a push never sends, on a pushed branch and
the shared repository, and report which ones change the disk."""

import os

from breezy import branch as _b
from common import P2, W2, Server, brz


def digest(d):
    h = {}
    for root, dirs, files in os.walk(d):
        for n in files + dirs:
            p = os.path.join(root, n)
            st = os.lstat(p)
            h[os.path.relpath(p, d)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return h


def diff(a, b):
    return sorted(set(a.items()) ^ set(b.items()))


s = Server()
b = s.make_branch(revisions=2)
brz("push", "-d", b, s.worker_url("hello/lintian-fixes"), check=True)
brz(
    "push",
    "-d",
    b,
    s.worker_url("hello/lintian-fixes/upstream", who=(W2, P2)),
    check=True,
)
url = s.worker_url("hello/lintian-fixes")
br = _b.Branch.open(url)
cl = br._client


def tryc(desc, verb, *args, body=None):
    before = digest(s.dir)
    try:
        if body is None:
            r = cl.call(verb, *args)
        else:
            r = cl.call_with_body_bytes(verb, args, body)
    except Exception as e:
        r = f"EXC {type(e).__name__}: {e}"
    changed = diff(before, digest(s.dir))
    print(f"{desc:45} -> {str(r)[:110]}\n   changed: {[c[0] for c in changed][:6]}")


tryc(
    "set_make_working_trees True (repo)",
    b"Repository.set_make_working_trees",
    b"../",
    b"True",
)
tryc(
    "set_make_working_trees False (repo)",
    b"Repository.set_make_working_trees",
    b"../",
    b"False",
)
tryc("destroy_branch upstream (W2's)", b"BzrDir.destroy_branch", b"upstream/", b"")
tryc("destroy_repository root", b"BzrDir.destroy_repository", b"../")
tryc("create_repository in campaign", b"BzrDir.create_repository", b"", b"", b"False")
tryc("Repository.pack", b"Repository.pack", b"../", b"", b"False", body=b"")
tryc("Repository.reconcile", b"Repository.reconcile", b"../", b"")
tryc("PackRepository.autopack", b"PackRepository.autopack", b"../")
tryc(
    "set_parent_location file:",
    b"Branch.set_parent_location",
    b"",
    b"",
    b"",
    b"file:///etc",
)
tryc(
    "put branch.conf via put",
    b"put",
    b".bzr/branch/branch.conf",
    b"0644",
    body=b"parent_location=file:///etc\n",
)
tryc(
    "put_config_file",
    b"Branch.put_config_file",
    b"",
    b"",
    b"",
    body=b"parent_location = file:///etc\n",
)
tryc(
    "put_config_file post_commit",
    b"Branch.put_config_file",
    b"",
    b"",
    b"",
    body=b"post_commit = os.system\n",
)
print("---- stderr tail ----")
print("\n".join(l for l in s.stderr().splitlines() if "rt=" not in l)[-3000:])
