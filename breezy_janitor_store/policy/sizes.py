"""Sizes as operators write them: ``1G``, ``512M``, ``64K`` or bytes."""

from __future__ import annotations

import re

__all__ = ["parse_size"]

_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*\Z", re.IGNORECASE)
_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """Bytes in ``text``: a whole number, optionally followed by ``K``,
    ``M``, ``G`` or ``T`` (powers of 1,024; ``KiB``/``KB`` too).

    :raises ValueError: anything else.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(
            f"invalid size {text!r}: give bytes or a number with K, M or G (1G)"
        )
    return int(match.group(1)) * _FACTORS[match.group(2).upper()]
