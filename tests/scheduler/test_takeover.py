"""A leader that loses the lock while inside a provider's launch call must not cause a second
instance, and must not write over what the new leader decided.

Two real daemons on one database (SQLite and PostgreSQL), in one process so the test can hold the old
leader inside `launch` at exactly the wrong moment: the new leader takes over, relaunches the run
(the same idempotency key and, now, the same report token), and the provider, deduplicating as EC2
does with a ClientToken (a repeat with different parameters is refused), ends up with one instance.
The old leader's write after its call returns is fenced off by the leadership epoch."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from carbonshift.clock import FixedClock
from carbonshift.providers.base import Handle, InstanceState, InstanceStatus, LaunchRequest, ProviderError
from carbonshift.scheduler import Scheduler
from tests.scheduler.helpers import NOW, make_settings, spec, wait_for, window


class IdempotentCloud:
    """Launches deduplicated by run id, as EC2 does by ClientToken: the same request again returns
    the same instance; the same key with other parameters (another report token) is refused. Each
    call can be held at its start by a gate, so a test can interleave two daemons."""

    name = "local"

    def __init__(self, held_calls: int) -> None:
        self.instances: dict[str, tuple[str | None, Handle]] = {}
        self.tokens: list[str | None] = []
        self.entered = [threading.Event() for _ in range(held_calls)]
        self.gates = [threading.Event() for _ in range(held_calls)]
        self.created = 0
        self._lock = threading.Lock()

    def regions(self) -> list[str]:
        return []

    def launch(self, request: LaunchRequest) -> Handle:
        with self._lock:
            call = len(self.tokens)
            self.tokens.append(request.report_token)
        if call < len(self.gates):
            self.entered[call].set()
            assert self.gates[call].wait(20), "the test never released this launch"
        with self._lock:
            found = self.instances.get(request.run_id)
            if found is not None:
                if found[0] != request.report_token:
                    raise ProviderError(
                        self.name, "IdempotentParameterMismatch: same client token, other request"
                    )
                return found[1]
            handle = Handle(self.name, request.region, request.run_id, f"i-{request.run_id}")
            self.instances[request.run_id] = (request.report_token, handle)
            self.created += 1
            return handle

    def find(self, run_id: str, region: str) -> Handle | None:
        with self._lock:
            found = self.instances.get(run_id)
        return found[1] if found is not None else None

    def status(self, handle: Handle) -> InstanceStatus:
        return InstanceStatus(InstanceState.RUNNING, detail="running")

    def terminate(self, handle: Handle) -> None:
        pass

    def gone(self, handle: Handle) -> bool:
        return False

    def managed(self) -> list[Handle]:
        return [h for _, h in self.instances.values()]


def test_a_stale_leader_inside_launch_causes_no_second_instance_and_no_write(
    tmp_path: Path, db_url: str | None
) -> None:
    settings = make_settings(tmp_path, db_url=db_url)
    clock = FixedClock(NOW)
    cloud = IdempotentCloud(held_calls=2)
    old = Scheduler.from_settings(settings, clock=clock, providers={"local": cloud})
    new = Scheduler.from_settings(settings, clock=clock, providers={"local": cloud})
    try:
        old.start(background=False)
        job = old.submit(spec(window=window(NOW, NOW + timedelta(hours=6))))
        run_id = job.runs[0].id
        stale = threading.Thread(target=old.tick, name="old-leader-tick")
        stale.start()
        assert cloud.entered[0].wait(20)  # the old leader is inside launch()
        assert old._lock is not None
        old._lock.release()  # ...and loses the lock there (its connection dropped, say)

        taking_over = threading.Thread(target=new.start, kwargs={"background": False})
        taking_over.start()
        assert cloud.entered[1].wait(20)  # the new leader relaunches the run: same key, same token
        assert new.is_active
        assert cloud.tokens[0] == cloud.tokens[1]

        cloud.gates[0].set()  # the old leader's call returns now, while the run is the new leader's
        stale.join(20)
        view = new.get_run(run_id)
        assert view.status == "launching"  # the old leader's 'running' was fenced off
        assert not any("launched on" in e.reason for e in view.events)

        cloud.gates[1].set()
        taking_over.join(20)
        wait_for(lambda: new.get_run(run_id).status == "running", what="the new leader's launch")
        view = new.get_run(run_id)
        assert cloud.created == 1 and view.instance_id == f"i-{run_id}"
        assert any("no launch by the leader of epoch 1 has got through" in e.reason for e in view.events)
        launched = [e for e in view.events if e.to_state == "running"]
        assert len(launched) == 1
    finally:
        for gate in cloud.gates:
            gate.set()
        new.shutdown()
        old.shutdown()


def test_a_relaunch_sends_the_same_report_token(tmp_path: Path) -> None:
    """The token is derived from a per-database key and the run id: any daemon, any attempt, one token
    (so a provider's idempotency key never meets a request that disagrees with the first)."""
    settings = make_settings(tmp_path)
    first = Scheduler.from_settings(settings, clock=FixedClock(NOW), providers={})
    token = first._report_token("run-abc")
    assert token == first._report_token("run-abc") and token != first._report_token("run-abd")
    second = Scheduler.from_settings(settings, clock=FixedClock(NOW), providers={})
    assert second._report_token("run-abc") == token
    (tmp_path / "other").mkdir()
    other_db = Scheduler.from_settings(make_settings(tmp_path / "other"), clock=FixedClock(NOW), providers={})
    assert other_db._report_token("run-abc") != token
    for s in (first, second, other_db):
        s.shutdown()
