"""`stream_slices`: forked children's bytes reach the stream in slice order, whole, through a pipe
(spliced into a file, copied into an in-memory stream); a child that fails before its status costs
time, not output; a refused batch writes nothing; a child lost mid-copy is an error, never silence."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from carbonshift.cli.parallel_lines import can_fork
from carbonshift.cli.streamed_slices import SliceLost, stream_slices

pytestmark = pytest.mark.skipif(not can_fork(), reason="workers are forked processes (POSIX)")

ITEMS = list(range(3000))
PARENT = os.getpid()


def _bytes(part: Sequence[int]) -> bytes:
    return "".join(f"{i} é {'x' * (i % 97)}\n" for i in part).encode()


def _work(part: Sequence[int]) -> tuple[tuple[int, int, int], bytes | None]:
    return (part[0], len(part), os.getpid()), _bytes(part)


def _reaped(pids: Sequence[int]) -> bool:
    """Whether every worker of these (the parent's own pid aside) has been waited for."""
    for pid in pids:
        if pid == PARENT:
            continue
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        return False
    return True


@pytest.mark.parametrize("n", [2, 3, 5])
def test_every_slice_is_written_in_order_into_a_file_and_into_memory(
    n: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spliced: list[int] = []
    splice = getattr(os, "splice", None)
    if splice is not None:  # counted, to know the file took the kernel's path

        def counting(src: int, dst: int, count: int) -> int:
            moved = splice(src, dst, count)
            spliced.append(moved)
            return moved

        monkeypatch.setattr(os, "splice", counting)
    want = _bytes(ITEMS)
    path = tmp_path / "out.bin"
    with path.open("wb") as f:  # a file: the children's bytes are spliced into it
        f.write(b"head\n")
        statuses = stream_slices(ITEMS, n, _work, lambda _: True, f)
    assert path.read_bytes() == b"head\n" + want
    sizes = [len(ITEMS) * (i + 1) // n - len(ITEMS) * i // n for i in range(n)]
    assert [count for _, count, _ in statuses] == sizes
    assert _reaped([pid for _, _, pid in statuses])
    assert splice is None or sum(spliced) == len(want) - len(_bytes(ITEMS[: sizes[0]]))
    memory = io.BytesIO()  # no file: copied by reads and writes
    statuses = stream_slices(ITEMS, n, _work, lambda _: True, memory)
    assert memory.getvalue() == want
    assert _reaped([pid for _, _, pid in statuses])


def test_a_child_that_fails_before_its_status_has_its_slice_done_here() -> None:
    def dying(part: Sequence[int]) -> tuple[tuple[int, int, int], bytes | None]:
        if os.getpid() != PARENT and 1000 in part:
            os._exit(3)  # killed mid-slice
        if os.getpid() != PARENT and 2000 in part:
            raise RuntimeError("a child's work failed")
        return _work(part)

    out = io.BytesIO()
    statuses = stream_slices(ITEMS, 3, dying, lambda _: True, out)
    assert out.getvalue() == _bytes(ITEMS)
    assert [first for first, _, _ in statuses] == [0, 1000, 2000]
    assert [pid for _, _, pid in statuses] == [PARENT] * 3  # both failed slices done here


def test_a_refused_batch_writes_nothing_and_leaves_no_child() -> None:
    def none_for_the_middle(part: Sequence[int]) -> tuple[tuple[int, int, int], bytes | None]:
        status, data = _work(part)
        return status, None if 1000 in part else data

    seen: list[list[tuple[int, int, int]]] = []
    out = io.BytesIO()
    stream_slices(ITEMS, 3, _work, lambda statuses: bool(seen.append(statuses)), out)
    assert out.getvalue() == b"" and len(seen[0]) == 3
    assert _reaped([pid for _, _, pid in seen[0]])
    stream_slices(ITEMS, 3, none_for_the_middle, lambda _: True, out)  # a slice without bytes
    assert out.getvalue() == _bytes(ITEMS[:1000]) + _bytes(ITEMS[2000:])


def test_a_child_lost_while_its_bytes_are_copied_is_an_error() -> None:
    def big(part: Sequence[int]) -> tuple[int, bytes | None]:
        return os.getpid(), b"x" * (16 << 20)  # more than the pipe holds: the child waits on it

    def kill_the_second(statuses: list[int]) -> bool:
        os.kill(statuses[1], signal.SIGKILL)
        return True

    pids: list[int] = []
    with pytest.raises(SliceLost):
        stream_slices(
            ITEMS,
            2,
            big,
            lambda statuses: bool(pids.extend(statuses)) or kill_the_second(statuses),
            io.BytesIO(),
        )
    assert _reaped(pids)
