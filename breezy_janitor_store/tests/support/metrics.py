"""Reading the store's Prometheus metrics."""

from __future__ import annotations

import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from .fixtures import http_request


def scrape(base: str, accept: str | None = None) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, labels): value}`` from ``base``'s ``/metrics``."""
    status, _, body = http_request(
        base + "/metrics", headers={"Accept": accept} if accept else {}
    )
    if status != 200:
        raise AssertionError(f"/metrics answered {status}: {body!r}")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_until(base: str, condition, timeout: float = 30.0) -> dict:
    """Scrape until ``condition(samples)`` holds (a request is counted when
    its body is closed, which may be just after its client has read it)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(base)
        if condition(samples) or time.monotonic() > deadline:
            return samples
        threading.Event().wait(0.02)
