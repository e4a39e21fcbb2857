"""The janitor worker's flow through the breezy API over ``bzr+http://``."""

from __future__ import annotations

import os

from breezy import controldir, errors
from breezy.branch import Branch
from breezy.transport import get_transport

from .fixtures import StoreTestCase, brz


class WorkerFlowTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=["lintian-fixes"])
        self.local = Branch.open(self.make_branch(revisions=3))

    def push_like_the_worker(self, codebase: str, campaign: str, tag: str) -> Branch:
        """Open the codebase, find or make its repository, make the campaign
        branch, push and tag the run, as the janitor worker does."""
        t = get_transport(self.smart_url(self.store.admin, codebase))
        try:
            repo = controldir.ControlDir.open_from_transport(t).open_repository()
        except (errors.NotBranchError, errors.NoRepositoryPresent):
            repo = controldir.ControlDir.create(t.base).create_repository(shared=True)
        self.assertTrue(repo.is_shared())
        campaign_t = t.clone(campaign)
        try:
            target = controldir.ControlDir.open_from_transport(campaign_t).open_branch()
        except errors.NotBranchError:
            fmt = controldir.format_registry.make_controldir("2a")
            target = fmt.initialize_on_transport(campaign_t).create_branch()
        self.local.push(target, overwrite=True)
        target.tags.set_tag(tag, self.local.last_revision())
        return target

    def test_worker_flow_and_tags_round_trip(self) -> None:
        self.push_like_the_worker("hello", "lintian-fixes", "run-0001")
        # over the public face, and on disk, the branch and its tag are there
        public = Branch.open(self.smart_url(self.store.public, "hello/lintian-fixes"))
        self.assertEqual(public.last_revision(), self.local.last_revision())
        self.assertEqual(
            public.tags.get_tag_dict(), {"run-0001": self.local.last_revision()}
        )
        on_disk = Branch.open(os.path.join(self.storage_dir, "hello", "lintian-fixes"))
        self.assertEqual(
            on_disk.repository.controldir.root_transport.local_abspath("."),
            os.path.join(self.storage_dir, "hello"),
        )
        tags = brz(
            "tags", "-d", self.smart_url(self.store.public, "hello/lintian-fixes")
        )
        self.assertIn(b"run-0001", tags.stdout)

    def test_second_run_updates_branch_and_adds_tag(self) -> None:
        self.push_like_the_worker("hello", "lintian-fixes", "run-0001")
        self.commit(self.local.base.replace("file://", ""), 2)
        self.local = Branch.open(self.local.base)
        target = self.push_like_the_worker("hello", "lintian-fixes", "run-0002")
        self.assertEqual(target.last_revision_info()[0], 5)
        self.assertEqual(sorted(target.tags.get_tag_dict()), ["run-0001", "run-0002"])
