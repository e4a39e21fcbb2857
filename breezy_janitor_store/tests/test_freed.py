"""Repositories opened to serve a request are freed once it is answered."""

from __future__ import annotations

import gc

from breezy.bzr.pack_repo import PackRepository

from ..store.transport import URL_SCHEME
from .support.fixtures import StoreTestCase, brz, http_request

ROUNDS = 5


def store_repositories() -> int:
    """Repositories opened through the store's transport still in memory."""
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, PackRepository)  # (a client's remote ones are not)
        and o.control_transport.base.startswith(URL_SCHEME)
    )


class FreedTests(StoreTestCase):
    def test_requests_leave_no_repository_behind(self) -> None:
        store = self.start_store()
        work = self.push_branch(store, "hello/lintian-fixes")
        url = self.smart_url(store.public, "hello/lintian-fixes")
        rounds = []
        for n in range(ROUNDS):
            self.commit(work)
            brz(
                "push",
                "-q",
                self.smart_url(store.admin, "hello/lintian-fixes"),
                cwd=work,
            )
            brz("revno", url)
            brz("branch", "-q", "--no-tree", url, self.path(f"copy{n}"))
            self.assertEqual(
                http_request(store.public_root + "/bzr/hello/lintian-fixes/")[0], 200
            )
            store.wait_idle()
            rounds.append(store_repositories())
        # each round opens dozens; none may stay
        self.assertLessEqual(rounds[-1], rounds[0], rounds)
