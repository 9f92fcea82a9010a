"""A re-plan pass reads only the waiting runs it may re-plan (chosen in SQL, so a pass over 10,000
waiting runs does not load them all every time), and never misses one `_kind_due` would choose."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from carbonshift.clock import FixedClock
from carbonshift.scheduler import RunState, Scheduler
from carbonshift.scheduler.models import RunRow
from tests.scheduler.helpers import NOW, FakeProvider, make_settings, spec, window


@pytest.mark.parametrize("before_s", [0, 900])
def test_the_sql_choice_covers_every_run_due(tmp_path: Path, db_url: str | None, before_s: int) -> None:
    clock = FixedClock(NOW)
    settings = make_settings(tmp_path, db_url=db_url, scheduler={"replan_before_start_s": before_s})
    sched = Scheduler.from_settings(settings, clock=clock, providers={"local": FakeProvider()})  # type: ignore[dict-item]
    sched.start(background=False)
    try:
        for n in range(12):
            sched.submit(
                spec(name=f"j{n}", window=window(NOW + timedelta(hours=2), NOW + timedelta(hours=30)))
            )
        sched.tick()
        cfg = sched.cfg
        interval, before = (
            timedelta(seconds=cfg.replan_interval_s),
            timedelta(seconds=cfg.replan_before_start_s),
        )
        # every combination: planned long before or just after the interval; starting soon or not;
        # re-planned shortly before its start already or not
        lasts = [None, NOW - interval - timedelta(seconds=1), NOW - interval / 2, NOW]
        starts = [NOW + before / 2, NOW + before + timedelta(hours=3)]
        with sched._tx() as s:
            ids = list(s.scalars(select(RunRow.id).where(RunRow.state == RunState.WAITING.value)))
            assert len(ids) == 12
            for i, run_id in enumerate(ids):
                s.execute(
                    update(RunRow)
                    .where(RunRow.id == run_id)
                    .values(
                        last_planned_at=lasts[i % 4],
                        planned_start=starts[(i // 4) % 2],
                        prestart_replanned=i >= 8,
                    )
                )
        replanner = sched._replanner
        with sched._tx() as s:
            runs = list(s.scalars(select(RunRow).where(RunRow.state == RunState.WAITING.value)))
            chosen = {run.id for run in replanner._waiting_maybe_due(s, NOW)}
            due = {r.id for r in runs if r.planned_start > NOW and replanner._kind_due(r, NOW) is not None}
        assert due and due <= chosen  # never misses one
        assert len(chosen) < len(runs)  # and reads fewer than all
    finally:
        sched.shutdown()
