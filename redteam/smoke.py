from common import Server, brz

s = Server()
print(s.admin, s.public, s.mem())
b = s.make_branch()
print(brz("push", "-d", b, s.worker_url("hello/lintian-fixes")).stderr)
print(brz("revno", s.public + "/bzr/hello/lintian-fixes").stdout)
