"""Optional test dependencies, as breezy test features.

A test needing one calls :func:`require`: without it the test is skipped
with a hint, or fails when ``CI=true`` (CI must run everything).  A module
that imports one at its top calls :func:`require_module` first, so that
without it the module's tests are skipped instead of failing to import.
"""

from __future__ import annotations

import glob
import os
import shutil
import unittest

from breezy.tests import features

__all__ = [
    "CHROMIUM",
    "GUNICORN",
    "HTML5LIB",
    "HYPOTHESIS",
    "NGINX",
    "POSTGRESQL",
    "SYSTEMD_ANALYZE",
    "W3M",
    "Needed",
    "find_postgres_bindir",
    "missing",
    "require",
    "require_module",
]


class Needed:
    """A breezy feature and how to install it."""

    def __init__(self, feature: features.Feature, how: str) -> None:
        self.feature = feature
        self.how = how

    def available(self) -> bool:
        return self.feature.available()

    def message(self) -> str:
        return f"{self.feature} is not available: {self.how}"


class _Path(features.Feature):
    """An executable at a fixed path."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def _probe(self) -> bool:
        return os.access(self.path, os.X_OK)

    def feature_name(self) -> str:
        return self.path


class _PostgresBindir(features.Feature):
    """PostgreSQL's server programs (``initdb``): the newest installed."""

    def _probe(self) -> bool:
        self.bindir = find_postgres_bindir()
        return self.bindir is not None

    def feature_name(self) -> str:
        return "PostgreSQL (initdb)"


def find_postgres_bindir() -> str | None:
    """The newest ``/usr/lib/postgresql/N/bin`` with ``initdb`` (or PATH's)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        found.sort(
            key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0
        )
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


HYPOTHESIS = Needed(
    features.ModuleAvailableFeature("hypothesis"), "pip install hypothesis"
)
HTML5LIB = Needed(features.ModuleAvailableFeature("html5lib"), "pip install html5lib")
GUNICORN = Needed(features.ModuleAvailableFeature("gunicorn"), "pip install gunicorn")
CHROMIUM = Needed(_Path("/usr/bin/chromium"), "apt-get install chromium")
POSTGRESQL = Needed(_PostgresBindir(), "apt-get install postgresql")
NGINX = Needed(_Path("/usr/sbin/nginx"), "apt-get install nginx")
W3M = Needed(_Path("/usr/bin/w3m"), "apt-get install w3m")
SYSTEMD_ANALYZE = Needed(_Path("/usr/bin/systemd-analyze"), "apt-get install systemd")
SYSTEMD_SYSUSERS = Needed(_Path("/usr/bin/systemd-sysusers"), "apt-get install systemd")
SETPRIV = Needed(_Path("/usr/bin/setpriv"), "apt-get install util-linux")
YAML = Needed(features.ModuleAvailableFeature("yaml"), "pip install pyyaml")


def _ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(test: unittest.TestCase, message: str) -> None:
    """Skip ``test`` for a missing dependency; fail it under ``CI=true``."""
    if _ci():
        test.fail(message + " (CI=true: a missing dependency is a failure)")
    test.skipTest(message)


def require(test: unittest.TestCase, needed: Needed) -> None:
    """Skip ``test`` unless ``needed`` is available; fail it under ``CI=true``."""
    if not needed.available():
        missing(test, needed.message())


def require_module(needed: Needed) -> None:
    """At a test module's top: skip the whole module unless ``needed`` is
    available (under ``CI=true``, the module fails to import instead)."""
    if needed.available():
        return
    if _ci():
        raise ImportError(needed.message())
    raise unittest.SkipTest(needed.message())
