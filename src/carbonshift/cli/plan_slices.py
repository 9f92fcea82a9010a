"""`carbonshift plan DIR` on every usable CPU from end to end: each forked worker parses, plans and
renders a contiguous slice of the spec files, and the slices' lines are written in order, each
straight from its worker (`streamed_slices`).

Parsing and rendering already ran on forked workers, but the specs came back to this process to be
planned together on one CPU (with their pickling, about a third of the command's wall time for
10,000 specs on two CPUs). A slice planned on its own gives each of its specs the plan the whole
batch gives it (`plan_batch`'s plans are `plan()`'s, spec by spec), so the slices' lines are the
batch's lines, with two exceptions, where the caller plans the batch as before instead:

- a source that asks a service elsewhere (`intensity.base.is_remote`): each worker fetches its own
  series, and would ask that service once per worker (quotas, rate limits);
- a notice (a source that failed, a stale cache): an advice lists the notices its service made
  before it, so a spec's notices depend on the specs planned before it, which a worker does not see.

A slice with invalid specs reports them (the caller prints every problem, in file order, and nothing
is written); a slice whose planning raised sends the caller back to planning the batch itself, which
then raises or prints what one process would; a slice whose child failed is done again here.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from carbonshift import runtime
from carbonshift.advisor import advise_many
from carbonshift.cli.parallel_lines import worker_count
from carbonshift.cli.streamed_slices import stream_slices
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
    """How the batch went in slices: every invalid spec's problem, in file order (nothing written),
    or none, and every spec's JSON line written to the stream, in file order."""

    problems: list[str]


@dataclass(frozen=True)
class _Status:
    problems: list[str]
    planned: bool  # False: planning raised (the caller plans the batch and raises it)
    notices: tuple[str, ...]


def plan_in_slices(
    files: Sequence[Path],
    *,
    at: datetime,
    signal: Signal,
    settings: Settings,
    top: int | None,
    workers: int,
    stream: TextIO,
) -> Sliced | None:
    """The batch planned on up to `workers` processes and its lines written to `stream`, or None when
    the caller must plan it itself (nothing written): fewer than MIN_PARALLEL_ITEMS files or one
    worker, no fork, a stream without a byte buffer, a remote source, a notice in any slice, or a
    slice whose planning raised."""
    n = worker_count(len(files), workers)
    out: BinaryIO | None = getattr(stream, "buffer", None)
    if n == 1 or out is None:
        return None
    if any(is_remote(source) for source in build_sources(settings)):
        return None
    work = partial(
        _planned,
        at=at,
        signal=signal,
        settings=settings,
        top=top,
        encoding=stream.encoding,
        errors=stream.errors or "strict",
    )
    stream.flush()  # what the stream already holds goes first
    statuses = stream_slices(files, n, work, _to_write, out)
    problems = [p for status in statuses for p in status.problems]
    if problems:
        return Sliced(problems)
    return Sliced([]) if _to_write(statuses) else None


def _to_write(statuses: list[_Status]) -> bool:
    """Whether the slices' lines are the batch's: every spec valid, every slice planned, no notice."""
    return all(s.planned and not s.problems and not s.notices for s in statuses)


def _planned(
    files: Sequence[Path],
    *,
    at: datetime,
    signal: Signal,
    settings: Settings,
    top: int | None,
    encoding: str,
    errors: str,
) -> tuple[_Status, bytes | None]:
    """One slice parsed, planned together and rendered, with a catalog and intensity service of its
    own, built after the fork and without the intensity cache: it holds only remote sources' answers,
    and workers opening a new cache file at once raced for SQLite's lock ("database is locked")."""
    parsed = [load_or_problem(f, at) for f in files]
    problems = [problem for spec, problem in parsed if spec is None]
    if problems:
        return _Status(problems, False, ()), None
    specs = [spec for spec, _ in parsed if spec is not None]
    service = runtime.build_service(settings, clock=FixedClock(at), cache=False)
    try:
        advices = advise_many(
            specs, catalog=runtime.build_catalog(settings), service=service, now=at, signal=signal
        )
    except CarbonshiftError:
        return _Status([], False, tuple(service.notices)), None
    data = b"".join([advice.json_line(top=top) for advice in advices])  # the lines, as UTF-8
    if codecs.lookup(encoding).name != "utf-8":  # the stream's own encoding, as it would write them
        data = data.decode().encode(encoding, errors)
    return _Status([], True, tuple(service.notices)), data


__all__ = ["Sliced", "load_or_problem", "plan_in_slices"]
