"""`ledger dead-letters` and `ledger redrive`: look at the dead letters and publish them
again to the inbound topic (contract section 8), over the use cases
`services.dead_letter_list` and `services.redrive`.

Both bring the schema up to date first (`ledger init`'s idempotent DDL), so a ledger made
before redrive existed gains its `redriven_at` column instead of failing on it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer

from ledger import bootstrap
from ledger.arg_types import count
from ledger.output import show, show_rows
from ledger.settings import Settings
from producers.publisher import Publisher
from projections.models import ERROR_TYPES
from services import dead_letter_list, redrive


def cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    settings = bootstrap.with_servers(settings)
    bootstrap.init_schema(settings)
    found = bootstrap.ledger(settings).read(
        lambda conn: dead_letter_list.overview(
            conn, settings.inbound_topic, args.error_type, args.limit
        )
    )
    if args.json:
        show(found, as_json=True)
        return 0
    counts = found["counts"]
    total = sum(counts.values())
    by_type = ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "none"
    print(f"{total} dead letter(s) from {settings.inbound_topic}: {by_type}")
    if found["dead_letters"]:
        print(f"the latest {len(found['dead_letters'])}:")
        show_rows(found["dead_letters"], as_json=False)
    return 0


def cmd_redrive(args: argparse.Namespace, settings: Settings) -> int:
    settings = bootstrap.with_servers(settings)
    bootstrap.init_schema(settings)
    selection = redrive.Selection(args.error_type, args.since, args.until)
    producers: list[KafkaProducer] = []

    def publisher() -> Publisher:
        producers.append(bootstrap.producer(settings))
        return Publisher(producers[-1], settings.inbound_topic)

    try:
        done = redrive.redrive(
            bootstrap.ports(settings).connect,
            publisher,
            settings.inbound_topic,
            selection,
            dry_run=args.dry_run,
        )
    finally:
        for producer in producers:
            producer.close()
    if done.headers_left_out:
        print(
            f"ledger redrive: {done.headers_left_out} header(s) left out (a name that is not "
            "UTF-8 or a null value cannot be sent); the dead letters keep them",
            file=sys.stderr,
        )
    if args.json:
        show(done.document(), as_json=True)
    else:
        print(_sentence(done, settings.inbound_topic))
    return 0


def _sentence(done: redrive.Redriven, topic: str) -> str:
    total = sum(done.published.values())
    by_type = ", ".join(f"{kind} {n}" for kind, n in sorted(done.published.items()))
    verb = "would publish" if done.dry_run else "published"
    return (
        f"{verb} {total} dead letter(s) to {topic}{f' ({by_type})' if by_type else ''}; "
        f"{done.skipped_forgotten} emptied by a forget skipped"
    )


def add_parsers(sub: Any, moment: Callable[[str], Any]) -> None:
    look = sub.add_parser("dead-letters", help="dead letters by error type, and the latest")
    look.add_argument("--error-type", choices=ERROR_TYPES, help="only this one")
    look.add_argument("--limit", type=count, default=dead_letter_list.DEFAULT_LIMIT)
    look.add_argument("--json", action="store_true")
    again = sub.add_parser(
        "redrive", help="publish dead letters not redriven yet again to the inbound topic"
    )
    again.add_argument("--error-type", choices=ERROR_TYPES, help="only this one")
    again.add_argument(
        "--since", type=moment, help="RFC 3339: dead-lettered at or after (inclusive)"
    )
    again.add_argument("--until", type=moment, help="RFC 3339: dead-lettered before (exclusive)")
    again.add_argument("--dry-run", action="store_true", help="only count what would be sent")
    again.add_argument("--json", action="store_true")


COMMANDS = {"dead-letters": cmd_dead_letters, "redrive": cmd_redrive}
