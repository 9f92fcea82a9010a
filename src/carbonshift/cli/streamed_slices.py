"""Work shared out to forked children in contiguous slices, each slice's output bytes written to the
parent's stream in slice order, straight from the child through a pipe.

Why: `carbonshift plan DIR` of 10,000 specs printing every option writes 267 MB. Its workers used to
pickle their slice's bytes to a file, which the parent read back, unpickled and wrote out: three copies
of every byte past the rendering, one after the other once the slices were done (~1 s of a 7 s run on
two CPUs). Here a child sends its slice's status first (small, pickled), then its bytes, and waits on
the pipe; the parent decides from every status whether the batch is written at all (a caller's rule:
an invalid spec prints nothing), then writes its own slice and copies each child's bytes to the stream
with `os.splice` where the platform and the stream allow (no copy through this process), else by reads
and writes.

A child that fails before its status is sent (killed, or its work raised) has its slice done again
here, so a failure costs time, not output. One that dies while its bytes are copied leaves the stream
cut short: that raises `SliceLost` (a failing disk or a killed worker, when nothing can be taken back).

A forked child of a process with other threads only gets the forking thread: fork before any thread
pool starts, or after it is joined (`work` must take no lock another thread may hold).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO, Generic, TypeVar, cast

T = TypeVar("T")
S = TypeVar("S")

_LENGTH = struct.Struct(">Q")
_CHUNK = 1 << 20
_NO_DATA = (1 << 64) - 1  # the data length a child sends when its work gave no bytes


class SliceLost(RuntimeError):
    """A child died while its slice's bytes were being written: the output is incomplete."""


class _Done(Generic[S]):
    """A slice done in this process: its status and bytes."""

    __slots__ = ("data", "status")

    def __init__(self, status: S, data: bytes | None) -> None:
        self.status = status
        self.data = data


class _Child:
    __slots__ = ("fd", "pid")

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd


def stream_slices(
    items: Sequence[T],
    n: int,
    work: Callable[[Sequence[T]], tuple[S, bytes | None]],
    accept: Callable[[list[S]], bool],
    out: BinaryIO,
) -> list[S]:
    """Do `work` on `n` contiguous slices of `items` (the first here, the others in forked children)
    and return each slice's status, in order. When `accept(statuses)` is true, every slice's bytes
    (None: none) are written to `out` in order, then `out` is flushed; when false, nothing is written.
    `out` must hold nothing unwritten of what goes before (flush the text stream above it first)."""
    bounds = [len(items) * i // n for i in range(n + 1)]
    slices = [items[bounds[i] : bounds[i + 1]] for i in range(n)]
    children: list[_Child] = []
    try:
        sys.stdout.flush()  # a child never flushes what it inherits, but leave it nothing to flush
        sys.stderr.flush()
        for part in slices[1:]:
            children.append(_fork(part, work, [c.fd for c in children]))
        mine = _Done(*work(slices[0]))
        done: list[_Done[S] | _Child] = [mine]
        statuses = [mine.status]
        for child, part in zip(children, slices[1:], strict=True):
            status = _status(child)
            if status is None:  # the child failed before saying how its slice went: do it here
                _reap(child)
                here = _Done(*work(part))
                done.append(here)
                statuses.append(here.status)
            else:
                done.append(child)
                statuses.append(cast(S, status))  # what our own child's `work` returned
        if not accept(statuses):
            return statuses
        for slice_done in done:
            if isinstance(slice_done, _Done):
                if slice_done.data is not None:
                    out.write(slice_done.data)
            else:
                _copy(slice_done, out)
        out.flush()
        return statuses
    finally:
        for child in children:  # those not reaped: refused batches, errors, interruptions
            with contextlib.suppress(OSError):
                os.close(child.fd)
            if child.pid:
                with contextlib.suppress(OSError):
                    os.kill(child.pid, signal.SIGKILL)
                    os.waitpid(child.pid, 0)


def _fork(
    part: Sequence[T], work: Callable[[Sequence[T]], tuple[S, bytes | None]], held: list[int]
) -> _Child:
    r, w = os.pipe()
    with contextlib.suppress(AttributeError, OSError):  # Linux: a larger pipe, fewer wake-ups
        import fcntl

        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _CHUNK)
    pid = os.fork()
    if pid == 0:  # the child: work, send, leave; never returns
        os.close(r)
        for fd in held:  # the earlier children's pipes, as this process's parent holds them
            os.close(fd)
        _child(part, work, w)
    os.close(w)
    return _Child(pid, r)


def _child(part: Sequence[T], work: Callable[[Sequence[T]], tuple[S, bytes | None]], fd: int) -> None:
    code = 1
    try:
        status, data = work(part)
        head = pickle.dumps(status, protocol=pickle.HIGHEST_PROTOCOL)
        length = _NO_DATA if data is None else len(data)
        _write_all(fd, _LENGTH.pack(len(head)) + head + _LENGTH.pack(length))
        if data is not None:
            _write_all(fd, data)  # waits on the pipe while the parent writes what comes before
        code = 0
    except BaseException:  # the parent does this slice itself, or finds its bytes cut short
        pass
    finally:
        os._exit(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts = []
    while size:
        chunk = os.read(fd, min(size, _CHUNK))
        if not chunk:
            return None
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def _status(child: _Child) -> object | None:
    """The child's status, or None when it failed before sending it whole."""
    try:
        head = _read_exactly(child.fd, _LENGTH.size)
        body = _read_exactly(child.fd, _LENGTH.unpack(head)[0]) if head is not None else None
        return pickle.loads(body) if body is not None else None  # our own child's, through our pipe
    except Exception:
        return None


def _copy(child: _Child, out: BinaryIO) -> None:
    """Copy the child's bytes to `out`, then reap it; SliceLost when they stop short."""
    head = _read_exactly(child.fd, _LENGTH.size)
    if head is None:
        raise SliceLost("a worker died before writing its slice")
    remaining = _LENGTH.unpack(head)[0]
    if remaining != _NO_DATA:
        remaining = _spliced(child.fd, out, remaining)
        while remaining:
            chunk = os.read(child.fd, min(remaining, _CHUNK))
            if not chunk:
                raise SliceLost("a worker died while writing its slice")
            out.write(chunk)
            remaining -= len(chunk)
    if _reap(child) != 0:
        raise SliceLost("a worker failed after writing its slice")


def _spliced(fd: int, out: BinaryIO, remaining: int) -> int:
    """Move up to `remaining` bytes from the pipe to `out`'s file in the kernel (`os.splice`, Linux),
    as far as it goes; what is left for reads and writes."""
    splice = getattr(os, "splice", None)
    try:
        out_fd = out.fileno()
    except (OSError, ValueError, AttributeError):  # an in-memory stream
        return remaining
    if splice is None:
        return remaining
    out.flush()
    try:
        while remaining:
            moved = splice(fd, out_fd, min(remaining, _CHUNK))
            if not moved:
                raise SliceLost("a worker died while writing its slice")
            remaining -= moved
    except OSError:  # a stream splice refuses (opened for append, a terminal): the rest by hand
        return remaining
    return 0


def _reap(child: _Child) -> int:
    os.close(child.fd)
    child.fd = -1
    _, status = os.waitpid(child.pid, 0)
    child.pid = 0
    return os.waitstatus_to_exitcode(status)
