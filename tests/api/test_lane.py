"""The API's compute lane: plans and listings computed in turn (see api/lane.py for why)."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from carbonshift.api.lane import ComputeLane


def _most_at_once(slots: int, calls: int) -> tuple[int, list[int]]:
    lane = ComputeLane(slots)
    lock = threading.Lock()
    active = 0
    most = 0
    finished: list[int] = []

    def work(i: int) -> int:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.05)  # a blocking call that lets other threads run, as a plan waiting on a source does
        with lock:
            active -= 1
            finished.append(i)
        return i

    async def main() -> list[int]:
        results: list[int] = []

        async def one(i: int) -> None:
            results.append(await lane.run(lambda: work(i)))

        async with anyio.create_task_group() as tg:
            for i in range(calls):
                tg.start_soon(one, i)
        return results

    results = anyio.run(main)
    assert sorted(results) == list(range(calls))  # every call answered, with its own result
    return most, finished


def test_one_slot_computes_one_answer_at_a_time() -> None:
    most, _ = _most_at_once(1, 6)
    assert most == 1


def test_more_slots_let_that_many_run_together_and_no_more() -> None:
    most, _ = _most_at_once(3, 9)
    assert 2 <= most <= 3


def test_a_lane_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ComputeLane(0)
