"""How events are encoded in the event store: orjson, with event timestamps restored.

The library's `JSONTranscoder` runs a Python hook for every JSON object it decodes and
encodes with the standard library; on this ledger's events (a payload dict each) that was
an eighth of ingest and of projection time. This transcoder keeps the same shape (a JSON
object of the event's attributes) with orjson, which writes `datetime` as RFC 3339 and
`UUID` as text natively; decoding turns the event's top-level `timestamp` back into a
`datetime`. Business payloads are plain JSON, so nothing else needs restoring. Selected
by class through the library's `construct_transcoder` hook (`consumers.application`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import Transcoder


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        state = orjson.loads(data)
        if isinstance(state, dict) and isinstance(state.get("timestamp"), str):
            state["timestamp"] = datetime.fromisoformat(state["timestamp"])
        return state
