"""The naming and layout rules."""

from __future__ import annotations

import unittest

from ..store import layout


def campaigns(name: str) -> bool:
    return name in {"lintian-fixes", "fresh-releases"}


class NameTests(unittest.TestCase):
    def test_valid_and_invalid_names(self) -> None:
        for name in ["ab", "a0", "0a", "foo+bar", "foo.bar", "foo-bar", "x" * 200]:
            self.assertTrue(layout.is_valid_name(name), name)
        for name in [
            "",
            "a",
            "A",
            "-a",
            ".a",
            "+a",
            "..",
            "a/b",
            "a b",
            "a\0b",
            "é1",
            "x" * 201,
            "ab\n",
            "a_b",
            "\uff41\uff42",
        ]:
            self.assertFalse(layout.is_valid_name(name), repr(name))

    def test_parse_location(self) -> None:
        self.assertEqual(layout.parse_location("cb"), layout.Location("cb"))
        loc = layout.parse_location("cb/lintian-fixes/upstream")
        self.assertEqual(
            (loc.codebase, loc.campaign, loc.role), ("cb", "lintian-fixes", "upstream")
        )
        self.assertEqual(loc.segments, ("lintian-fixes", "upstream"))
        self.assertEqual(str(loc), "cb/lintian-fixes/upstream")
        for bad in ["", "cb/", "/cb", "cb/a/b/c", "cb/../x", "CB", "cb//x"]:
            with self.assertRaises(layout.InvalidName, msg=bad):
                layout.parse_location(bad)

    def test_reason_never_echoes_raw_control_characters(self) -> None:
        with self.assertRaises(layout.InvalidName) as cm:
            layout.parse_location("a\x00\x1b[31m" + "z" * 100)
        self.assertNotIn("\x00", str(cm.exception))
        self.assertNotIn("\x1b", str(cm.exception))
        self.assertLess(len(str(cm.exception)), 100)


class DiskMappingTests(unittest.TestCase):
    def test_main_role_is_the_campaign_directory(self) -> None:
        self.assertEqual(layout.to_disk(("c", "main")), ("c",))
        self.assertEqual(layout.to_disk(("c", "main", ".bzr", "x")), ("c", ".bzr", "x"))
        self.assertEqual(
            layout.to_disk(("c", "upstream", ".bzr")), ("c", "upstream", ".bzr")
        )
        self.assertEqual(layout.to_disk((".bzr", "main")), (".bzr", "main"))
        self.assertEqual(layout.to_disk(()), ())


class WriteRuleTests(unittest.TestCase):
    def refusal(self, path: str, layout_dir_op: bool = False) -> str | None:
        return layout.write_refusal(
            tuple(path.split("/")) if path else (), campaigns, layout_dir_op
        )

    def test_allowed_writes(self) -> None:
        for path in [
            ".bzr/repository/packs/x.pack",
            ".bzr/repository/lock/held/info",
            "lintian-fixes/.bzr/branch/last-revision",
            "lintian-fixes/.bzr/branch-format",
            "lintian-fixes/upstream/.bzr/branch/tags",
        ]:
            self.assertIsNone(self.refusal(path), path)
        for path in ["lintian-fixes", "lintian-fixes/upstream"]:
            self.assertIsNone(self.refusal(path, layout_dir_op=True), path)

    def test_refused_writes(self) -> None:
        cases = {
            "": "codebase directory",
            ".bzr/branch/last-revision": "branch at the codebase root",
            ".bzr/checkout/dirstate": "working trees",
            ".bzr/branch-format": "managed by the store",
            "README": "not a valid campaign name",
            "unknown-campaign/.bzr/branch-format": "unknown campaign",
            "lintian-fixes/.bzr/repository/format": "shared repository",
            "lintian-fixes/.bzr/checkout/format": "working trees",
            "lintian-fixes/file.txt": "files outside .bzr",
            "lintian-fixes/upstream/file.txt": "inside its .bzr",
            "lintian-fixes/upstream/deeper/.bzr/x": "inside its .bzr",
            "lintian-fixes/upstream/.bzr/repository/x": "shared repository",
            "lintian-fixes/main/.bzr/x": "campaign branch itself",
            "lintian-fixes": "are directories",
            "lintian-fixes/upstream": "are directories",
        }
        for path, reason in cases.items():
            with self.subTest(path=path):
                self.assertIn(reason, self.refusal(path) or "")
        self.assertIsNotNone(self.refusal(".bzr", layout_dir_op=True))
