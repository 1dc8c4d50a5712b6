"""The commands behind `ledger`: each a few lines over `ledger.bootstrap`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from domain.personal import PERSONAL_FIELDS
from ledger import (
    api_serve,
    audit_commands,
    bootstrap,
    dead_letter_commands,
    embedded,
    reconnect,
    rights,
)
from ledger.ingest_worker import IngestStats
from ledger.output import answer, show, show_rows
from ledger.settings import Settings
from producers.jsonlines import read_lines
from producers.publisher import Publisher, encode
from producers.simulator import SimulationPlan, simulate
from projections import models
from services import reads

Command = Callable[[argparse.Namespace, Settings], int]


def personal_text(type_name: str, payload: dict[str, Any]) -> str:
    """The personal fields of a recorded event, opened or `[erased]`, for the history table."""
    fields = sorted(PERSONAL_FIELDS.get(type_name, ()))
    return " ".join(f"{f}={payload[f]}" for f in fields if payload.get(f) is not None)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    return COMMANDS[args.command](args, settings)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so workers stop cleanly between batches."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def ready(settings: Settings) -> Settings:
    """Settings with reachable servers and the ledger's topics and schema in place."""
    settings = bootstrap.with_servers(settings)
    bootstrap.init_schema(settings)
    bootstrap.init_topics(settings)
    return settings


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    servers = embedded.up(settings.home)
    settings = ready(settings.with_servers(servers.database_url, servers.kafka_bootstrap))
    print(f"export LEDGER_DATABASE_URL={settings.database_url}")
    print(f"export LEDGER_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}")
    if servers.broker_started:
        print("# a new broker started: its topics are empty", file=sys.stderr)
    return 0


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    for line in embedded.down(settings.home) or ["nothing was running"]:
        print(line)
    return 0


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    settings = ready(settings)
    print(f"topics and schema ready on {settings.kafka_bootstrap} and the database")
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    settings = bootstrap.with_servers(settings)
    source: BinaryIO = sys.stdin.buffer if args.file in (None, "-") else open(args.file, "rb")  # noqa: SIM115
    publisher = Publisher(bootstrap.producer(settings), settings.inbound_topic)
    invalid = 0
    with source:
        for line in read_lines(source):
            if line.obj is None:
                invalid += 1
                print(f"line {line.number}: {line.error}", file=sys.stderr)
            else:
                publisher.publish(line.obj, line.raw)
    sent = publisher.flush()
    print(
        f"published {sent} interaction(s) to {settings.inbound_topic}; "
        f"{invalid} invalid line(s) not sent"
    )
    return 1 if invalid else 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    plan = SimulationPlan(
        customers=args.customers,
        partners=args.partners,
        events=args.events,
        seed=args.seed,
        faults=args.faults,
        retail=args.retail,
    )
    if args.out:
        with Path(args.out).open("wb") as out:
            for obj in simulate(plan):
                out.write(encode(obj) + b"\n")
        print(f"wrote {plan.events} interaction(s) to {args.out}")
        return 0
    settings = bootstrap.with_servers(settings)
    bootstrap.init_topics(settings)
    publisher = Publisher(bootstrap.producer(settings), settings.inbound_topic)
    for obj in simulate(plan):
        publisher.publish(obj)
    print(f"published {publisher.flush()} interaction(s) to {settings.inbound_topic}")
    return 0


def cmd_consume(args: argparse.Namespace, settings: Settings) -> int:
    settings = ready(settings)
    stop = stop_on_signals()
    runs: list[IngestStats] = []

    def run() -> None:
        worker = bootstrap.ingest_worker(settings)
        runs.append(worker.stats)  # filled batch by batch, kept if the run fails
        worker.run(stop, until_idle=args.until_idle)

    reconnect.keep_running("consume", settings.database_url or "", run, stop)
    rejected = sum((stats.rejected for stats in runs), Counter[str]())
    print(
        f"recorded {sum(s.recorded for s in runs)}, duplicates {sum(s.duplicates for s in runs)}, "
        f"dead-lettered: {', '.join(f'{k} {v}' for k, v in sorted(rejected.items())) or 'none'}"
    )
    return 0


def cmd_project(args: argparse.Namespace, settings: Settings) -> int:
    settings = ready(settings)
    ledger = bootstrap.ledger(settings)
    stop = stop_on_signals()
    tally = reconnect.ProjectionTally()

    def waiting() -> None:
        print(
            "ledger project: another projection runner is working on this database; "
            "waiting for it to stop",
            file=sys.stderr,
        )

    def run() -> None:
        tally.starting(ledger.position())
        tally.done(ledger.project(stop, until_idle=args.until_idle, waiting=waiting))

    reconnect.keep_running("project", settings.database_url or "", run, stop)
    print(
        f"projected {tally.processed} event(s); projections at position {tally.position}; "
        f"{tally.published} audience change(s) published to {settings.audiences_topic}"
    )
    return 0


def cmd_profile(args: argparse.Namespace, settings: Settings) -> int:
    ledger = bootstrap.ledger(bootstrap.with_servers(settings))
    found = ledger.read(lambda conn: reads.profile(conn, args.customer_id, args.as_of))
    if found is None:
        when = "" if args.as_of is None else f" as of {args.as_of.isoformat()}"
        print(
            f"ledger profile: no customer {args.customer_id!r} in the ledger{when}", file=sys.stderr
        )
        return 1
    show(answer(models.Profile, found), as_json=args.json)
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    ledger = bootstrap.ledger(bootstrap.with_servers(settings))
    found = ledger.read(lambda conn: reads.any_history(conn, args.id))
    if not found:
        print(f"ledger history: no customer or partner {args.id!r} in the ledger", file=sys.stderr)
        return 1
    document = answer(models.History, {"events": found})
    if args.json:
        show(document, as_json=True)
    else:
        show_rows(history_rows(document["events"]), as_json=False)
    return 0


def history_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history table's rows: personal fields on one line, hashes shortened."""
    return [
        {
            "position": e["position"],
            "stream": e["stream"],
            "version": e["version"],
            "type": e["type"],
            "occurred_at": e["occurred_at"],
            "recorded_at": e["recorded_at"],
            "personal": personal_text(e["type"], e["payload"]),
            "hash": e["hash"][:16] + "...",
        }
        for e in events
    ]


def cmd_partner(args: argparse.Namespace, settings: Settings) -> int:
    ledger = bootstrap.ledger(bootstrap.with_servers(settings))
    today = settings.clock().date()
    found = ledger.read(lambda conn: reads.partner(conn, args.partner_id, today))
    if found is None:
        print(f"ledger partner: no partner {args.partner_id!r} in the ledger", file=sys.stderr)
        return 1
    show(answer(models.PartnerStatus, found), as_json=args.json)
    return 0


def cmd_audience(args: argparse.Namespace, settings: Settings) -> int:
    audiences = bootstrap.audiences(settings)
    ledger = bootstrap.ledger(bootstrap.with_servers(settings))
    if args.name is None:
        show_rows(
            ledger.read(lambda conn: reads.audience_sizes(conn, audiences)), as_json=args.json
        )
        return 0
    found = ledger.read(lambda conn: reads.audience(conn, audiences, args.name))
    if found is None:
        known = ", ".join(a.name for a in audiences)
        print(f"ledger audience: no audience {args.name!r} (known: {known})", file=sys.stderr)
        return 1
    if not found.applied:
        print(
            f"ledger audience: {args.name!r} is defined differently from what `ledger "
            "project` last applied; members follow once it has run",
            file=sys.stderr,
        )
    if args.json:
        document = {**found.summary, "members": found.members}
        show(answer(models.AudienceMembers, document), as_json=True)
    else:
        summary = found.summary
        print(f"{summary['name']}: {summary['description']} (members: {summary['size']})")
        show_rows(found.members, as_json=False)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.api import create_app

    sock = api_serve.listen(args.host, args.port)  # a port in use: one line, before any work
    with sock:
        settings = ready(settings)
        app = create_app(settings)  # refuses a bad audiences file before serving
        where = api_serve.address(args.host, args.port)
        print(f"serving the read API on http://{where} (OpenAPI: /openapi.json)")
        sys.stdout.flush()
        if args.workers == 1:
            if not api_serve.serve_one(app, sock):
                print("ledger serve: the API did not start (the reason is above)", file=sys.stderr)
                return 1
            return 0
        # Worker processes build their own app from the environment: hand them the servers.
        os.environ["LEDGER_DATABASE_URL"] = settings.database_url or ""
        os.environ["LEDGER_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap or ""
        api_serve.serve_many(sock, args.workers, os.environ)
    return 0


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from domain.interactions import interaction_json_schema

    print(json.dumps(interaction_json_schema(), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.demo import run_demo

    bootstrap.audiences(settings)  # a bad LEDGER_AUDIENCES file is refused before any work

    return run_demo(ready(settings), args)


COMMANDS: dict[str, Command] = {
    "up": cmd_up,
    "down": cmd_down,
    "init": cmd_init,
    "demo": cmd_demo,
    "produce": cmd_produce,
    "simulate": cmd_simulate,
    "consume": cmd_consume,
    "project": cmd_project,
    "profile": cmd_profile,
    "partner": cmd_partner,
    "history": cmd_history,
    "audience": cmd_audience,
    "serve": cmd_serve,
    "schema": cmd_schema,
    **audit_commands.COMMANDS,
    **rights.COMMANDS,
    **dead_letter_commands.COMMANDS,
}
