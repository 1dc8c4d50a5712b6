"""Deciding where to resume reading the inbound partitions (the stored offsets themselves:
`store.offsets`).

Where a worker resumes is decided by PostgreSQL, never by Kafka's committed offsets: the
stored offset moved in the same transaction as the events it produced.

An offset only means something in one incarnation of the topic: its **log id**,
`{cluster id}/{topic id}` (just the cluster id where a broker gives no topic ids). A
restarted embedded broker has a new cluster id, and a topic deleted and created again has
a new topic id; both start at offset 0 again. Offsets (`ledger_offsets.cluster_id`) and
dead letters (`ledger_dead_letters.source_log`) are stored with it.
"""

from __future__ import annotations

from store.offsets import StoredOffset


class OffsetBeyondEnd(Exception):
    """A stored offset lies past the end of its partition on the same cluster."""


def log_id(cluster_id: str, topic_id: str | None) -> str:
    """The log id of a topic (see above)."""
    return f"{cluster_id}/{topic_id}" if topic_id else cluster_id


def same_log(stored: str, current: str) -> bool:
    """Whether an offset stored with log id `stored` refers to the log `current`: the same
    id, or the same cluster's id alone (stored before topic ids were kept)."""
    return stored == current or ("/" not in stored and stored == current.split("/", 1)[0])


def resume_at(stored: StoredOffset, current: str) -> int:
    """Where to read next: the stored offset, or 0 when it was stored in another log (a
    restarted embedded broker, or a topic created again: both start empty)."""
    if stored.next_offset is None or not same_log(stored.log_id, current):
        return 0
    return stored.next_offset


def check_within(topic: str, partition: int, resumed_at: int, high_watermark: int) -> None:
    """Refuse, with a readable reason, to wait past the end of a partition.

    Checked against the high watermark of the first fetch after a seek: the broker
    answers a fetch beyond the end with nothing at all (Tansu does not even report
    OFFSET_OUT_OF_RANGE), which would otherwise look like an idle topic forever.
    """
    if resumed_at > high_watermark:
        raise OffsetBeyondEnd(
            f"the ledger has read {topic}[{partition}] up to offset {resumed_at}, "
            f"but the partition ends at {high_watermark}: the topic was deleted or truncated; "
            "point LEDGER_KAFKA_BOOTSTRAP at the original cluster or reset ledger_offsets"
        )
