"""Pages and API answers never fail on what a writer puts in a revision.

A writer sets a revision's timestamp, timezone, committer, message and
properties (authors, bugs, anything) to whatever it likes.  Revisions are
made with breezy's commit API in a local branch (with an explicit revision
id: breezy derives ids from the date), or, for values the commit API
refuses (a message with control characters), added to the repository in a
write group; then pushed with breezy over the smart protocol to a store on
loopback.  Every page covering the revision (codebase, branch, revision),
revision-info and the diff must answer 200 without a traceback; pages and
JSON in valid UTF-8.

Brief by default; ``FUZZ_EXAMPLES=N`` runs N examples with fresh randomness.
"""

from __future__ import annotations

import json
import os
import unittest
import urllib.parse

import breezy.bzr  # noqa: F401 - registers the bzr formats
from breezy import controldir
from breezy.branch import Branch
from breezy.revision import NULL_REVISION, Revision

from ..store import history
from ..web import api
from .support.features import HYPOTHESIS, require_module
from .support.fixtures import StoreTestCase, brz, http_request
from .support.pages import Page

CODEBASE = "odd"
CAMPAIGN = "lintian-fixes"
_EXAMPLES = os.environ.get("FUZZ_EXAMPLES")


class RevisionDataTestCase(StoreTestCase):
    """A store with branch ``odd/lintian-fixes`` pushed from a local tree."""

    def setUp(self) -> None:
        super().setUp()
        self.store = self.start_store(campaigns=[CAMPAIGN])
        fmt = controldir.format_registry.make_controldir("2a")
        self.tree = controldir.ControlDir.create_standalone_workingtree(
            self.path("work"), format=fmt
        )
        self.write(b"first\n")
        self.tree.add(["file"])
        self.tree.commit("first")
        url = f"bzr+{self.store.admin}/{CODEBASE}/{CAMPAIGN}"
        brz("push", "-q", "-d", self.tree.basedir, url)
        self.remote = Branch.open(url)
        self.count = 0

    def write(self, content: bytes) -> None:
        with open(os.path.join(self.tree.basedir, "file"), "wb") as f:
            f.write(content)

    def revision(self, content: bytes | None = None, **fields) -> tuple[bytes, bytes]:
        """A revision with ``fields`` (``Revision`` attributes, ``authors``,
        ``properties``), pushed; it and its parent."""
        self.count += 1
        revid = b"odd-revision-%d" % self.count
        parent = self.tree.last_revision()
        if content is not None:
            self.write(content)
        try:
            self.tree.commit(
                fields.get("message", "change"),
                rev_id=revid,
                allow_pointless=True,
                timestamp=fields.get("timestamp"),
                timezone=fields.get("timezone"),
                committer=fields.get("committer"),
                authors=fields.get("authors"),
                revprops=fields.get("properties"),
            )
        except Exception:  # noqa: BLE001 - values the commit API refuses
            self.add_revision(revid, parent, **fields)
        self.publish()
        return revid, parent

    def add_revision(self, revid: bytes, parent: bytes, **fields) -> None:
        """Add the revision as it is, in a write group (its tree: the parent's)."""
        properties = dict(fields.get("properties") or {})
        if fields.get("authors") is not None:
            properties["authors"] = "\n".join(fields["authors"])
        branch = self.tree.branch
        with self.tree.lock_write():
            repo = branch.repository
            repo.start_write_group()
            try:
                repo.add_inventory_by_delta(parent, [], revid, [parent])
                rev = Revision(
                    revid,
                    properties=properties,
                    parent_ids=[parent],
                    committer=fields.get("committer") or "Odd <odd@example.com>",
                    message=fields.get("message", "change"),
                    timestamp=fields.get("timestamp", 0.0),
                    timezone=fields.get("timezone"),
                    inventory_sha1=None,
                )
                repo.add_revision(revid, rev)
            except BaseException:
                repo.abort_write_group()
                raise
            repo.commit_write_group()
            revno = branch.revno()
            branch.set_last_revision_info(revno + 1, revid)
            self.tree.set_parent_ids([revid])

    def publish(self) -> None:
        """Push the local branch with breezy over the smart protocol; if the
        store refuses the revision, put it on disk directly (as if pushed
        before such a check existed): the pages must cope either way."""
        try:
            self.tree.branch.push(self.remote, overwrite=True)
        except Exception:  # noqa: BLE001 - refused by the store
            on_disk = Branch.open(os.path.join(self.storage_dir, CODEBASE, CAMPAIGN))
            self.tree.branch.push(on_disk, overwrite=True)

    def get(self, path: str) -> tuple[int, dict, bytes]:
        return http_request(self.store.public_root + path)

    def answers(self, revid: bytes, parent: bytes) -> dict[str, bytes]:
        """Every answer covering ``revid``, each checked: 200, valid UTF-8,
        no traceback; pages and JSON valid UTF-8, well-formed."""
        query = urllib.parse.urlencode
        paths = {
            "codebase": f"/bzr/{CODEBASE}/",
            "branch": f"/bzr/{CODEBASE}/{CAMPAIGN}/",
            "revision": "/bzr" + history.revision_path(CODEBASE, revid),
            "revision-info": f"/bzr/{CODEBASE}/revision-info?"
            + query({"old": NULL_REVISION.decode(), "new": revid.decode()}),
            "diff": f"/bzr/{CODEBASE}/diff?"
            + query({"old": parent.decode(), "new": revid.decode()}),
        }
        bodies = {}
        for name, path in paths.items():
            status, headers, body = self.get(path)
            self.assertEqual(status, 200, f"{name}: {body[:500]!r}")
            self.assertNotIn(b"Traceback", body, name)
            if name == "diff":  # the files' bytes, as brz diff writes them
                self.assertEqual(headers["Content-Type"], "text/x-diff")
                bodies[name] = body
                continue
            text = body.decode("utf-8")  # strict: nothing unencodable leaks
            if headers["Content-Type"].startswith("text/html"):
                self.assertEqual(Page(body).errors, [], name)
                self.assertNotIn("\x00", text)
            elif name == "revision-info":
                entries = json.loads(text)
                self.assertEqual(entries[0]["revision-id"], revid.decode())
                self.assertIsInstance(entries[0]["message"], str)
            bodies[name] = body
        return bodies


class RegressionTests(RevisionDataTestCase):
    def test_timezone_out_of_range(self) -> None:
        revid, parent = self.revision(timezone=10**6)
        bodies = self.answers(revid, parent)
        for name in ("codebase", "branch", "revision"):
            self.assertIn(b"unreadable (timestamp", bodies[name], name)
            self.assertIn(b"offset 1000000)", bodies[name], name)

    def test_timestamp_out_of_range(self) -> None:
        revid, parent = self.revision(b"first\nsecond\n", timestamp=1e18, timezone=0)
        bodies = self.answers(revid, parent)
        for name in ("codebase", "branch", "revision"):
            self.assertIn(b"unreadable (timestamp 1e+18, offset 0)", bodies[name])
        # the diff's header dates the file by the revision that changed it
        self.assertIn(b"+++ new/file\t(unreadable date)\n", bodies["diff"])
        self.assertIn(b" first\n+second\n", bodies["diff"])

    def test_not_a_number_timestamp(self) -> None:
        revid, parent = self.revision(timestamp=float("nan"), timezone=0)
        self.assertIn(
            b"unreadable (timestamp nan", self.answers(revid, parent)["revision"]
        )

    def test_malformed_bugs(self) -> None:
        revid, parent = self.revision(properties={"bugs": "no status here"})
        page = self.answers(revid, parent)["revision"]
        self.assertIn(b"<th>Bugs</th>", page)
        self.assertIn(b"unreadable (&#x27;no status here&#x27;)", page)

    def test_well_formed_bugs_are_listed(self) -> None:
        bugs = "https://bugs.debian.org/1 fixed"
        revid, parent = self.revision(properties={"bugs": bugs})
        page = self.answers(revid, parent)["revision"]
        self.assertIn(b"https://bugs.debian.org/1 (fixed)", page)

    def test_property_bytes_that_are_not_utf8(self) -> None:
        revid, parent = self.revision(properties={"authors": "A\udcffB <a@b>"})
        bodies = self.answers(revid, parent)
        for name in ("codebase", "branch", "revision"):
            self.assertIn("A\ufffdB &lt;a@b&gt;".encode(), bodies[name], name)

    def test_message_with_control_characters(self) -> None:
        message = "bell\x07 nul\x00 esc\x1b[31m red\r\nnext \x85line"
        revid, parent = self.revision(message=message)
        bodies = self.answers(revid, parent)
        page = bodies["revision"].decode()
        for c in "\x07\x00\x1b\x85":
            self.assertNotIn(c, page)
        self.assertIn("bell\ufffd nul\ufffd esc\ufffd[31m red\r\nnext \ufffdline", page)
        entries = json.loads(bodies["revision-info"])
        self.assertEqual(entries[0]["message"], message)  # JSON keeps it as is

    def test_authors_with_newlines(self) -> None:
        revid, parent = self.revision(authors=["One <1@x>", "Two\nThree", ""])
        self.assertIn(
            b"One &lt;1@x&gt;, Two, Three, ", self.answers(revid, parent)["branch"]
        )

    def test_unreadable_revision_text(self) -> None:
        """A revision text breezy cannot parse (on disk)."""
        revid = b"unreadable-1"
        parent = self.tree.last_revision()
        branch = Branch.open(os.path.join(self.storage_dir, CODEBASE, CAMPAIGN))
        with branch.lock_write():
            repo = branch.repository
            repo.start_write_group()
            repo.add_inventory_by_delta(parent, [], revid, [parent])
            repo.revisions.add_lines((revid,), ((parent,),), [b"not a revision"])
            repo.commit_write_group()
            branch.set_last_revision_info(branch.revno() + 1, revid)
        bodies = self.answers(revid, parent)
        self.assertIn(b"unreadable</span> revision", bodies["codebase"])
        self.assertIn(b"unreadable</span> revision", bodies["branch"])
        self.assertIn(b"its text cannot be read", bodies["revision"])
        entries = json.loads(bodies["revision-info"])
        self.assertEqual(entries[0]["message"], api.UNREADABLE_MESSAGE)
        self.assertEqual(entries[1]["message"], "first")


class FuzzTests(RevisionDataTestCase):
    def test_any_revision_data(self) -> None:
        require_module(HYPOTHESIS)
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        text = st.text(max_size=40)
        not_utf8 = st.text(
            st.one_of(
                st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
                st.characters(max_codepoint=0x7F),
            ),
            max_size=20,
        )
        name = st.one_of(
            st.sampled_from(["bugs", "authors", "author", "branch-nick", "x"]),
            st.text(
                st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
                min_size=1,
                max_size=10,
            ),
        )
        bugs = st.lists(
            st.tuples(text, st.sampled_from(["fixed", "related", "bad", ""])),
            max_size=3,
        ).map(lambda bs: "\n".join(f"{u} {s}" for u, s in bs))
        fields = st.fixed_dictionaries(
            {},
            optional={
                "timestamp": st.one_of(
                    st.floats(),
                    st.integers(-(2**62), 2**62).map(float),
                    st.sampled_from([1e18, -1e18, 0.0]),
                ),
                "timezone": st.one_of(
                    st.none(),
                    st.integers(-(10**30), 10**30),
                    st.integers(-2 * 86400, 2 * 86400),
                ),
                "committer": text,
                "message": text,
                "authors": st.lists(text, max_size=3),
                "properties": st.dictionaries(
                    name, st.one_of(text, not_utf8, bugs), max_size=4
                ),
            },
        )

        @settings(
            max_examples=int(_EXAMPLES or 12),
            deadline=None,
            derandomize=_EXAMPLES is None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(st.binary(max_size=200), fields)
        def check(content: bytes, fields: dict) -> None:
            revid, parent = self.revision(content, **fields)
            self.answers(revid, parent)

        check()


if __name__ == "__main__":
    unittest.main()
