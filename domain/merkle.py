"""The ledger digest: one hash over the head of every stream, to keep outside the system.

Leaves are the stream heads sorted by stream id (the store's `originator_id` as text):
`leaf = sha256(0x00 || "{originator_id} {version} {hash}")`, with the stream head's version
and chain hash. Each level pairs adjacent nodes, `node = sha256(0x01 || left || right)`
(raw 32-byte digests), and an odd last node moves up unchanged. The root of no streams is
`sha256("")`. The 0x00/0x01 prefixes keep a leaf from passing for a node (as RFC 6962
does), so another tool can recompute the root from the stream heads alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def leaf(stream_id: str, version: int, head_hash: str) -> bytes:
    return hashlib.sha256(b"\x00" + f"{stream_id} {version} {head_hash}".encode()).digest()


def root(leaves: Iterable[bytes]) -> str:
    """The Merkle root (hex) of leaves given in stream-id order."""
    level = list(leaves)
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        paired = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()
