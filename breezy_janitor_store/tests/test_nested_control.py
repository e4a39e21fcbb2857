"""A control directory is only where the layout puts one; no plugin's code
runs in the store.

A writer once made a control directory inside its own branch's ``.bzr``
(``.bzr/branch/x``), a branch in it whose ``branch.conf`` was never
checked, and moved its tip: breezy's bundled ``email`` plugin then ran the
program that configuration named.  Here every step of that chain, at every
nested place, is refused with nothing written; a control directory planted
there on disk is never opened; and a plugin's hooks stay silent in a real
``brz janitor-store serve`` while the same plugin runs in a client.
"""

from __future__ import annotations

import os
import shutil
import textwrap

from breezy.bzr.branch import BzrBranchFormat7
from breezy.bzr.bzrdir import BzrDirMetaFormat1
from breezy.hooks import known_hooks, known_hooks_key_to_object

from .. import isolation
from ..app import StoreApp
from . import hostile
from .fixtures import FREE_PORTS, brz, start_serve, tree_digest
from .test_hostile import TRIED, HostileTestCase

META = BzrDirMetaFormat1().network_name()
BRANCH = BzrBranchFormat7().network_name()
#: Places inside control directories where no control directory may be.
NESTED = (
    ("hello/lintian-fixes", b".bzr/branch/x"),
    ("hello/lintian-fixes", b".bzr/x"),
    ("hello/lintian-fixes", b".bzr/branch/lock/x"),
    ("hello/lintian-fixes", b".bzr/branch-lock/x"),
    ("hello/lintian-fixes", b"../.bzr/repository/upload/x"),
    ("hello", b".bzr/repository/upload/x"),
    ("hello", b".bzr/repository/obsolete_packs/x"),
    ("hello", b".bzr/repository/lock/x"),
)


class NestedControlDirectoryTests(HostileTestCase):
    """Every step of the chain is refused wherever the directory is nested."""

    def call(self, location: str, verb: bytes, *args: bytes) -> bytes:
        return self.smart_post(
            f"{self.store.admin}/{location}/.bzr/smart",
            hostile.encode_request(verb, *args),
        )

    def test_chain_refused(self) -> None:
        for location, nested in NESTED:
            steps = (
                (
                    b"BzrDirFormat.initialize_ex_1.16",
                    META,
                    nested,
                    b"True",
                    b"True",
                    b"False",
                    b"",
                    b"",
                    b"",
                    b"",
                    b"False",
                ),
                (b"BzrDirFormat.initialize", nested),
                (b"BzrDir.create_branch", nested, BRANCH),
                (b"BzrDir.open_2.1", nested),
                (b"Branch.lock_write", nested, b"", b""),
                (b"Branch.put_config_file", nested, b"", b""),
                (b"Branch.set_last_revision_info", nested, b"", b"", b"1", b"x"),
            )
            for verb, *args in steps:
                with self.subTest(location=location, verb=verb, path=nested):
                    TRIED["jail"] += 1
                    self.assertSmartRefusal(self.call(location, verb, *args), verb)
        self.assertUnchanged()

    def test_planted_directory_never_opened(self) -> None:
        """A control directory found nested on disk (left by an older
        store, say) is no branch to any verb."""
        branch = os.path.join(self.storage_dir, "hello", "lintian-fixes", ".bzr")
        planted = os.path.join(branch, "branch", "x")
        shutil.copytree(branch, self.path("copy"))
        shutil.copytree(self.path("copy"), os.path.join(planted, ".bzr"))
        before = tree_digest(self.storage_dir)
        for verb, *args in (
            (b"BzrDir.open_2.1", b".bzr/branch/x"),
            (b"BzrDir.open_branchV3", b".bzr/branch/x"),
            (b"Branch.get_stacked_on_url", b".bzr/branch/x"),
            (b"Branch.last_revision_info", b".bzr/branch/x"),
            (b"Branch.lock_write", b".bzr/branch/x", b"", b""),
            (b"get", b".bzr/branch/x/.bzr/branch/last-revision"),
        ):
            with self.subTest(verb=verb):
                self.assertSmartRefusal(
                    self.call("hello/lintian-fixes", verb, *args), verb
                )
        self.assertEqual(tree_digest(self.storage_dir), before)


SPY_PLUGIN = '''
"""Records, in a file, every hook of breezy's it is called for."""
from breezy.hooks import install_lazy_named_hook

MARKER = {marker!r}


def _spy(name):
    def hook(*args, **kwargs):
        with open(MARKER, "a") as f:
            f.write(name + "\\n")

    return hook


for _points, _name in (
    (("breezy.branch", "Branch.hooks"), "open"),
    (("breezy.branch", "Branch.hooks"), "pre_change_branch_tip"),
    (("breezy.branch", "Branch.hooks"), "post_change_branch_tip"),
    (("breezy.lock", "Lock.hooks"), "lock_acquired"),
    (("breezy.transport", "Transport.hooks"), "post_connect"),
):
    install_lazy_named_hook(*_points, _name, _spy(_name), "spy")
'''


class ForeignHookTests(HostileTestCase):
    """A plugin's hooks never run in the store's process."""

    def spy(self) -> tuple[str, str]:
        """A plugin directory holding the spy plugin, and its marker file."""
        plugins = self.path("plugins")
        marker = self.path("spy-called")
        os.makedirs(os.path.join(plugins, "spy"))
        with open(os.path.join(plugins, "spy", "__init__.py"), "w") as f:
            f.write(textwrap.dedent(SPY_PLUGIN.format(marker=marker)))
        return plugins, marker

    def test_plugin_silent_in_serve(self) -> None:
        plugins, marker = self.spy()
        plugin_path = f"{plugins}:+core:+site"
        # The plugin works: in a client, its hooks run.
        env = dict(os.environ, BRZ_PLUGIN_PATH=plugin_path)
        brz("commit", "-q", "--unchanged", "-m", "spied", cwd=self.work, env=env)
        self.assertIn("post_change_branch_tip", _read(marker))
        os.unlink(marker)
        _, admin, public = start_serve(
            self,
            "-d",
            self.storage_dir,
            "--allow-other-content",  # the secrets beside the codebases
            *FREE_PORTS,
            BRZ_PLUGIN_PATH=plugin_path,
        )
        brz("push", "-q", self.smart_url(admin, "hello/lintian-fixes"), cwd=self.work)
        brz(
            "push",
            "-q",
            self.smart_url(admin, "hello/lintian-fixes/spied"),
            cwd=self.work,
        )
        brz(
            "branch",
            "-q",
            self.smart_url(public + "/bzr", "hello/lintian-fixes"),
            self.path("out"),
        )
        self.assertEqual(_read(marker), "")

    def test_dropped_at_every_hook_point(self) -> None:
        def foreign(*args) -> None:
            raise AssertionError("a plugin's hook ran")

        foreign.__module__ = "breezy.plugins.spy"
        from breezy.branch import Branch

        Branch.hooks.install_named_hook("post_change_branch_tip", foreign, "spy")
        self.assertIn(foreign, list(Branch.hooks["post_change_branch_tip"]))
        StoreApp(self.storage_dir)
        for key in list(known_hooks.keys()):
            points = known_hooks_key_to_object(key)
            for name, point in points.items():
                for callback in point:
                    module = getattr(
                        getattr(callback, "func", callback), "__module__", ""
                    )
                    with self.subTest(point=name, module=module):
                        self.assertTrue(isolation.is_own_module(module))
        self.assertNotIn(foreign, list(Branch.hooks["post_change_branch_tip"]))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""
