"""Packaging of breezy_janitor_store (a library and a breezy plugin)."""

from pathlib import Path

from setuptools import setup

from breezy_janitor_store import __version__

setup(
    name="breezy-janitor-store",
    version=__version__,
    description="Bazaar code-hosting store for the Debian Janitor (breezy plugin, WSGI app)",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="GPL-2.0-or-later",
    python_requires=">=3.9",
    packages=[
        "breezy_janitor_store",
        "breezy_janitor_store.tests",
        "breezy.plugins.janitor_store",
    ],
    package_dir={"breezy.plugins.janitor_store": "breezy_janitor_store/plugin"},
    install_requires=[
        "breezy>=3.3,<3.4",
        "configobj",
        "fastbencode",
        "paste",
        "patiencediff",  # breezy's matcher, used by the store's diff writer
        "psycopg>=3.1",
        "psycopg-pool",
        "prometheus-client",
        "vcsgraph",  # breezy's graphs (see breezy_janitor_store/cycles.py)
    ],
    extras_require={
        "gunicorn": ["gunicorn"],
        "gcp": ["google-cloud-logging"],
        "test": ["pytest", "testtools", "hypothesis", "html5lib", "gunicorn", "mfusepy"],
    },
)
