"""The store's registry of smart verbs: each of breezy's verbs (none of
a plugin's), as a store request class under its policy."""

from __future__ import annotations

import logging

from breezy import registry
from breezy.bzr.smart import protocol, request

from ..store import isolation
from .overrides import OVERRIDES, InsertStream
from .request import StoreRequest
from .verbs import (
    ARGUMENT_CHECKS,
    HEAVY_VERBS,
    INSERT_STREAM_VERBS,
    UNKNOWN_VERB,
    UNSERVED_VERBS,
    VerbPolicy,
)

__all__ = [
    "COMMANDS",
    "verb_category",
    "verb_policy",
]

_V3 = protocol.ProtocolThreeDecoder


logger = logging.getLogger(__name__)




def _store_class(verb: bytes, cls: type, policy: VerbPolicy) -> type:
    """The store's request class for ``verb``: ``cls`` under its policy."""
    bases = (
        (StoreRequest, InsertStream, cls)
        if verb in INSERT_STREAM_VERBS
        else (
            StoreRequest,
            cls,
        )
    )
    return type(cls.__name__, bases, {"verb": verb, "policy": policy})


def _policy(verb: bytes, category: str) -> VerbPolicy:
    return VerbPolicy(
        category,
        refused=UNSERVED_VERBS.get(verb),
        large_body=verb in INSERT_STREAM_VERBS,
        heavy=verb in HEAVY_VERBS,
        check=ARGUMENT_CHECKS.get(verb),
    )


def _build_registry() -> registry.Registry:
    """The store's registry: every verb of breezy's (none of a plugin's),
    under its policy."""
    commands = registry.Registry()
    for verb in sorted(request.request_handlers.keys()):
        policy = _policy(verb, request.request_handlers.get_info(verb))
        cls = OVERRIDES.get(verb) or request.request_handlers.get(verb)
        if not isolation.is_own_module(cls.__module__):
            continue  # a plugin's verb: no plugin code runs in the store
        commands.register(verb, _store_class(verb, cls, policy), info=policy)
    return commands


#: The store's smart verbs (see :class:`VerbPolicy`).
COMMANDS = _build_registry()


def verb_policy(verb: bytes | None) -> VerbPolicy:
    """The store's policy for ``verb``."""
    try:
        return COMMANDS.get_info(verb)
    except KeyError:
        return UNKNOWN_VERB


def verb_category(verb: bytes | None) -> str | None:
    """breezy's classification of a smart verb (``read``, ``idem``, ...)."""
    return verb_policy(verb).category
