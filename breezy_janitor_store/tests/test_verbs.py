"""The store's smart verb registry and the policies it gives each verb."""

from __future__ import annotations

import threading
import unittest

from breezy.bzr.smart import request

from ..smart import overrides, registry, verbs
from ..smart import request as store_request
from .support.fixtures import wait_for


class RegistryTests(unittest.TestCase):
    def test_every_breezy_verb_is_registered_under_its_policy(self) -> None:
        self.assertEqual(
            sorted(registry.COMMANDS.keys()), sorted(request.request_handlers.keys())
        )
        for verb in sorted(request.request_handlers.keys()):
            with self.subTest(verb=verb):
                cls = registry.COMMANDS.get(verb)
                self.assertTrue(issubclass(cls, request.request_handlers.get(verb)))
                self.assertTrue(issubclass(cls, store_request.StoreRequest))
                policy = registry.verb_policy(verb)
                self.assertIs(cls.policy, policy)
                self.assertEqual(
                    policy.category, request.request_handlers.get_info(verb)
                )
                self.assertEqual(
                    policy.writes, request.request_handlers.get_info(verb) != "read"
                )

    def test_only_insert_streams_of_writers_take_large_bodies(self) -> None:
        big = 1024**3
        large = {
            verb
            for verb in sorted(registry.COMMANDS.keys())
            if registry.verb_policy(verb).body_limit(True, big) == big
        }
        self.assertEqual(large, set(verbs.INSERT_STREAM_VERBS))
        for verb in sorted(registry.COMMANDS.keys()):
            self.assertEqual(
                registry.verb_policy(verb).body_limit(False, big), verbs.SMALL_BODY_LIMIT
            )
        self.assertEqual(
            verbs.UNKNOWN_VERB.body_limit(True, big), verbs.SMALL_BODY_LIMIT
        )
        self.assertFalse(verbs.UNKNOWN_VERB.writes)

    def test_insert_streams_are_the_store_s_bounded_inserts(self) -> None:
        for verb in verbs.INSERT_STREAM_VERBS:
            cls = registry.COMMANDS.get(verb)
            self.assertTrue(issubclass(cls, overrides.InsertStream), verb)
            self.assertTrue(registry.verb_policy(verb).heavy, verb)

    def test_unserved_verbs_are_refused_with_their_reason(self) -> None:
        for verb, reason in verbs.UNSERVED_VERBS.items():
            self.assertEqual(registry.verb_policy(verb).refused, reason)


class PipeTests(unittest.TestCase):
    """The queue between a request body and an inserting thread."""

    def test_writer_waits_while_the_backlog_is_over_the_limit(self) -> None:
        pipe = overrides._Pipe(10)
        done = []

        def write() -> None:
            for i in range(3):
                pipe.put(bytes([i]) * 11)
                done.append(i)
            pipe.end()

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        wait_for(lambda: done == [0], "the first chunk is queued")
        # 11 bytes wait: the writer cannot queue more until they are read
        self.assertEqual(done, [0])
        self.assertTrue(writer.is_alive())
        got = list(pipe)
        writer.join(10)
        self.assertEqual(got, [bytes([i]) * 11 for i in range(3)])

    def test_abort_fails_the_reader_and_close_frees_the_writer(self) -> None:
        pipe = overrides._Pipe(0)
        pipe.put(b"x")
        pipe.abort()
        with self.assertRaises(overrides._EarlyEnd):
            list(pipe)
        pipe.close()
        pipe.put(b"y" * 100)  # returns: nobody reads any more
