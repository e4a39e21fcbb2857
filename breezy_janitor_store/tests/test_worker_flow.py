"""The janitor worker's own sequence of breezy calls, against the store.

:func:`import_branches` makes the calls the worker makes to store a run's
result branches (its ``import_branches_bzr``): open the codebase URL or
create it, create the shared repository if missing, make the campaign
directory, initialise it or open it, open or create the branch, fetch the
revisions (first pass) or push with overwrite (second pass), and tag the run
``RUN-ID``, ``RUN-ID/TAG`` and, on the second pass, ``TAG``.
"""

from __future__ import annotations

import os

from breezy import bedding, controldir, errors, ui
from breezy.branch import Branch

from ..policy.policies import CodebaseList
from .support.auth import write_authentication_conf
from .support.database import DatabaseTestCase
from .support.fixtures import PASSWORD, WORKER, StoreTestCase, brz
from .support.worker import import_branches


def push_branch(local: Branch, url: str, revision: bytes) -> None:
    """Push ``local`` to ``url`` as the worker pushes a cache branch: open or
    create the control directory there, then push with overwrite."""
    fmt = controldir.format_registry.make_controldir("bzr")
    try:
        target = controldir.ControlDir.open(url)
    except errors.NotBranchError:
        target = controldir.ControlDir.create(url, fmt)
    target.push_branch(local, revision_id=revision, overwrite=True)


class WorkerFlowTestCase(StoreTestCase):
    campaign = "lintian-fixes"

    def setUp(self) -> None:
        super().setUp()
        self.local = Branch.open(self.make_branch(revisions=3))

    def run_worker(self, repo_url: str, run_id: str) -> Branch:
        """Both passes of one run, as the worker makes them; the stored
        campaign branch, opened from disk."""
        tip = self.local.last_revision()
        tagged = self.local.get_rev_id(1)
        for update_current in (False, True):
            import_branches(
                repo_url,
                self.local,
                self.campaign,
                run_id,
                [("main", tip)],
                [("upstream/1.0", tagged), ("gone", None)],
                update_current,
            )
        return Branch.open(os.path.join(self.storage_dir, "hello", self.campaign))

    def assertRunStored(self, stored: Branch, run_id: str) -> None:
        self.assertEqual(stored.last_revision(), self.local.last_revision())
        tags = stored.tags.get_tag_dict()
        self.assertEqual(tags[run_id], self.local.last_revision())
        self.assertEqual(tags[f"{run_id}/upstream/1.0"], self.local.get_rev_id(1))
        self.assertEqual(tags["upstream/1.0"], self.local.get_rev_id(1))
        self.assertNotIn("gone", tags)
        # the revisions are in the codebase's shared repository
        self.assertEqual(
            stored.repository.controldir.root_transport.local_abspath("."),
            os.path.join(self.storage_dir, "hello"),
        )


class AdminFaceTests(WorkerFlowTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=[self.campaign])

    def test_bzr_http_first_and_second_run(self) -> None:
        url = self.smart_url(self.store.admin, "hello")
        self.assertRunStored(self.run_worker(url, "run-0001"), "run-0001")
        self.commit(self.local.base.replace("file://", ""), 2)
        self.local = Branch.open(self.local.base)
        stored = self.run_worker(url, "run-0002")
        self.assertRunStored(stored, "run-0002")
        self.assertEqual(stored.last_revision_info()[0], 5)
        self.assertIn("run-0001", stored.tags.get_tag_dict())
        tags = brz(
            "tags", "-d", self.smart_url(self.store.public, "hello/lintian-fixes")
        )
        self.assertIn(b"run-0002", tags.stdout)

    def test_http_url(self) -> None:
        url = self.store.admin + "/hello"
        self.assertRunStored(self.run_worker(url, "run-0001"), "run-0001")

    def test_http_cache_branch_of_a_new_codebase(self) -> None:
        """``ControlDir.create`` over plain ``http://`` of a branch whose
        codebase is not on disk yet: its directories exist for the writer."""
        url = self.store.admin + "/hello/lintian-fixes/latest"
        push_branch(self.local, url, self.local.last_revision())
        stored = Branch.open(
            os.path.join(self.storage_dir, "hello", self.campaign, "latest")
        )
        self.assertEqual(stored.last_revision(), self.local.last_revision())


class PublicFaceWithCredentialsTests(WorkerFlowTestCase):
    """The production path: the runner gives workers the public URL and
    credentials; the codebase is known but has no repository on disk."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store_with_worker(
            campaigns=[self.campaign, "debian"],
            codebase_policy=CodebaseList(["hello"]),
        )
        write_authentication_conf(self.store.public, WORKER, PASSWORD)
        self.assertFalse(os.path.exists(os.path.join(self.storage_dir, "hello")))

    def test_bzr_http_first_push_of_a_new_codebase(self) -> None:
        url = self.smart_url(self.store.public, "hello")
        self.assertRunStored(self.run_worker(url, "run-0001"), "run-0001")

    def test_http_first_push_of_a_new_codebase(self) -> None:
        url = self.store.public + "/hello"
        self.assertRunStored(self.run_worker(url, "run-0001"), "run-0001")

    def test_cache_branch(self) -> None:
        """The worker's push of the codebase's cache branch,
        ``CODEBASE/VENDOR/latest``, a new codebase first."""
        for n, base in enumerate(
            (self.smart_url(self.store.public, "hello"), self.store.public + "/hello")
        ):
            with self.subTest(base=base):
                self.commit(self.local.base.replace("file://", ""))
                self.local = Branch.open(self.local.base)
                push_branch(
                    self.local, base + "/debian/latest", self.local.last_revision()
                )
                stored = Branch.open(
                    os.path.join(self.storage_dir, "hello", "debian", "latest")
                )
                self.assertEqual(stored.last_revision(), self.local.last_revision())

    def test_unknown_codebase_is_refused(self) -> None:
        url = self.smart_url(self.store.public, "other")
        with self.assertRaises(errors.BzrError):
            self.run_worker(url, "run-0001")
        self.assertFalse(os.path.exists(os.path.join(self.storage_dir, "other")))


class PublicFaceWithoutCodebaseListTests(WorkerFlowTestCase):
    """Credentials but no database (``serve --credentials``): any codebase
    name may be created by a worker, and none exists before."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store_with_worker(campaigns=[self.campaign, "debian"])
        write_authentication_conf(self.store.public, WORKER, PASSWORD)

    def test_http_first_push_of_a_new_codebase(self) -> None:
        """Over plain ``http://``, ``ControlDir.create`` asks ``has('.')``
        (a ``HEAD``) of the codebase: challenged, it is the worker's."""
        url = self.store.public + "/hello"
        self.assertRunStored(self.run_worker(url, "run-0001"), "run-0001")

    def test_bzr_http_first_push_of_a_new_codebase(self) -> None:
        url = self.smart_url(self.store.public, "hello")
        self.assertRunStored(self.run_worker(url, "run-0001"), "run-0001")

    def test_http_cache_branch_of_a_new_codebase(self) -> None:
        push_branch(
            self.local,
            self.store.public + "/hello/debian/latest",
            self.local.last_revision(),
        )
        stored = Branch.open(
            os.path.join(self.storage_dir, "hello", "debian", "latest")
        )
        self.assertEqual(stored.last_revision(), self.local.last_revision())

    def test_without_credentials_nothing_is_created(self) -> None:
        os.unlink(bedding.authentication_config_path())
        saved, ui.ui_factory = ui.ui_factory, ui.SilentUIFactory()  # no prompt
        self.addCleanup(setattr, ui, "ui_factory", saved)
        for url in (
            self.store.public + "/hello",
            self.smart_url(self.store.public, "hello"),
        ):
            with self.subTest(url=url), self.assertRaises(errors.BzrError):
                self.run_worker(url, "run-0001")
        self.assertEqual(os.listdir(self.storage_dir), [])


class DatabaseWorkerFlowTests(WorkerFlowTestCase, DatabaseTestCase):
    """As in production: codebases and workers from the janitor's database."""

    def setUp(self) -> None:
        super().setUp()
        self.add_codebase("hello")
        self.add_worker("worker-1", "correct horse")
        self.store = self.start_db_store()
        write_authentication_conf(self.store.public, "worker-1", "correct horse")

    def test_first_run_of_a_new_codebase(self) -> None:
        url = self.smart_url(self.store.public, "hello")
        self.assertRunStored(self.run_worker(url, "run-0001"), "run-0001")
        self.commit(self.local.base.replace("file://", ""))
        self.local = Branch.open(self.local.base)
        stored = self.run_worker(self.store.public + "/hello", "run-0002")
        self.assertRunStored(stored, "run-0002")

    def test_first_run_over_http(self) -> None:
        stored = self.run_worker(self.store.public + "/hello", "run-0001")
        self.assertRunStored(stored, "run-0001")
