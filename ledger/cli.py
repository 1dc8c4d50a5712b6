"""The `ledger` console script: parse, call into the composition root, print.

Exit codes: 0 success; 1 ran but found a problem (invalid input, a clear error); 2 usage.
Every error is one sentence on stderr, never a bare traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime

from ledger import audit_commands, commands, dead_letter_commands, rights
from ledger.arg_types import count, port, positive
from ledger.errors import describe_error


def moment(text: str) -> datetime:
    """An RFC 3339 time with a time zone, for --as-of."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (add Z or +01:00)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger", description="Event-sourced customer interaction ledger."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", help="start the embedded PostgreSQL and broker; print export lines")
    sub.add_parser("down", help="stop the embedded servers (the database stays)")
    sub.add_parser("init", help="create topics and schema on the configured servers")
    demo = sub.add_parser("demo", help="simulate POS traffic, ingest it, project it, summarise")
    demo.add_argument("--events", type=count, default=8000)
    demo.add_argument("--customers", type=count, default=300)
    demo.add_argument("--partners", type=count, default=12)
    demo.add_argument("--seed", type=int, default=7)
    produce = sub.add_parser("produce", help="publish JSON Lines interactions (file or stdin)")
    produce.add_argument("file", nargs="?", help="JSON Lines file; stdin when absent or '-'")
    simulate = sub.add_parser("simulate", help="generate synthetic POS traffic")
    simulate.add_argument("--customers", type=count, default=200)
    simulate.add_argument("--partners", type=count, default=10)
    simulate.add_argument("--events", type=count, default=2000)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--faults", action="store_true", help="mix in ~2%% bad interactions")
    simulate.add_argument(
        "--retail",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="section 8's types too: returns, lost cards, merged duplicates, sales notes "
        "(--no-retail: the v1 types only)",
    )
    simulate.add_argument("--out", help="write JSON Lines to this file instead of Kafka")
    consume = sub.add_parser("consume", help="run the ingest worker")
    consume.add_argument(
        "--until-idle", action="store_true", help="return once the topic is drained"
    )
    project = sub.add_parser("project", help="run the projection workers")
    project.add_argument("--until-idle", action="store_true", help="return once caught up")
    profile = sub.add_parser("profile", help="one customer's profile")
    profile.add_argument("customer_id")
    profile.add_argument(
        "--as-of", type=moment, help="RFC 3339: the profile from the events recorded by then"
    )
    profile.add_argument("--json", action="store_true")
    history = sub.add_parser("history", help="the recorded events of a customer or partner")
    history.add_argument("id")
    history.add_argument("--json", action="store_true")
    partner = sub.add_parser("partner", help="one partner's status")
    partner.add_argument("partner_id")
    partner.add_argument("--json", action="store_true")
    audience = sub.add_parser("audience", help="members of one audience (all sizes without NAME)")
    audience.add_argument("name", nargs="?")
    audience.add_argument("--json", action="store_true")
    serve = sub.add_parser("serve", help="run the HTTP read API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=port, default=8000, help="TCP port, 1 to 65535")
    serve.add_argument(
        "--workers", type=positive, default=1, help="server processes (one per core)"
    )
    sub.add_parser("schema", help="print the inbound JSON Schema")
    audit_commands.add_parsers(sub, moment)
    rights.add_parsers(sub)
    dead_letter_commands.add_parsers(sub, moment)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return commands.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # one clear line, never a traceback
        print(f"ledger {args.command}: {describe_error(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
