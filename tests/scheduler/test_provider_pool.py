"""Provider calls run on a bounded worker pool with a per-call timeout, never inside the tick.

One slow provider call (Compute Engine waits up to 600 s per zone, Azure's `.result()` has no timeout)
must not stall polling, cancellation and the deadline watchdog of every other run: the timers' pass
hands each run's provider work to the pool and returns; `tick()` (tests, debugging) waits for what it
started, each call at most `scheduler.provider_call_timeout_s`; a launch given up on is an unclear
answer, settled by asking the provider for the run, never by launching again."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from carbonshift.clock import FixedClock
from carbonshift.providers.base import Handle, InstanceState, LaunchRequest
from carbonshift.scheduler import Scheduler
from tests.scheduler.helpers import NOW, FakeProvider, make_settings, spec, wait_for, window


class GatedProvider(FakeProvider):
    """FakeProvider whose launches of the jobs named in `slow` (all jobs: `slow=None`) wait for `gate`;
    it counts the provider calls running at once, and `find` shows an instance only once `visible`."""

    def __init__(self, slow: set[str] | None = None, *, hide_until_visible: bool = False) -> None:
        super().__init__()
        self.slow = slow
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.hide_until_visible = hide_until_visible
        self.visible = threading.Event()
        self.launch_calls: list[str] = []
        self.finds: list[str] = []
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    def launch(self, request: LaunchRequest) -> Handle:
        self._enter()
        try:
            with self._lock:
                self.launch_calls.append(request.run_id)
            if self.slow is None or request.spec.name in self.slow:
                self.entered.set()
                assert self.gate.wait(30), "the test never released this launch"
            with self._lock:
                return super().launch(request)
        finally:
            self._leave()

    def find(self, run_id: str, region: str) -> Handle | None:
        self.finds.append(run_id)
        if self.hide_until_visible and not self.visible.is_set():
            return None
        return super().find(run_id, region)


def _started(tmp_path: Path, provider: FakeProvider, **scheduler: Any) -> tuple[Scheduler, FixedClock]:
    settings = make_settings(tmp_path, scheduler=scheduler)
    clock = FixedClock(NOW)
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": provider})
    sched.start(background=False)
    return sched, clock


def _submit(sched: Scheduler, name: str) -> tuple[str, str]:
    job = sched.submit(spec(name=name, window=window(NOW, NOW + timedelta(hours=6))))
    return job.id, job.runs[0].id


def _pass_in_thread(sched: Scheduler) -> threading.Thread:
    """The timers' pass (`_tick_core`, what `_on_timer` runs), in a thread so a test can tell whether
    it returns while a provider call is still held."""
    thread = threading.Thread(target=sched._tick_core, name="timer-pass", daemon=True)
    thread.start()
    return thread


def test_a_slow_launch_does_not_hold_the_timer_pass_or_other_runs(tmp_path: Path) -> None:
    cloud = GatedProvider(slow={"slow"})
    sched, _clock = _started(tmp_path, cloud)
    api = Scheduler.from_settings(sched.settings, clock=sched.clock, providers={"local": cloud})
    try:
        _, ends = _submit(sched, "ends")
        cancel_job, cancelled = _submit(sched, "cancelled")
        sched.tick()
        assert sched.get_run(ends).status == "running" and sched.get_run(cancelled).status == "running"

        cloud.finish(ends)  # this one has ended: the pass must finish it
        api.cancel(cancel_job)  # asked through another instance's API: the active daemon acts on it
        _, slow = _submit(sched, "slow")
        _, other = _submit(sched, "other")  # due at the same time as the slow one

        timer = _pass_in_thread(sched)
        assert cloud.entered.wait(10), "the slow launch never started"
        timer.join(5)
        assert not timer.is_alive(), "the timer pass waited for a provider call"
        assert not cloud.gate.is_set()

        wait_for(lambda: sched.get_run(other).status == "running", 10, "the other run to launch")
        wait_for(lambda: sched.get_run(ends).status == "succeeded", 10, "the ended run to finish")
        wait_for(lambda: cancelled in cloud.terminated, 10, "the cancelled run to be terminated")
        assert sched.get_run(slow).status == "launching"  # still inside the provider's launch

        second = _pass_in_thread(sched)  # the next pass: the stop took effect, the slow call still held
        second.join(5)
        assert not second.is_alive()
        wait_for(lambda: sched.get_run(cancelled).status == "cancelled", 10, "the cancelled run to end")
        assert cloud.launch_calls.count(slow) == 1  # one call in flight per run: not submitted twice
        assert not cloud.gate.is_set() and sched.get_run(slow).status == "launching"

        cloud.gate.set()
        wait_for(lambda: sched.get_run(slow).status == "running", 10, "the slow launch to be recorded")
        sched.tick()
        view = sched.get_run(slow)
        assert view.status == "running" and view.instance_id == f"fake-{slow}"
        assert len([e for e in view.events if e.to_state == "running" and e.from_state != "running"]) == 1
        assert cloud.launches[slow] == 1 and cloud.launch_calls.count(slow) == 1
    finally:
        cloud.gate.set()
        sched.shutdown()
        api.engine.dispose()


def test_a_launch_past_the_call_timeout_is_an_unclear_answer_settled_by_find(tmp_path: Path) -> None:
    cloud = GatedProvider(hide_until_visible=True)
    sched, _clock = _started(tmp_path, cloud, provider_call_timeout_s=0.3, launch_settle_looks=5)
    try:
        _, run_id = _submit(sched, "hangs")
        ticking = threading.Thread(target=sched.tick, daemon=True)
        began = time.monotonic()
        ticking.start()
        ticking.join(10)
        assert not ticking.is_alive(), "tick() waited past the per-call timeout"
        assert time.monotonic() - began < 8
        assert cloud.entered.is_set() and not cloud.gate.is_set()  # the call itself is still held
        view = sched.get_run(run_id)
        assert view.status == "launching"
        assert any(
            "ended without a clear answer" in e.reason and "provider_call_timeout_s" in e.reason
            for e in view.events
        ), [e.reason for e in view.events]

        sched.tick()  # the timed-out call still holds the run: no find, no second launch yet
        assert sched.get_run(run_id).status == "launching"
        assert cloud.launch_calls == [run_id] and cloud.finds == []

        # the call returns late (the instance was created): its answer is not used, only noted
        cloud.gate.set()
        wait_for(
            lambda: any("answered" in e.reason for e in sched.get_run(run_id).events),
            10,
            "the late answer's note",
        )
        assert sched.get_run(run_id).status == "launching"

        cloud.visible.set()  # the provider shows the instance for this run id
        sched.tick()
        view = sched.get_run(run_id)
        assert view.status == "running" and view.instance_id == f"fake-{run_id}", view
        assert any("recovered after an unclear launch answer" in e.reason for e in view.events)
        assert cloud.launch_calls == [run_id] and cloud.launches[run_id] == 1  # never launched again
    finally:
        cloud.gate.set()
        sched.shutdown()


def test_the_worker_pool_is_bounded(tmp_path: Path) -> None:
    cloud = GatedProvider()  # every launch waits for the gate
    sched, _clock = _started(tmp_path, cloud, provider_workers=2)
    try:
        runs = [_submit(sched, f"job{i}")[1] for i in range(5)]
        timer = _pass_in_thread(sched)
        timer.join(10)
        assert not timer.is_alive()
        wait_for(lambda: cloud.active == 2, 10, "two launches in flight")
        time.sleep(0.3)  # room for a third, if the pool let one through
        assert cloud.active == 2 and cloud.peak == 2 and len(cloud.launch_calls) == 2
        cloud.gate.set()
        wait_for(lambda: all(sched.get_run(r).status == "running" for r in runs), 10, "every launch")
        assert cloud.peak == 2
        assert sorted(cloud.launch_calls) == sorted(runs)  # each launched once
    finally:
        cloud.gate.set()
        sched.shutdown()


def test_shutdown_with_a_call_in_flight_does_not_hang(tmp_path: Path) -> None:
    cloud = GatedProvider()
    sched, _clock = _started(tmp_path, cloud, provider_call_timeout_s=0.5)
    try:
        _, run_id = _submit(sched, "held")
        timer = _pass_in_thread(sched)
        assert cloud.entered.wait(10)
        timer.join(5)
        assert not timer.is_alive()
        began = time.monotonic()
        sched.shutdown()
        assert time.monotonic() - began < 5, "shutdown waited on a held provider call"
        assert sched.role == "stopped"
    finally:
        cloud.gate.set()
    # the held call returns after the shutdown, and records what it got (the next daemon would ask)
    wait_for(lambda: not sched._calls, 10, "the held call to return")
    assert sched.get_run(run_id).status == "running" and cloud.states[run_id] is InstanceState.RUNNING
