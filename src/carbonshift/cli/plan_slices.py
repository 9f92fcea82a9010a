"""`carbonshift plan DIR` on every usable CPU from end to end: each forked worker parses, plans and
renders a contiguous slice of the spec files, and the parent writes the slices' lines in order.

Parsing and rendering already ran on forked workers, but the specs came back to this process to be
planned together on one CPU (with their pickling, about a third of the command's wall time for
10,000 specs on two CPUs). A slice planned on its own gives each of its specs the plan the whole
batch gives it (`plan_batch`'s plans are `plan()`'s, spec by spec), so the slices' lines are the
batch's lines, with two exceptions, where the caller plans the batch as before instead:

- a source that asks a service elsewhere (`intensity.base.is_remote`): each worker fetches its own
  series, and would ask that service once per worker (quotas, rate limits);
- a notice (a source that failed, a stale cache): an advice lists the notices its service made
  before it, so a spec's notices depend on the specs planned before it, which a worker does not see.

A slice with invalid specs reports them (the caller prints every problem, in file order, and plans
nothing); a slice whose planning raised, or whose child failed, sends the caller back to planning the
batch itself, which then raises or prints what one process would.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from carbonshift import runtime
from carbonshift.advisor import advise_many
from carbonshift.cli.parallel_lines import in_slices, worker_count
from carbonshift.clock import FixedClock
from carbonshift.config.jobspec import JobSpec, load_jobspec
from carbonshift.errors import CarbonshiftError, UserInputError
from carbonshift.intensity.base import is_remote
from carbonshift.intensity.registry import build_sources

if TYPE_CHECKING:
    from carbonshift.config import Settings
    from carbonshift.intensity.types import Signal


def load_or_problem(path: Path, at: datetime) -> tuple[JobSpec | None, str]:
    """A spec, or why not: a result that pickles, so that forked workers can parse a large batch."""
    try:
        return load_jobspec(path, now=at), ""
    except UserInputError as exc:
        return None, str(exc)


@dataclass(frozen=True)
class Sliced:
    """The batch as its slices came back: every invalid spec's problem, in file order, or else the
    JSON lines of every spec, encoded, slice by slice."""

    problems: list[str]
    parts: list[bytes]


@dataclass(frozen=True)
class _Slice:
    problems: list[str]
    lines: bytes | None  # None: planning raised (the caller plans the batch and raises it)
    notices: tuple[str, ...]


def plan_in_slices(
    files: Sequence[Path],
    *,
    at: datetime,
    signal: Signal,
    settings: Settings,
    top: int | None,
    workers: int,
    encoding: str,
    errors: str,
) -> Sliced | None:
    """The batch planned on up to `workers` processes, or None when the caller must plan it itself:
    fewer than MIN_PARALLEL_ITEMS files or one worker, no fork, a remote source, a notice in any
    slice, or a slice whose planning raised."""
    n = worker_count(len(files), workers)
    if n == 1:
        return None
    if any(is_remote(source) for source in build_sources(settings)):
        return None
    work = partial(
        _planned, at=at, signal=signal, settings=settings, top=top, encoding=encoding, errors=errors
    )
    slices = in_slices(files, n, work, lambda part: pickle.dumps(work(part)), _from_child)
    problems = [p for part in slices for p in part.problems]
    if problems:
        return Sliced(problems, [])
    if any(part.lines is None or part.notices for part in slices):
        return None
    return Sliced([], [part.lines for part in slices if part.lines is not None])


def _planned(
    files: Sequence[Path],
    *,
    at: datetime,
    signal: Signal,
    settings: Settings,
    top: int | None,
    encoding: str,
    errors: str,
) -> _Slice:
    """One slice parsed, planned together and rendered, with a catalog and intensity service of its
    own, built after the fork and without the intensity cache: it holds only remote sources' answers,
    and workers opening a new cache file at once raced for SQLite's lock ("database is locked")."""
    parsed = [load_or_problem(f, at) for f in files]
    problems = [problem for spec, problem in parsed if spec is None]
    if problems:
        return _Slice(problems, None, ())
    specs = [spec for spec, _ in parsed if spec is not None]
    service = runtime.build_service(settings, clock=FixedClock(at), cache=False)
    try:
        advices = advise_many(
            specs, catalog=runtime.build_catalog(settings), service=service, now=at, signal=signal
        )
    except CarbonshiftError:
        return _Slice([], None, tuple(service.notices))
    text = "".join(advice.to_json_line(top=top) + "\n" for advice in advices)
    return _Slice([], text.encode(encoding, errors), tuple(service.notices))


def _from_child(data: bytes) -> _Slice:
    loaded = pickle.loads(data)  # our own child's file, in our private directory
    if not isinstance(loaded, _Slice):
        raise TypeError("not a slice's outcome")
    return loaded


__all__ = ["Sliced", "load_or_problem", "plan_in_slices"]
