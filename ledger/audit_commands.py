"""`ledger verify`, `ledger digest` and `ledger replay`: the auditors' commands over the use
cases `services.verify`, `services.digest` and `services.replay`, with progress bars (rich,
on stderr) while they work."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ledger import bootstrap
from ledger.settings import Settings
from services.digest import read_digest
from services.replay import REPLAY_SCHEMA
from services.verify import Report


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s")


@contextmanager
def progress_bars() -> Iterator[Callable[[str], Callable[[int, int], None]]]:
    """A factory of progress callbacks, one bar each: events done, rate, time left."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bars:

        def bar(label: str) -> Callable[[int, int], None]:
            task = bars.add_task(label, total=None)
            return lambda done, total: bars.update(task, completed=done, total=total)

        yield bar


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    ledger = bootstrap.ledger(bootstrap.with_servers(settings))
    expected = None if args.digest is None else read_digest(args.digest)
    with progress_bars() as bar:
        report = ledger.verify(
            expected,
            chains=bar("hash chains (records)"),
            rebuild=bar("projection rebuild (position)"),
        )
    if args.json:
        print(json.dumps(_document(report), indent=2))
    else:
        print("\n".join(_lines(report, digest_given=args.digest is not None)))
    return 0 if report.clean else 1


def _lines(report: Report, *, digest_given: bool) -> list[str]:
    """The report as text: each finding and difference on its line, then a summary."""
    lines = [f.line() for f in report.findings] + [d.line() for d in report.differences]
    if report.digest:
        lines.append(f"digest: {report.digest}")
    if report.rebuild:
        lines.append(f"projections: {report.rebuild}")
    found = len(report.findings) + len(report.differences)
    found += bool(report.digest) + bool(report.rebuild)
    checked = f"{report.records} records; projections at position {report.position}"
    digest = "; extends the digest" if digest_given and not report.digest else ""
    lines.append(f"{'no finding' if report.clean else f'{found} finding(s)'} ({checked}{digest})")
    return lines


def _document(report: Report) -> dict[str, Any]:
    return {
        "clean": report.clean,
        "records": report.records,
        "position": report.position,
        "findings": [vars(f) for f in report.findings],
        "differences": [vars(d) for d in report.differences],
        "digest": report.digest,
        "rebuild": report.rebuild,
    }


def cmd_digest(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(bootstrap.ledger(bootstrap.with_servers(settings)).digest()))
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    ledger = bootstrap.ledger(bootstrap.with_servers(settings))
    with progress_bars() as bar:
        done = ledger.replay(args.schema, as_of=args.as_of, progress=bar("replay (position)"))
    when = "" if args.as_of is None else f" as of {args.as_of.isoformat()}"
    print(
        f"replayed the ledger to position {done.position}{when} into schema {args.schema!r} "
        f"(the live projections are untouched): {ledger.replay_summary(args.schema)}"
    )
    if done.unreadable:
        print(
            f"ledger replay: {done.unreadable} record(s) could not be decoded and were left "
            "out; `ledger verify` names them",
            file=sys.stderr,
        )
        return 1
    return 0


def add_parsers(sub: Any, moment: Callable[[str], Any]) -> None:
    verify = sub.add_parser(
        "verify", help="check every hash chain and every projection against a rebuild"
    )
    verify.add_argument(
        "--digest", type=Path, help="a `ledger digest` document: check the ledger extends it"
    )
    verify.add_argument("--json", action="store_true")
    sub.add_parser("digest", help="print the head position and one hash over every stream")
    replay = sub.add_parser(
        "replay", help="rebuild every projection from the first event into a separate schema"
    )
    replay.add_argument("--as-of", type=moment, help="RFC 3339: only events recorded by then")
    replay.add_argument(
        "--schema", type=_schema, default=REPLAY_SCHEMA, help="where to write (emptied first)"
    )


def _schema(text: str) -> str:
    """A schema for the replay: a plain lower-case name, never the live `public`."""
    reserved = text == "public" or text.startswith(("pg_", "information_schema"))
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", text) or reserved:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a lower-case name of letters, digits and _, not public, "
            "pg_* or information_schema"
        )
    return text


COMMANDS = {"verify": cmd_verify, "digest": cmd_digest, "replay": cmd_replay}
