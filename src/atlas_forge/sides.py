"""Which side of the mixture's train/test split a source row is on.

One function, shared by instruct (which only combines rows of the same side into one conversation:
few-shot examples, multi-turn partners) and mixture (which puts a conversation on the side of its
source rows). The side depends only on (seed, key), never on the other rows, so every direction,
example and turn built from one source row lands on the same side, whatever else changes.
"""

from __future__ import annotations

import hashlib


def is_test(seed: int, key: str, fraction: float) -> bool:
    """True when `key` (a source row id) falls in the test share `fraction` for `seed`."""
    digest = hashlib.sha256(f"{seed}\x1ftest\x1f{key}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < fraction
