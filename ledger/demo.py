"""`ledger demo`: the newcomer's whole path on real servers, ending in a readable summary."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import Future
from datetime import timedelta

from rich.console import Console
from rich.table import Table

from ledger import bootstrap, embedded
from ledger.ingest_worker import IngestStats
from ledger.settings import Settings
from producers.merge_traffic import MERGE_LAG
from producers.publisher import Publisher
from producers.simulator import SPAN, SimulationPlan, simulate
from services import reads
from services.ledger import Ledger

MALFORMED = [
    (b"C-broken", b"{this is not json"),
    (b"C-broken", b'["an", "array"]'),
    (None, b"\xff\xfe not utf-8"),
]


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    console = Console()
    plan = SimulationPlan(
        customers=args.customers,
        partners=args.partners,
        events=args.events,
        seed=args.seed,
        faults=True,
        retail=True,  # returns, replaced cards, merges and sales notes too (section 8)
        # The traffic ends today, so the time-based audiences (new members, lapsed buyers)
        # have members; the seed still decides everything else.
        start=(settings.clock() - timedelta(seconds=SPAN)).replace(
            hour=0, minute=0, second=0, microsecond=0
        ),
    )
    console.print(
        f"[bold]1.[/] Simulating {plan.events} POS interactions "
        f"({plan.customers} customers, {plan.partners} partners, seed {plan.seed}, ~2% faulty,"
        " with returns, replaced cards, merged duplicates and sales notes)"
    )
    console.print(
        "[bold]2.[/] Publishing to [cyan]" + settings.inbound_topic + "[/] and ingesting into "
        "the event store (consumer group join takes a few seconds)"
    )
    started = time.monotonic()
    sent, stats = _publish_and_ingest(settings, plan)
    console.print(
        f"   published {sent} messages; recorded {stats.recorded}, duplicates skipped "
        f"{stats.duplicates}, dead-lettered {sum(stats.rejected.values())} "
        f"in {time.monotonic() - started:.1f} s"
    )
    console.print("[bold]3.[/] Building customer profiles, partner statuses and audiences")
    ledger = bootstrap.ledger(settings)
    done = ledger.project(threading.Event(), until_idle=True)
    console.print(
        f"   projected {done.processed} events; projections at position {done.position}; "
        f"{done.published} audience changes published to [cyan]{settings.audiences_topic}[/]"
    )
    _summary(console, settings, ledger)
    return 0


def _publish_and_ingest(settings: Settings, plan: SimulationPlan) -> tuple[int, IngestStats]:
    """Publish the traffic in chunks of `MERGE_LAG`, each once the one before is ingested
    by a worker running meanwhile: a merge (keyed by its survivor) and the enrollments it
    needs (keyed by their customers) are on other partitions, read in any order, and the
    simulator yields them at least `MERGE_LAG` apart, so every merge is decided on the
    enrollments before it, whatever order the partitions are read in."""
    traffic = list(simulate(plan))
    publisher = Publisher(bootstrap.producer(settings), settings.inbound_topic)
    stop, done = threading.Event(), Future[IngestStats]()
    worker = bootstrap.ingest_worker(settings)
    ledger = bootstrap.ledger(settings)

    def consumed() -> int:
        return sum(
            ledger.read(lambda c: reads.recorded_offsets(c, settings.inbound_topic)).values()
        )

    def ingest() -> None:
        try:
            done.set_result(worker.run(stop))
        except BaseException as error:
            done.set_exception(error)

    before = consumed()
    thread = threading.Thread(target=ingest, name="demo-ingest", daemon=True)
    thread.start()
    for start in range(0, len(traffic), MERGE_LAG):
        for obj in traffic[start : start + MERGE_LAG]:
            publisher.publish(obj)
        if start + MERGE_LAG >= len(traffic):
            for key, value in MALFORMED:
                publisher.publish_raw(key, value)
        sent = publisher.flush()
        while consumed() < before + sent and not done.done():
            time.sleep(0.1)  # polls the ledger's offsets, as `ledger status` would
    stop.set()
    return sent, done.result(timeout=120)


def _summary(console: Console, settings: Settings, ledger: Ledger) -> None:
    at_a_glance = ledger.read(lambda conn: reads.summary(conn, settings.inbound_topic))
    console.print()
    console.print(
        f"[bold]Ledger:[/] {at_a_glance.recorded} interactions recorded as "
        f"{at_a_glance.events} events; {at_a_glance.profiles} customer profiles"
    )
    console.print(
        "   by type: " + ", ".join(f"{kind} {n}" for kind, n in at_a_glance.by_type.items())
    )
    command = sys.argv[0] if sys.argv and sys.argv[0].endswith("ledger") else "ledger"
    if at_a_glance.replaced is not None:
        old, holder, new = at_a_glance.replaced
        console.print(
            f"   a lost card: {holder} replaced {old} by {new} "
            f"([cyan]{command} history {holder}[/] shows both cards)"
        )
    if at_a_glance.merge is not None:
        merged, survivor = at_a_glance.merge
        console.print(
            f"   a duplicate enrollment: {merged} merged into {survivor} "
            f"([cyan]{command} profile {merged}[/] answers the tree's profile)"
        )
    table = Table(title=f"Dead letters on {settings.dead_letter_topic} (all runs)")
    for column in ("error_type", "count", "example reason"):
        table.add_column(column)
    for error_type, count, example in at_a_glance.dead_letters:
        table.add_row(error_type, str(count), example)
    console.print(table)
    people = Table(title="Top customers by EUR spend")
    for column in (
        "customer",
        "name",
        "purchases",
        "spend",
        "returns",
        "net spend",
        "top categories",
        "complaints open",
        "nps",
    ):
        people.add_column(column)
    for p in at_a_glance.top_spenders:
        people.add_row(
            p["customer_id"],
            p["name"] or "",
            str(p["purchase_count"]),
            ", ".join(f"{v} {k}" for k, v in p["total_spend"].items()),
            str(p.get("return_count", 0)),
            ", ".join(f"{v} {k}" for k, v in p.get("net_spend", p["total_spend"]).items()),
            ", ".join(p["top_categories"]),
            str(p["complaints_open"]),
            "" if p["nps"] is None else str(p["nps"]),
        )
    console.print(people)
    _projections(console, settings, ledger)
    console.print(
        f"Try: [cyan]{command} profile C-00001 --json[/], [cyan]{command} partner P-001[/], "
        f"[cyan]{command} audience new_members[/]"
    )
    servers = embedded.running(settings.home)
    if servers is not None and servers.database_url == settings.database_url:
        console.print(
            f"The embedded servers keep running under {settings.home}; "
            f"stop them with [cyan]{command} down[/]."
        )


def _projections(console: Console, settings: Settings, ledger: Ledger) -> None:
    """Audience sizes and partner statuses, as the marketing and account teams see them."""
    audiences = bootstrap.audiences(settings)
    sizes = ledger.read(lambda conn: reads.audience_sizes(conn, audiences))
    statuses = ledger.read(reads.partner_statuses)
    table = Table(title=f"Campaign audiences (changes on {settings.audiences_topic})")
    for column in ("audience", "members", "description"):
        table.add_column(column)
    for row in sizes:
        table.add_row(row["name"], str(row["size"]), row["description"])
    console.print(table)
    partners = Table(title="Partners by status")
    for column in ("status", "partners"):
        partners.add_column(column)
    for status, count in statuses.items():
        partners.add_row(status, str(count))
    console.print(partners)
