"""Forged revisions: a worker storing, under the id of a public revision,
content of its own, must not poison the branches other writers push.

Workers share one repository per codebase.  The attack: worker-2 pushes,
to a branch of its own, a revision with the id, file ids and root id of an
upstream revision but other content; worker-1's honest push of the real
history then found it "already there" and anonymous readers of worker-1's
branch got the forged content.
"""

from __future__ import annotations

import hashlib
import os
import threading

from breezy import errors, osutils
from breezy.branch import Branch
from breezy.bzr import vf_search
from breezy.bzr.versionedfile import FulltextContentFactory
from breezy.controldir import ControlDir
from breezy.repository import Repository

from ..policy.auth import BasicAuth, CredentialsFile, add_worker
from ..store import provenance
from .support.fixtures import StoreTestCase, brz, tree_digest
from .support.hostile import smart_client
from .support.worker import import_branches

CAMPAIGNS = ["lintian-fixes", "debian"]
WORKERS = {"worker-1": "password-one", "worker-2": "password-two"}
UPSTREAM = b"upstream-1"


class ForgedRevisionTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        credentials = self.path("credentials")
        for name, password in WORKERS.items():
            add_worker(credentials, name, password)
        self.store = self.start_store(
            campaigns=CAMPAIGNS,
            public={"write_policy": BasicAuth(CredentialsFile(credentials))},
        )
        self.codebase_dir = os.path.join(self.storage_dir, "hello")

    def url(self, worker: str | None, location: str) -> str:
        """``bzr+http`` URL of ``location`` on the public face, as ``worker``
        (with its credentials) or anonymous."""
        base = self.store.public
        if worker is not None:
            base = base.replace("http://", f"http://{worker}:{WORKERS[worker]}@")
        return f"bzr+{base}/{location}"

    def upstream(self, name: str, content: bytes, extra_commit: bool = False) -> str:
        """A local branch whose first revision has the upstream revision's
        id, file id and root id, and file ``f`` holding ``content``."""
        path = self.path(name)
        tree = ControlDir.create_standalone_workingtree(path)
        tree.set_root_id(b"root-id")
        with open(os.path.join(path, "f"), "wb") as f:
            f.write(content)
        tree.add(["f"], ids=[b"file-id"])
        tree.commit(
            "upstream release",
            rev_id=UPSTREAM,
            committer="Upstream <upstream@example.com>",
            timestamp=1700000000,
            timezone=0,
            revprops={"branch-nick": "upstream"},
        )
        if extra_commit:
            with open(os.path.join(path, name), "w") as f:
                f.write(f"{name}'s change\n")
            tree.add([name])
            tree.commit(f"{name}'s change")
        return path

    def anonymous_content(self, location: str) -> bytes | None:
        """What an anonymous ``brz branch`` of ``location`` gets in ``f``."""
        target = self.path("anon-" + location.replace("/", "-"))
        proc = brz("branch", "-q", self.url(None, location), target, check=False)
        if proc.returncode != 0:
            return None
        try:
            with open(os.path.join(target, "f"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def test_forged_upstream_revision_does_not_poison_an_honest_push(self) -> None:
        forged = self.upstream("forged", b"evil\n")
        brz("push", "-q", self.url("worker-2", "hello/lintian-fixes/evil"), cwd=forged)
        honest = self.upstream("honest", b"honest\n")
        proc = brz(
            "push",
            "-q",
            self.url("worker-1", "hello/lintian-fixes"),
            cwd=honest,
            check=False,
        )
        # the honest push fails loudly, naming the conflict...
        self.assertNotEqual(proc.returncode, 0, self.out(proc))
        self.assertIn("upstream-1 with other content", self.out(proc))
        # ...and never serves the forged content as worker-1's branch
        self.assertNotEqual(self.anonymous_content("hello/lintian-fixes"), b"evil\n")
        # later overwriting pushes fail loudly too
        proc = brz(
            "push",
            "-q",
            "--overwrite",
            self.url("worker-1", "hello/lintian-fixes"),
            cwd=honest,
            check=False,
        )
        self.assertNotEqual(proc.returncode, 0, self.out(proc))
        self.assertNotEqual(self.anonymous_content("hello/lintian-fixes"), b"evil\n")

    def test_honest_workers_push_the_same_history_concurrently(self) -> None:
        pushes = {
            "worker-1": (
                self.upstream("one", b"honest\n", True),
                "hello/lintian-fixes",
            ),
            "worker-2": (self.upstream("two", b"honest\n", True), "hello/debian"),
        }
        results = {}

        def push(worker: str) -> None:
            work, location = pushes[worker]
            results[worker] = brz(
                "push", "-q", self.url(worker, location), cwd=work, check=False
            )

        threads = [threading.Thread(target=push, args=(w,)) for w in pushes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for worker, proc in results.items():
            self.assertEqual(proc.returncode, 0, f"{worker}: {self.out(proc)}")
        for location in ("hello/lintian-fixes", "hello/debian"):
            self.assertEqual(self.anonymous_content(location), b"honest\n")
        # each worker verified the shared upstream revision itself
        for worker in pushes:
            writer = provenance.Writer(worker, self.codebase_dir)
            self.assertEqual(provenance.unverified(writer, [UPSTREAM]), set())
        # and a third push of the history by worker-1 elsewhere needs nothing
        work, _ = pushes["worker-1"]
        brz("push", "-q", self.url("worker-1", "hello/lintian-fixes/again"), cwd=work)

    def test_janitor_worker_flow_of_two_workers_sharing_history(self) -> None:
        """The worker's own calls (fetch, then push with overwrite, and
        tags), one worker after the other on the same upstream history."""
        for worker, campaign in (("worker-1", "lintian-fixes"), ("worker-2", "debian")):
            local = Branch.open(self.upstream(worker, b"honest\n", True))
            tip = local.last_revision()
            base = self.url(worker, "hello")
            for update_current in (False, True):
                import_branches(
                    base,
                    local,
                    campaign,
                    f"run-{worker}",
                    [("main", tip)],
                    [("upstream/1", UPSTREAM)],
                    update_current,
                )
            stored = Branch.open(os.path.join(self.codebase_dir, campaign))
            self.assertEqual(stored.last_revision(), tip)
            self.assertEqual(stored.tags.lookup_tag("upstream/1"), UPSTREAM)
            self.assertEqual(self.anonymous_content(f"hello/{campaign}"), b"honest\n")
        writer = provenance.Writer("worker-2", self.codebase_dir)
        self.assertEqual(provenance.unverified(writer, [UPSTREAM]), set())

    def test_history_stored_by_the_admin_face_counts_for_every_worker(self) -> None:
        work = self.upstream("admin", b"honest\n")
        brz("push", "-q", self.smart_url(self.store.admin, "hello/debian"), cwd=work)
        for worker in WORKERS:
            writer = provenance.Writer(worker, self.codebase_dir)
            self.assertEqual(provenance.unverified(writer, [UPSTREAM]), set())
        work = self.upstream("worker", b"honest\n", True)
        brz("push", "-q", self.url("worker-1", "hello/lintian-fixes"), cwd=work)
        self.assertEqual(self.anonymous_content("hello/lintian-fixes"), b"honest\n")

    def test_tip_and_tags_may_not_take_in_revisions_not_sent(self) -> None:
        """A client that does not send a revision another writer stored (it
        asked other than stock brz does) cannot make it its branch's tip, nor
        tag it."""
        forged = self.upstream("forged", b"evil\n")
        brz("push", "-q", self.url("worker-2", "hello/lintian-fixes/evil"), cwd=forged)
        own = self.make_branch("own")
        brz("push", "-q", self.url("worker-1", "hello/lintian-fixes"), cwd=own)
        branch = Branch.open(self.url("worker-1", "hello/lintian-fixes"))
        before = branch.last_revision_info()
        with branch.lock_write():
            with self.assertRaises(errors.TipChangeRejected) as caught:
                branch.set_last_revision_info(1, UPSTREAM)
            self.assertIn("has not sent it", str(caught.exception))
            with self.assertRaises(errors.PermissionDenied) as caught:
                branch.tags.set_tag("release-1", UPSTREAM)
            self.assertIn("has not sent it", str(caught.exception))
        stored = Branch.open(os.path.join(self.codebase_dir, "lintian-fixes"))
        self.assertEqual(stored.last_revision_info(), before)
        self.assertEqual(stored.tags.get_tag_dict(), {})
        # worker-2, who stored it, may
        theirs = Branch.open(self.url("worker-2", "hello/lintian-fixes/evil"))
        with theirs.lock_write():
            theirs.tags.set_tag("release-1", UPSTREAM)

    def test_texts_not_matching_their_inventory_are_refused(self) -> None:
        own = self.make_branch("own")
        brz("push", "-q", self.url("worker-1", "hello/lintian-fixes"), cwd=own)
        before = tree_digest(self.codebase_dir)
        local = Branch.open(self.upstream("tampered", b"honest\n")).repository
        remote = ControlDir.open(self.url("worker-2", "hello")).open_repository()
        stream = _tampered_stream(local, remote, (b"file-id", UPSTREAM), b"evil\n")
        with (
            self.assertRaises(errors.ErrorFromSmartServer) as caught,
            remote.lock_write(),
        ):
            remote._get_sink().insert_stream(stream, local._format, [])
        self.assertEqual(caught.exception.error_tuple[0], b"PermissionDenied")
        self.assertIn(b"does not match its inventory", caught.exception.error_tuple[2])
        self.assertEqual(tree_digest(self.codebase_dir), before)
        self.assertFalse(Repository.open(self.codebase_dir).has_revision(UPSTREAM))

    def test_a_text_sent_twice_with_other_content_is_refused(self) -> None:
        """A stream carrying a file text first with other content, then as
        its inventory names it: breezy stores the first copy, the check saw
        the last; an anonymous reader of an honest branch of the revision
        then got the other content."""
        own = self.make_branch("own")
        brz("push", "-q", self.url("worker-1", "hello/lintian-fixes"), cwd=own)
        before = tree_digest(self.codebase_dir)
        local = Branch.open(self.upstream("doubled", b"honest\n")).repository
        remote = ControlDir.open(self.url("worker-2", "hello")).open_repository()
        evil = b"evil\n" * 1000
        first = FulltextContentFactory(
            (b"file-id", UPSTREAM), (), osutils.sha_string(evil), evil
        )

        def stream():
            yield "texts", iter([first])
            source = local._get_source(remote._format)
            with local.lock_read():
                yield from source.get_stream(_search(local))

        with (
            self.assertRaises(errors.ErrorFromSmartServer) as caught,
            remote.lock_write(),
        ):
            remote._get_sink().insert_stream(stream(), local._format, [])
        self.assertEqual(caught.exception.error_tuple[0], b"PermissionDenied")
        self.assertIn(b"sent twice", caught.exception.error_tuple[2])
        self.assertEqual(tree_digest(self.codebase_dir), before)
        self.assertFalse(Repository.open(self.codebase_dir).has_revision(UPSTREAM))

    def test_chk_pages_must_be_named_by_their_content(self) -> None:
        own = self.make_branch("own")
        brz("push", "-q", self.url("worker-1", "hello/lintian-fixes"), cwd=own)
        before = tree_digest(self.codebase_dir)
        local = Branch.open(self.upstream("tampered", b"honest\n")).repository
        remote = ControlDir.open(self.url("worker-2", "hello")).open_repository()
        stream = _tampered_chk_stream(local, remote)
        with (
            self.assertRaises(errors.ErrorFromSmartServer) as caught,
            remote.lock_write(),
        ):
            remote._get_sink().insert_stream(stream, local._format, [])
        self.assertEqual(caught.exception.error_tuple[0], b"PermissionDenied")
        self.assertIn(b"not the SHA-1 of its content", caught.exception.error_tuple[2])
        self.assertEqual(tree_digest(self.codebase_dir), before)

    def test_a_resumed_write_group_records_both_parts(self) -> None:
        """A stream missing a parent inventory suspends the write group; the
        part that resumes it is checked too, and the writer then has both
        parts' revisions verified."""
        own = self.make_branch("own")
        brz("push", "-q", self.url("worker-1", "hello/lintian-fixes"), cwd=own)
        local = Branch.open(self.upstream("resumed", b"honest\n", True)).repository
        second = Branch.open(self.path("resumed")).last_revision()
        remote = ControlDir.open(self.url("worker-2", "hello")).open_repository()
        source = local._get_source(remote._format)
        with local.lock_read(), remote.lock_write():
            sink = remote._get_sink()
            only_second = vf_search.SearchResult({second}, {UPSTREAM}, 1, {second})
            tokens, missing = sink.insert_stream(
                source.get_stream(only_second), local._format, []
            )
            self.assertEqual(missing, {("inventories", UPSTREAM)})
            self.assertTrue(tokens)
            tokens, missing = sink.insert_stream(
                source.get_stream(_search(local)), local._format, tokens
            )
            self.assertEqual((tokens, missing), ([], set()))
        stored = Repository.open(self.codebase_dir)
        self.assertTrue(stored.has_revision(second))
        writer = provenance.Writer("worker-2", self.codebase_dir)
        self.assertEqual(provenance.unverified(writer, [UPSTREAM, second]), set())

    def test_the_record_is_hidden_from_clients(self) -> None:
        own = self.make_branch("own")
        brz("push", "-q", self.url("worker-1", "hello/lintian-fixes"), cwd=own)
        record = os.path.join(self.codebase_dir, ".bzr", "janitor-store", "verified")
        os.makedirs(record, exist_ok=True)
        name = hashlib.sha1(b"worker-1").hexdigest()
        with open(os.path.join(record, name), "wb") as f:
            f.write(hashlib.sha1(UPSTREAM).hexdigest().encode() + b"\n")
        for worker in (None, "worker-2"):
            client = smart_client(self.url(worker, "hello"))
            for verb, path in (
                (b"get", f".bzr/janitor-store/verified/{name}"),
                (b"list_dir", ".bzr/janitor-store/verified"),
            ):
                with self.subTest(worker=worker, verb=verb):
                    try:
                        response = client.call_expecting_body(verb, path.encode())
                    except errors.ErrorFromSmartServer as e:
                        self.assertEqual(e.error_tuple[0], b"NoSuchFile")
                        continue
                    response[1].cancel_read_body()
                    self.fail(f"{verb!r} of {path} answered {response[0]!r}")
            names = client.call_expecting_body(b"list_dir", b".bzr")
            self.assertNotIn(b"janitor-store", names[1].read_body_bytes())


def _search(local: Repository):
    return vf_search.PendingAncestryResult([UPSTREAM], local)


def _tampered_stream(local: Repository, remote: Repository, key, content: bytes):
    """``local``'s stream of the upstream revision for ``remote``, with the
    text ``key`` replaced by ``content`` (its own SHA-1 given, consistent)."""
    source = local._get_source(remote._format)
    with local.lock_read():
        for kind, substream in source.get_stream(_search(local)):
            if kind != "texts":
                yield kind, substream
                continue
            records = []
            for record in substream:
                data = record.get_bytes_as("fulltext")
                if record.key == key:
                    data = content
                records.append(
                    FulltextContentFactory(
                        record.key, record.parents, osutils.sha_string(data), data
                    )
                )
            yield kind, iter(records)


def _tampered_chk_stream(local: Repository, remote: Repository):
    """``local``'s stream of the upstream revision with one more CHK page,
    under a key that is not its content's SHA-1."""
    source = local._get_source(remote._format)
    with local.lock_read():
        for kind, substream in source.get_stream(_search(local)):
            if kind == "chk_bytes":
                records = [
                    FulltextContentFactory(
                        r.key, r.parents, None, r.get_bytes_as("fulltext")
                    )
                    for r in substream
                ]
                data = records[0].get_bytes_as("fulltext")
                lie = (b"sha1:" + hashlib.sha1(b"other").hexdigest().encode(),)
                records.append(FulltextContentFactory(lie, None, None, data))
                substream = iter(records)
            yield kind, substream
