"""What an operator watches besides requests: processes, in-flight work and
every face's metrics in one place.

* **Gauges** (on this module's registry): ``bzr_store_http_requests_in_flight``
  (by face; requests being served, from their start to the end of their
  response body), ``bzr_store_http_connections_open`` (by face; the embedded
  server's open connections; gunicorn keeps its own) and
  ``bzr_store_write_locks_held`` (branch and repository write locks taken
  through this process and not yet released).  In multiprocess mode they
  add up over the live processes.
* **Process metrics**: the standard ``process_*`` series (resident and
  virtual memory, CPU seconds, open and maximum file descriptors, start
  time).  One process: its own, as ``prometheus_client`` reports them.
  Several (``PROMETHEUS_MULTIPROC_DIR``): one series per live process that
  writes to the multiprocess directories, labelled ``pid``.
* **Several multiprocess directories**: ``BZR_STORE_METRICS_DIRS`` lists,
  colon-separated, further directories whose values ``/metrics`` adds to its
  own (``PROMETHEUS_MULTIPROC_DIR``), so that with one gunicorn instance per
  face the admin face's ``/metrics`` shows the public face's series too.  A
  directory that does not exist (its instance is stopped) is skipped.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "CONNECTIONS",
    "EXTRA_DIRS_ENV",
    "HELD_WRITE_LOCKS",
    "IN_FLIGHT",
    "MultiDirCollector",
    "ProcessesCollector",
    "metric_dirs",
]

#: Further multiprocess directories ``/metrics`` adds (colon-separated).
EXTRA_DIRS_ENV = "BZR_STORE_METRICS_DIRS"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: This module's gauges (``/metrics`` shows them beside the store's own
#: registry, :data:`breezy_janitor_store.web.metrics.REGISTRY`).
REGISTRY = CollectorRegistry(auto_describe=True)

IN_FLIGHT = Gauge(
    "bzr_store_http_requests_in_flight",
    "Requests being served, by face (until the end of the response body).",
    ["face"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
CONNECTIONS = Gauge(
    "bzr_store_http_connections_open",
    "Connections open on the embedded server, by face.",
    ["face"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
HELD_WRITE_LOCKS = Gauge(
    "bzr_store_write_locks_held",
    "Branch and repository write locks taken through the store and held.",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

_PID = re.compile(r"_(\d+)\.db\Z")


def metric_dirs() -> list[str]:
    """The existing multiprocess directories, own first, without repeats."""
    found: list[str] = []
    raw = [os.environ.get(MULTIPROC_ENV, "")]
    raw += os.environ.get(EXTRA_DIRS_ENV, "").split(os.pathsep)
    seen = set()
    for path in raw:
        if not path or not os.path.isdir(path):
            continue
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append(path)
    return found


def _files(dirs: list[str]) -> list[str]:
    return sorted(f for d in dirs for f in glob.glob(os.path.join(d, "*.db")))


class MultiDirCollector:
    """The values of every process writing to the multiprocess directories,
    merged as ``prometheus_client``'s multiprocess collector merges one."""

    def __init__(self, dirs: list[str]) -> None:
        self._dirs = dirs

    def collect(self) -> Iterator[Metric]:
        return iter(MultiProcessCollector.merge(_files(self._dirs), accumulate=True))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessesCollector:
    """``process_*`` of every live process writing to ``dirs``, by ``pid``."""

    def __init__(self, dirs: list[str]) -> None:
        self._dirs = dirs

    def pids(self) -> list[int]:
        found = set()
        for path in _files(self._dirs):
            match = _PID.search(path)
            if match:
                found.add(int(match.group(1)))
        found.add(os.getpid())
        return sorted(pid for pid in found if _alive(pid))

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.pids():
            collector = ProcessCollector(pid=lambda pid=pid: pid, registry=None)
            for family in collector.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type
                    )
                for sample in family.samples:
                    merged.add_sample(
                        sample.name, {**sample.labels, "pid": str(pid)}, sample.value
                    )
        return iter(families.values())


def add_collectors(registry, multiprocess: bool) -> None:
    """Register what ``/metrics`` shows besides the store's own registry:
    in ``multiprocess`` mode the merged values of every directory, and the
    process metrics."""
    if multiprocess:
        dirs = metric_dirs()
        registry.register(MultiDirCollector(dirs))
        registry.register(ProcessesCollector(dirs))
    else:
        registry.register(_Forward(REGISTRY))
        registry.register(ProcessCollector(registry=None))


class _Forward:
    """Collector yielding another registry's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return self._registry.collect()
