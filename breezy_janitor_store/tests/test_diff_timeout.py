"""The diff deadline: the client is answered at once, the worker is never
interrupted inside breezy's code, only at its own writes."""

from __future__ import annotations

import threading
import unittest

from ..store import diff
from .support.fixtures import wait_for


class DeadlineTests(unittest.TestCase):
    def test_a_busy_worker_is_not_interrupted(self) -> None:
        steps: list[str] = []
        busy = threading.Event()
        release = threading.Event()

        def produce(out) -> None:
            out.write(b"=== modified file 'a'\n")
            steps.append("comparing")
            busy.set()
            while not release.wait(0.01):  # an async exception would land here
                pass
            steps.append("compared")
            out.write(b"+more\n")
            steps.append("wrote after the deadline")

        stream = diff.DiffStream(produce, timeout=0.05)
        self.assertEqual(stream.first(), b"=== modified file 'a'\n")
        wait_for(busy.is_set, "the worker to start comparing")
        with self.assertRaises(diff.DiffTimeout):
            list(stream)  # the deadline passes while it compares
        self.assertTrue(stream.running)  # still in its comparison
        release.set()
        wait_for(lambda: not stream.running, "the worker to stop")
        # it finished its step and stopped at its next write
        self.assertEqual(steps, ["comparing", "compared"])

    def test_closing_stops_a_writing_worker(self) -> None:
        lines = iter(range(10**9))

        def produce(out) -> None:
            for i in lines:
                out.write(b"+line %d\n" % i)

        stream = diff.DiffStream(produce, timeout=60)
        stream.first()
        stream.close()
        self.assertFalse(stream.running)
