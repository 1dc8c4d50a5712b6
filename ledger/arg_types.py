"""Argument types the CLI's parsers share: each refuses a bad value in one line (argparse
prints it as a usage error, exit 2)."""

from __future__ import annotations

import argparse


def count(text: str) -> int:
    """A whole number >= 0 (--events, --customers, --partners, --limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def positive(text: str) -> int:
    """A whole number >= 1."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def port(text: str) -> int:
    """A TCP port, 1-65535: the operating system would take 0 as "any free port" and
    uvicorn would wrap a larger number around, listening where nobody looks."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1 to 65535)")
    return value
