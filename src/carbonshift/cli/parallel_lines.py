"""Render many text lines on every usable CPU: `carbonshift plan DIR` prints one JSON line per spec,
and for thousands of specs the rendering is the longest phase (pure Python, one spec at a time).

The items are split into contiguous slices, one per worker. Workers are started with `os.fork()` after
the items exist, so each child reads them copy-on-write (nothing is pickled), renders its slice,
encodes it as the stream would and streams the bytes to the parent through a pipe
(`streamed_slices`), then leaves with `os._exit`: no atexit handler, no `finally` of the parent's
frames and no inherited stdio buffer runs in it. The parent renders the first slice itself and writes
every slice to the stream's byte buffer in order (no decoding and re-encoding) once all are rendered;
a slice whose child failed is rendered again in the parent, so the output is always whole and the same
bytes as one process writes (a line that cannot be rendered or encoded fails in the parent, before any
is written).

`in_slices` is the same sharing for work whose result goes back to the parent (`parallel_map`): each
child's result through its own file in a private temporary directory.

A forked child of a process with other threads only gets the forking thread: it must take no lock
another thread may hold. `render` here is `Advice.to_json_line`, which builds dicts and encodes them
(no logging, no I/O, no lock of ours); the intensity service's thread pool has been joined by then.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, TextIO, TypeVar

from carbonshift.cli.streamed_slices import stream_slices

T = TypeVar("T")
R = TypeVar("R")

# below this many items the fork, files and waits cost about what the rendering they share out saves
# (bench_cli_plan_dir --single on 2 CPUs: 600 specs 0.82 -> 0.86 s of wall, 1,000 specs 1.05 -> 1.02 s)
MIN_PARALLEL_ITEMS = 1000


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. under taskset or a container's
    cpuset), else every CPU."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        return max(1, len(getaffinity(0)))
    return os.cpu_count() or 1


def can_fork() -> bool:
    return hasattr(os, "fork") and hasattr(os, "waitpid")


def worker_count(items: int, workers: int) -> int:
    """How many processes share `items` items among up to `workers`: 1 (this one alone) below
    MIN_PARALLEL_ITEMS items or where the platform cannot fork."""
    if items < MIN_PARALLEL_ITEMS or not can_fork():
        return 1
    return max(1, min(workers, items))


def write_lines(items: Sequence[T], render: Callable[[T], str], workers: int, stream: TextIO) -> None:
    """Write `"".join(render(item) + "\\n" for item in items)` to `stream`, rendered on up to `workers`
    processes when there are at least MIN_PARALLEL_ITEMS items, the platform can fork and the stream
    has a byte buffer; in this process otherwise. Either way the same bytes, and nothing is written
    unless every line was rendered and encoded (in the stream's encoding and errors)."""
    n = worker_count(len(items), workers)
    out: BinaryIO | None = getattr(stream, "buffer", None)
    with gc_paused():
        if n == 1 or out is None:
            stream.write(_render(items, render))
            return
        encoding, errors = stream.encoding, stream.errors or "strict"

        def encoded(part: Sequence[T]) -> tuple[int, bytes]:
            return len(part), _render(part, render).encode(encoding, errors)

        stream.flush()  # what the stream already holds goes first
        stream_slices(items, n, encoded, _every_slice, out)


def _every_slice(statuses: list[int]) -> bool:
    """Every slice rendered (one that failed was rendered again here, or raised): write them all."""
    return True


def in_slices(
    items: Sequence[T],
    n: int,
    here: Callable[[Sequence[T]], R],
    in_child: Callable[[Sequence[T]], bytes],
    from_child: Callable[[bytes], R],
) -> list[R]:
    """`[here(part) for part in parts]` for `n` contiguous slices of `items`: the first slice here, the
    others in forked children, each writing `in_child(part)` to its own file that the parent reads
    back with `from_child`; a slice whose child failed, or whose bytes `from_child` refuses, is done
    here (and raises here what it raises), so the result is always whole and in order."""
    import shutil  # here: `carbonshift plan SPEC` starts without them (tempfile brings random, hashlib)
    import tempfile

    bounds = [len(items) * i // n for i in range(n + 1)]
    slices = [items[bounds[i] : bounds[i + 1]] for i in range(n)]
    tmp = Path(tempfile.mkdtemp(prefix="carbonshift-parts-"))  # private: mode 0700
    children: dict[int, int] = {}  # slice index -> pid, until reaped
    try:
        sys.stdout.flush()  # a child never flushes what it inherits, but leave it nothing to flush
        sys.stderr.flush()
        for i in range(1, n):
            pid = os.fork()
            if pid == 0:  # the child (its collector paused, as here): work, write, leave; never returns
                _child(slices[i], in_child, tmp / f"slice-{i}")
            children[i] = pid
        parts = [here(slices[0])]
        for i in range(1, n):
            _, status = os.waitpid(children.pop(i), 0)
            done = _read(tmp / f"slice-{i}", from_child) if os.waitstatus_to_exitcode(status) == 0 else None
            parts.append(done if done is not None else here(slices[i]))
        return parts
    finally:
        for pid in children.values():  # only if this process failed or was interrupted meanwhile
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic collector off while a batch is parsed, planned and rendered: each phase makes
    objects that refcounting frees (or that live to the end: the specs, the plans), yet they trigger
    collections, and a full one walks every spec and plan of the batch (~12 % of rendering 5,000
    plans cold, in process). Restored as found, also after an error."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _render(items: Sequence[T], render: Callable[[T], str]) -> str:
    return "".join(render(item) + "\n" for item in items)


def _child(items: Sequence[T], work: Callable[[Sequence[T]], bytes], path: Path) -> None:
    code = 1
    try:
        path.write_bytes(work(items))
        code = 0
    except BaseException:  # the parent does this slice itself (and raises what it raises)
        pass
    finally:
        os._exit(code)


def _read(path: Path, from_child: Callable[[bytes], R]) -> R | None:
    try:
        return from_child(path.read_bytes())
    except Exception:  # unreadable or refused: the parent does the slice itself
        return None
