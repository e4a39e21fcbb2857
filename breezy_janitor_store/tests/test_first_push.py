"""Concurrent first pushes to one new branch, with the real ``brz``.

One push creates the branch; each of the others succeeds as an update, or
fails with lock contention or divergence, never with a layout error
(``... already exists, but does not have a .bzr directory``).
"""

from __future__ import annotations

import shutil

from ..store.locks import list_locks
from .support.concurrency import CLIENTS, CONTENTION, ConcurrencyTestCase

#: What a push that lost the race to a diverged tip may say.
DIVERGED = ("have diverged",)
ROUNDS = 3


class ConcurrentFirstPushTests(ConcurrencyTestCase):
    def test_ten_first_pushes_to_one_new_branch(self) -> None:
        # half push the same revisions, half one commit of their own each
        same = []
        for i in range(CLIENTS // 2):
            path = self.path(f"same{i}")
            shutil.copytree(self.work, path, symlinks=True)
            same.append(path)
        variants = [path for path, _ in self.variants(CLIENTS - len(same))]
        outcomes = {"created or updated": 0, "contention": 0, "diverged": 0}
        for round in range(ROUNDS):
            location = f"hello/campaign{round}"
            jobs = [(path, self.url(location)) for path in same + variants]
            for r in self.push_all(jobs, overwrite=False):
                out = self.out(r)
                if r.returncode == 0:
                    outcomes["created or updated"] += 1
                elif any(c in out for c in CONTENTION):
                    outcomes["contention"] += 1
                elif any(d in out for d in DIVERGED):
                    outcomes["diverged"] += 1
                else:
                    self.fail(
                        f"round {round}: neither success, contention "
                        f"nor divergence: {out}"
                    )
            self.store.wait_idle()
            self.tip(location)  # the branch is there
        print(f"\n{ROUNDS} rounds of {CLIENTS} first pushes: {outcomes}")
        self.assertGreaterEqual(outcomes["created or updated"], ROUNDS)
        self.assertEqual(list_locks(self.store.admin_app.storage, "hello"), [])
        self.assertChecked("hello")
