"""breezy's own transport conformance tests, run against StoreTransport.

``breezy.tests.per_transport.TransportTests`` runs against a StoreTransport
rooted in a campaign branch's ``.bzr`` (the test's working directory), once
writable and once read-only, as breezy runs it against each of its
transports (a server per transport class, registering its URL prefix).
:data:`DIFFERENCES` lists the tests whose expectations the store's layout
and jail make differ, each with its reason; each is still run, and must
still differ (a test that starts passing must be taken off the list).
"""

from __future__ import annotations

import functools
import os

from breezy import errors, urlutils
from breezy import transport as _mod_transport
from breezy.tests import per_transport, test_server

from ..store import layout
from ..store.storage import Storage
from ..store.transport import URL_SCHEME, StoreTransport

CODEBASE = "cb"
CAMPAIGN = "lintian-fixes"

#: Tests of TransportTests that differ on the store, with the reason.
DIFFERENCES: dict[str, str] = {
    "test_unicode_paths": (
        "a client path that is not a valid escaped URL path is refused with "
        "PermissionDenied, which every smart client reports, not InvalidURL"
    ),
}
#: Tests breezy itself skips on the store, and why (for the record):
#: ``test_hardlink``, ``test_symlink``, ``test_readlink_nonexistent``,
#: ``test_stat_symlink`` - links are refused (``TransportNotPossible``): they
#: could point out of the codebase; ``test_clone_preserve_info``,
#: ``test__reuse_for``, ``test_connection_sharing``,
#: ``test_reuse_connection_for_various_paths`` - the transport is in-process,
#: not a connected one.


class StoreServer(test_server.TestServer):
    """Serves a StoreTransport rooted at ``CODEBASE/CAMPAIGN/.bzr`` in the
    test's directory, which becomes the working directory."""

    writable = True

    def start_server(self) -> None:
        top = os.getcwd()
        control = os.path.join(top, CODEBASE, CAMPAIGN, ".bzr")
        os.makedirs(control)
        self._storage = Storage(top)
        self._base = self._root(CODEBASE).clone(f"{CAMPAIGN}/.bzr").base
        os.chdir(control)
        _mod_transport.register_transport(URL_SCHEME, self)

    def stop_server(self) -> None:
        _mod_transport.unregister_transport(URL_SCHEME, self)

    def _root(self, codebase: str) -> StoreTransport:
        return StoreTransport.for_codebase(
            _mod_transport.get_transport(self._storage.path(codebase)),
            codebase,
            writable=self.writable,
            is_campaign=CAMPAIGN.__eq__,
            write_refusal=_any_file_in_control_directory,
        ).for_request()

    def __call__(self, url: str) -> StoreTransport:
        """The transport of ``janitor-store:///CODEBASE/PATH[,PARAMETERS]``."""
        raw, parameters = urlutils.split_segment_parameters(url)
        codebase, _, path = raw[len(URL_SCHEME) + 3 :].partition("/")
        t = self._root(codebase).clone(path or ".")
        for key, value in parameters.items():
            t.set_segment_parameter(key, value)
        return t

    def get_url(self) -> str:
        return self._base

    def get_bogus_url(self) -> str:
        return URL_SCHEME + "///no-such-codebase/"


def _any_file_in_control_directory(disk, is_campaign, layout_dir_op) -> str | None:
    """The layout's rule, but for the names of files and directories inside
    a branch's ``.bzr`` (breezy's tests write files of their own there)."""
    reason = layout.write_refusal(disk, is_campaign, layout_dir_op)
    return None if reason == layout.NESTED_REASON else reason


class ReadonlyStoreServer(StoreServer):
    writable = False


def _differs(test, reason: str):
    """``test``, which must fail (or error) for ``reason``."""

    @functools.wraps(test)
    def run(self) -> None:
        try:
            test(self)
        except (AssertionError, errors.BzrError):
            self.skipTest(f"differs on the store: {reason}")
        self.fail(f"now passes; take it off the differences: {reason}")

    return run


def _with_differences(cls: type, differences: dict[str, str]) -> type:
    for name, reason in differences.items():
        setattr(
            cls, name, _differs(getattr(per_transport.TransportTests, name), reason)
        )
    return cls


class StoreTransportConformance(per_transport.TransportTests):
    server = StoreServer

    def setUp(self) -> None:
        # breezy's TestCase sets these per instance, as its scenarios do.
        self.transport_class = StoreTransport
        self.transport_server = self.server
        super().setUp()


class ReadonlyStoreTransportConformance(StoreTransportConformance):
    server = ReadonlyStoreServer


_with_differences(StoreTransportConformance, DIFFERENCES)
