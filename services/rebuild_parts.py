"""Running a rebuild's parts (`services.replay.Part`): `workers` at a time, each in a
process of its own, so the folds of a large log use every core.

A part is CPU-bound Python (decoding, folding, evaluating audiences), so threads would take
turns on one core; processes do not. They are forked: a part needs the use case's ports
and the audience definitions, which are closures and parsed objects a spawned process
could not be handed. A forked child only opens connections of its own, never uses one of
the parent's, and ends with `os._exit` (multiprocessing's fork start method), so nothing
the parent holds is closed or flushed twice. One part (a small log) runs in this process.
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from multiprocessing.sharedctypes import Synchronized
from typing import Protocol

POLL_SECONDS = 0.25  # how often the parent reports the children's progress


class Job(Protocol):
    @property
    def head(self) -> int: ...

    @property
    def parts(self) -> int: ...

    def __call__(self, part: int, progress: Callable[[int], object]) -> int:
        """Rebuild part `part`; return how many records it could not decode."""


def run(job: Job, workers: int, progress: Callable[[int, int], object]) -> int:
    """Every part of `job`, `workers` at a time; return the records left unreadable."""
    if job.parts == 1:
        return job(0, lambda position: progress(position, job.head))
    unreadable = 0
    for first in range(0, job.parts, workers):
        wave = range(first, min(first + workers, job.parts))
        unreadable += _wave(job, wave, progress)
    return unreadable


def _wave(job: Job, wave: range, progress: Callable[[int, int], object]) -> int:
    """Parts `wave` at once, in forked processes; re-raise the first one's failure."""
    context = multiprocessing.get_context("fork")
    children = []
    for part in wave:
        reached: Synchronized[int] = context.Value("q", 0, lock=False)  # type: ignore[assignment]
        receive, send = context.Pipe(duplex=False)
        child = context.Process(
            target=_child, args=(job, part, reached, send), name=f"rebuild-part-{part}"
        )
        child.start()
        send.close()
        children.append((child, reached, receive))
    done = wave.start * job.head
    while alive := [child for child, _, _ in children if child.is_alive()]:
        progress((done + sum(r.value for _, r, _ in children)) // job.parts, job.head)
        alive[0].join(POLL_SECONDS)
    unreadable = 0
    for child, _, receive in children:
        _, answer = receive.recv() if receive.poll() else ("error", _died(child.exitcode))
        child.join()
        if isinstance(answer, BaseException):
            raise answer
        unreadable += int(answer)
    return unreadable


def _child(job: Job, part: int, reached: Synchronized[int], send: Pipe) -> None:
    try:
        count = job(part, lambda position: setattr(reached, "value", position))
        send.send(("ok", count))
    except BaseException as error:  # the parent re-raises it: verify reports it
        send.send(("error", _picklable(error)))


def _picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _died(exitcode: int | None) -> BaseException:
    return RuntimeError(f"a rebuild process ended without an answer (exit code {exitcode})")
