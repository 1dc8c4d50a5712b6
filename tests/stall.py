"""A stuck consumer group on the embedded Tansu broker (0.6.0), made on purpose for tests.

The bug: Tansu keeps a group's leader when that leader leaves while the group is re-forming
(after a JoinGroup, before the leader's SyncGroup). Its LeaveGroup in the Forming state
removes the member but not `leader` (the Formed state clears a departed leader; the Forming
state only clears one that misses heartbeats, and a member that left is no longer checked).
From then on every JoinGroup answers with the departed leader's id, no member is ever the
leader, each follower's SyncGroup gets REBALANCE_IN_PROGRESS, and the members rejoin forever
with no partitions. Two `ledger consume` workers get there when the follower stops first and
the leader stops before it re-synced (within ~3 s here: the leader's rejoin takes that long).

Observed here: it never heals by itself (2+ minutes idle or with a member polling all along;
two members joining at once do not clear it either); another group id works meanwhile;
`KafkaAdminClient.delete_groups([group])` clears it (the next member becomes leader and gets
every partition), as does a broker restart (which also empties the in-memory topics).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.protocol.consumer.group import JoinGroupRequest, LeaveGroupRequest

from ledger import bootstrap
from ledger.settings import Settings

ASSIGNORS = (RangePartitionAssignor, RoundRobinPartitionAssignor)
"""kafka-python's default assignors, so the group's protocol matches `ledger consume`'s."""


def stuck_group(settings: Settings) -> None:
    """Leave the ingest consumer group of `settings` (group `settings.ingest_group`, topic
    `settings.inbound_topic`) stuck as described: later members join and get no partitions.

    The shortest way into the broker state two stopped workers leave behind: one member
    joins (and so becomes leader of the forming group) and leaves before its SyncGroup.
    Takes about 3 s (the broker holds the JoinGroup that long). The group must have no live
    member (a fresh `settings` has none); raises AssertionError if the join did not make
    this member the leader or the leave was refused, so a returned call means stuck."""
    group, topic = settings.ingest_group, settings.inbound_topic
    timeouts = bootstrap.KAFKA_GROUP_TIMEOUTS
    member_id = f"stall-{uuid.uuid4()}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="stall")
    try:
        # kafka-python has no public call for single group requests: send them through the
        # admin client's connection manager, to the group's coordinator.
        manager = admin._manager
        coordinator = manager.run(admin._find_coordinator_id, group)

        def send(request: Any) -> Any:
            async def call() -> Any:
                return await manager.send(request, node_id=coordinator)

            return manager.run(call)

        joined = send(
            JoinGroupRequest(
                group_id=group,
                session_timeout_ms=timeouts["session_timeout_ms"],
                rebalance_timeout_ms=timeouts["max_poll_interval_ms"],
                member_id=member_id,
                group_instance_id=None,
                protocol_type="consumer",
                protocols=[(a.name, a.metadata({topic})) for a in ASSIGNORS],
                max_version=7,
            )
        )
        assert joined.error_code == 0, f"JoinGroup of {group} failed: {joined}"
        assert joined.leader == member_id, (
            f"{group} has a live leader ({joined.leader}): stop its members first"
        )
        left = send(
            LeaveGroupRequest(
                group_id=group,
                member_id=member_id,
                members=[
                    LeaveGroupRequest.MemberIdentity(member_id=member_id, group_instance_id=None)
                ],
                max_version=3,
            )
        )
        assert left.error_code == 0, f"LeaveGroup of {group} failed: {left}"
        assert all(m.error_code == 0 for m in left.members), f"LeaveGroup refused: {left}"
    finally:
        admin.close()


def stuck_group_by_consumers(settings: Settings, gap: float = 1.0) -> str:
    """The reviewer's way into the same state, with two real group members: both consumers
    share the partitions, then the follower leaves and the leader leaves `gap` s later (stuck
    for 0-2.5 s here; 4 s is too late: the leader has re-synced alone). Returns the departed
    leader's member id, which later JoinGroups name as leader. Takes about 7-9 s."""
    leader = _Polling(_member(settings, "stall-leader"))
    try:
        _wait(lambda: bool(leader.consumer.assignment()), "the first member's partitions")
        leader_id = leader.member_id()  # the first member of a new group leads it
        follower = _Polling(_member(settings, "stall-follower"))
        try:
            _wait(
                lambda: (
                    len(leader.consumer.assignment()) + len(follower.consumer.assignment())
                    == settings.partitions
                    and bool(follower.consumer.assignment())
                ),
                "the two members to share the partitions",
            )
        finally:
            follower.close()
        time.sleep(gap)
    finally:
        leader.close()
    return leader_id


def unstick_group(settings: Settings) -> None:
    """Clear the stuck ingest group without a broker restart: delete it (its committed
    offsets go too; the ledger keeps its own in PostgreSQL). The next member leads."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="stall")
    try:
        admin.delete_groups([settings.ingest_group])
    finally:
        admin.close()


def owned_partitions(settings: Settings, group: str, seconds: float) -> set[TopicPartition]:
    """The partitions of the inbound topic that a new member of `group` owns once the group
    assigned it any, or after polling `seconds` (empty: the group gave it none)."""
    consumer = _member(settings, "stall-probe", group)
    try:
        deadline = time.monotonic() + seconds
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        return set(consumer.assignment())
    finally:
        consumer.close(autocommit=False)


def _member(settings: Settings, client_id: str, group: str | None = None) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group or settings.ingest_group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **bootstrap.KAFKA_GROUP_TIMEOUTS,
    )
    consumer.subscribe([settings.inbound_topic])
    return consumer


class _Polling:
    """A consumer polled on its own thread (as a worker would), until close()."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.consumer.poll(timeout_ms=100)
        finally:
            self.consumer.close(autocommit=False)  # sends LeaveGroup

    def member_id(self) -> str:
        generation = self.consumer._coordinator.generation_if_stable()
        assert generation is not None, "not a member of the group"
        return str(generation.member_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _wait(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)
