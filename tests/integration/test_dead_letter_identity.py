"""A dead letter is identified by its record's cluster, topic, partition and offset: the
same offset on another cluster is another dead letter, and the same record twice is a bug
that fails the batch loudly instead of being ignored."""

from __future__ import annotations

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from consumers.records import InboundRecord
from consumers.store import DeadLetterCollision, OffsetMove, refuse_dead_letter_collision
from ledger import bootstrap
from ledger.settings import Settings


def _reject(settings: Settings, cluster: str, partition: int, expected: int | None) -> None:
    """Commit a batch of one malformed record at offset 0 of `partition` on `cluster`."""
    app = bootstrap.ledger_application(settings)
    topic = settings.inbound_topic
    record = InboundRecord(cluster, topic, 0, 0, None, b"{not json")
    app.commit(
        app.decide(app.parse([record]), [OffsetMove(topic, partition, expected, 1, cluster)])
    )


def test_the_same_offset_on_another_cluster_is_another_dead_letter(settings: Settings) -> None:
    _reject(settings, "cluster-a", 0, None)
    _reject(settings, "cluster-b", 0, 1)
    with psycopg.connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT source_cluster, source_offset FROM ledger_dead_letters ORDER BY 1"
        ).fetchall()
    assert rows == [("cluster-a", 0), ("cluster-b", 0)]


def test_a_second_dead_letter_for_one_record_fails_loudly(settings: Settings) -> None:
    _reject(settings, "cluster-a", 0, None)
    with pytest.raises(IntegrityError) as failed:
        _reject(settings, "cluster-a", 1, None)  # another partition's offset: the CAS passes
    with pytest.raises(DeadLetterCollision, match="already stored for the same Kafka record"):
        refuse_dead_letter_collision(failed.value)
    with psycopg.connect(settings.database_url or "") as conn:
        assert conn.execute("SELECT count(*) FROM ledger_dead_letters").fetchone() == (1,)
