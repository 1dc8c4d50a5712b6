"""Personal-data rights: `ledger forget` (GDPR art. 17) and `ledger export` (art. 15, 20),
the same for the CLI and the API (`ledger.api_rights`).

Forgetting is the use case `services.forget`: recorded and the key destroyed in one
transaction; the projections forget the person when they reach that event. So that
`forget` returns with nothing personal left to read, the CLI then brings the projections
there (`services.project.until_position`): it runs them itself when no `ledger project` is
running, and otherwise waits for the one that is.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from domain.forgetting import check_reason
from ledger import bootstrap
from ledger.errors import describe_error
from ledger.output import answer, show
from ledger.settings import Settings
from projections import models
from services.export import CustomerErased

PROJECTED_WAIT = 60.0  # seconds `ledger forget` waits for a running projector


def reason_text(text: str) -> str:
    """`--reason`: one line of 1 to 500 visible characters, kept for ever in the clear."""
    try:
        return check_reason(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    ledger = bootstrap.ledger(bootstrap.with_servers(settings))
    try:
        found = ledger.forget(args.customer_id, args.reason)
    except ValueError as refused:
        print(f"ledger forget: {refused}", file=sys.stderr)
        return 1
    if found is None:
        print(f"ledger forget: no customer {args.customer_id!r} in the ledger", file=sys.stderr)
        return 1
    if not args.json:
        done = "forgotten" if found.first else "was already forgotten"
        print(
            f"customer {found.customer_id!r} {done}: key destroyed, customer_forgotten "
            f"recorded at position {found.position} (cards closed: {', '.join(found.cards)})"
        )
    try:
        projected = ledger.until_projected(found.position, PROJECTED_WAIT)
    except Exception as error:  # the forgetting stands; say what did not happen yet
        print(
            f"ledger forget: recorded at position {found.position} and the key destroyed, but "
            f"the projections could not run ({describe_error(error)}): the profile shows the "
            "person until `ledger project` runs",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps({**asdict(found), "projected": projected}, indent=2))
    elif projected:
        print("every projection has forgotten the person, who left every audience (erased)")
    else:
        print(
            f"the projections have not reached position {found.position} yet: the profile "
            "still shows the person until `ledger project` gets there"
        )
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    settings = bootstrap.with_servers(settings)
    try:
        found = bootstrap.ledger(settings).export(args.customer_id)
    except CustomerErased as erased:
        print(f"ledger export: {erased}", file=sys.stderr)
        return 1
    if found is None:
        print(f"ledger export: no customer {args.customer_id!r} in the ledger", file=sys.stderr)
        return 1
    show(answer(models.Export, found), as_json=True)
    return 0


def add_parsers(sub: Any) -> None:
    forget_ = sub.add_parser(
        "forget", help="forget a customer: destroy their key, erase them from every projection"
    )
    forget_.add_argument("customer_id")
    forget_.add_argument(
        "--reason", required=True, type=reason_text, help="why (kept in the ledger: no names)"
    )
    forget_.add_argument("--json", action="store_true")
    export_ = sub.add_parser("export", help="everything the ledger holds about a customer (JSON)")
    export_.add_argument("customer_id")


COMMANDS = {"forget": cmd_forget, "export": cmd_export}
