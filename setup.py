"""Packaging of breezy_janitor_store (a library and a breezy plugin)."""

import re
from pathlib import Path

from setuptools import setup

_HERE = Path(__file__).resolve().parent
# Read, not imported: a PEP 517 build runs without the checkout on sys.path.
__version__ = re.search(
    r'^__version__ = "([^"]+)"',
    (_HERE / "breezy_janitor_store" / "__init__.py").read_text(encoding="utf-8"),
    re.MULTILINE,
).group(1)

setup(
    name="breezy-janitor-store",
    version=__version__,
    description="Bazaar code-hosting store for the Debian Janitor (breezy plugin, WSGI app)",
    long_description=(_HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="GPL-2.0-or-later",
    author="The breezy-janitor-store developers",
    project_urls={
        "Debian Janitor": "https://salsa.debian.org/jelmer/janitor",
        "Breezy": "https://www.breezy-vcs.org/",
    },
    keywords=["bzr", "breezy", "debian", "janitor", "code hosting", "wsgi"],
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: Paste",
        "Intended Audience :: System Administrators",
        "License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Application",
        "Topic :: Software Development :: Version Control",
    ],
    python_requires=">=3.9",
    # The tests stay in the checkout (pytest, or ``brz selftest`` with the
    # plugin loaded from it): they are not installed.
    packages=[
        "breezy_janitor_store",
        "breezy_janitor_store.store",
        "breezy_janitor_store.store.patches",
        "breezy_janitor_store.smart",
        "breezy_janitor_store.policy",
        "breezy_janitor_store.web",
        "breezy_janitor_store.web.browser",
        "breezy.plugins.janitor_store",
    ],
    package_data={
        "breezy_janitor_store.web": ["templates/*.html", "templates/*.css", "templates/*.xml"]
    },
    package_dir={"breezy.plugins.janitor_store": "breezy_janitor_store/plugin"},
    install_requires=[
        "breezy>=3.3,<3.4",
        "configobj",
        "fastbencode",
        "jinja2>=3.0",  # the public face's page templates
        "markupsafe",  # markup the templates do not escape again
        "paste",
        "patiencediff",  # breezy's matcher, used by the store's diff writer
        "psycopg>=3.1",
        "pygments",  # highlighting in the public face's file view
        "psycopg-pool",
        "prometheus-client",
        "vcsgraph",  # breezy's graphs (see breezy_janitor_store/store/patches/cycles.py)
    ],
    extras_require={
        "gunicorn": ["gunicorn"],
        "gcp": ["google-cloud-logging"],
        "test": [
            "pytest",
            "testtools",
            "hypothesis",
            "html5lib",
            "gunicorn",
            "pyyaml",
            "mfusepy",
        ],
    },
)
