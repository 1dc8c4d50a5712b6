"""Running the parts of an audit job (a rebuild's, `services.replay.Part`; the chain
check's, `services.verify.ChainPart`) `workers` at a time, each in a process of its own,
so that work on a large log uses every core.

A part is CPU-bound Python (decoding, hashing, folding, evaluating audiences), so threads
would take turns on one core; processes do not. They are forked: a part needs the use
case's ports and the audience definitions, closures and parsed objects that a spawned
process could not be handed. A forked child only opens connections of its own, never uses
one of the parent's, and ends with `os._exit` (multiprocessing's fork start method), so
nothing the parent holds is closed or flushed twice. A job of one part runs in this
process.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Protocol, TypeVar

POLL_SECONDS = 0.25  # how often the parent reports the children's progress
T = TypeVar("T", covariant=True)


class Job(Protocol[T]):
    @property
    def parts(self) -> int: ...

    def __call__(self, part: int, progress: Callable[[int], object]) -> T:
        """Do part `part`, reporting its share of the progress so far as it goes (the
        parts' shares add up to the job's progress)."""


def run(job: Job[Any], workers: int, progress: Callable[[int], object]) -> list[Any]:
    """Every part of `job`, `workers` at a time; each part's result, in part order. A
    part's exception is raised here (the first one's)."""
    if job.parts == 1:
        return [job(0, progress)]
    results: list[Any] = []
    shares: list[Synchronized[int]] = []
    for first in range(0, job.parts, workers):
        wave = range(first, min(first + workers, job.parts))
        results += _wave(job, wave, shares, progress)
    return results


def _wave(
    job: Job[Any],
    wave: range,
    shares: list[Synchronized[int]],
    progress: Callable[[int], object],
) -> list[Any]:
    context = multiprocessing.get_context("fork")
    children = []
    for part in wave:
        share: Synchronized[int] = context.Value("q", 0, lock=False)  # type: ignore[assignment]
        shares.append(share)
        receive, send = context.Pipe(duplex=False)
        child = context.Process(
            target=_child, args=(job, part, share, send), name=f"ledger-part-{part}"
        )
        child.start()
        send.close()
        children.append((child, receive))
    answers: dict[int, Any] = {}
    while len(answers) < len(children):
        # Read each answer as soon as it comes: a large one (a tampered ledger's findings)
        # fills the pipe, and its child cannot end before it is read.
        for i, (child, receive) in enumerate(children):
            if i not in answers and (receive.poll() or not child.is_alive()):
                answers[i] = receive.recv() if receive.poll() else _died(child.exitcode)
        progress(sum(share.value for share in shares))
        waiting = [
            x for i, (c, r) in enumerate(children) if i not in answers for x in (c.sentinel, r)
        ]
        if waiting:
            wait(waiting, POLL_SECONDS)
    results = []
    for i, (child, _) in enumerate(children):
        child.join()
        if isinstance(answers[i], BaseException):
            raise answers[i]
        results.append(answers[i])
    return results


def _child(job: Job[Any], part: int, share: Synchronized[int], send: Pipe) -> None:
    def report(done: int) -> None:
        share.value = done

    try:
        send.send(job(part, report))
    except BaseException as error:  # the parent raises it: `ledger verify` reports it
        send.send(_picklable(error))


def _picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _died(exitcode: int | None) -> BaseException:
    return RuntimeError(f"a part's process ended without an answer (exit code {exitcode})")
