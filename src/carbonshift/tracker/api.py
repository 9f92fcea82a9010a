"""The Python API: `carbonshift.track(...)` as a context manager or a decorator.

    with carbonshift.track(zone="DE") as run:
        train()
    print(run.report.kg_co2e)

    @carbonshift.track(region="gcp:europe-west1")
    def train(): ...
    train(); print(train.report.energy_kwh)

The job is the calling process and the processes it starts; the tracker's own sampling thread is
subtracted from it. The report (a TrackReport) is also written like `carbonshift track` writes it,
unless write_outputs=False.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from carbonshift.config import Settings, load_settings
from carbonshift.config.jobspec import FunctionalUnit
from carbonshift.tracker.report import Planned, TrackReport

log = logging.getLogger("carbonshift.tracker")

P = ParamSpec("P")
R = TypeVar("R")


class Track:
    def __init__(
        self,
        *,
        region: str | None = None,
        zone: str | None = None,
        interval_s: float | None = None,
        output_dir: str | Path | None = None,
        report_path: str | Path | None = None,
        settings: Settings | None = None,
        config: str | Path | None = None,
        planned: Planned | None = None,
        write_outputs: bool = True,
        label: str | None = None,
        nvml: Any | None = None,
        instance_type: str | None = None,
        functional_unit: FunctionalUnit | None = None,
    ) -> None:
        self._kwargs: dict[str, Any] = {
            "region": region,
            "zone": zone,
            "interval_s": interval_s,
            "output_dir": Path(output_dir) if output_dir is not None else None,
            "report_path": Path(report_path) if report_path is not None else None,
            "planned": planned,
            "write_outputs": write_outputs,
            "nvml": nvml,
            "instance_type": instance_type,
            "functional_unit": functional_unit,
        }
        self._settings = settings
        self._config = config
        self.label = label
        self.report: TrackReport | None = None
        self._tracker: Any = None

    def __enter__(self) -> Track:
        import os

        from carbonshift.tracker.tracker import Tracker

        settings = self._settings or load_settings(self._config)
        command = [self.label] if self.label else list(sys.argv)
        self._tracker = Tracker(settings, command=command, pid=os.getpid(), **self._kwargs).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        code = 0 if exc_type is None else 130 if issubclass(exc_type, KeyboardInterrupt) else 1
        tracker, self._tracker = self._tracker, None
        self.report = tracker.stop(code)
        log.info("%s", self.report.summary_line())

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate `func`: each call is tracked; the latest report is `func.report` (and `.report`
        on this object)."""

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            run = Track(
                settings=self._settings,
                config=self._config,
                label=self.label or func.__qualname__,
                **self._kwargs,
            )
            try:
                with run:
                    return func(*args, **kwargs)
            finally:
                self.report = run.report
                wrapper.report = run.report  # type: ignore[attr-defined]

        wrapper.report = None  # type: ignore[attr-defined]
        return wrapper


track = Track  # `carbonshift.track(...)`: the name people write
