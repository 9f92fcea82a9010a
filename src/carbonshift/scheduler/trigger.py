"""`CarbonAwareTrigger`: an APScheduler 3 trigger that fires each cron occurrence at its lowest-carbon
moment, so existing APScheduler code becomes carbon-aware by swapping its trigger:

    scheduler.add_job(retrain, CarbonAwareTrigger("0 22 * * *", timezone="Europe/Berlin",
                                                  flex="8h", duration="2h", location="DE"))

For each nominal cron time N (standard cron, 0/7 = Sunday, in `timezone`, DST-correct) it fires at the
start t in [N, N + flex] whose run of `duration` has the lowest mean carbon intensity for `location`
(a region such as aws:eu-central-1, or a grid zone), found by the planner's exact `best_start` on the
intensity service's merged series. With no live data the series is the zone's flat static average,
so the trigger fires at the nominal time; if even that fails it fires at the nominal time too.

Semantics worth knowing:
* The first fire time is for the first nominal time at or after now (as CronTrigger's).
* Across DST, each nominal local time is one occurrence: a time that occurs twice (autumn) at its
  first instance, one that does not exist (spring) shifted forward by the gap.
* After a fire at P, the next occurrence is the one after the latest nominal time <= P. With
  `flex` longer than the cron period, an occurrence whose nominal time passes before the previous
  one fires is folded into it (APScheduler's own coalescing, in spirit), never fired twice.
* The trigger pickles without its intensity service (job stores persist triggers); after unpickling
  it builds one from `load_settings()` (environment, CARBONSHIFT_CONFIG) when first needed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from carbonshift.config import Settings, load_settings
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.types import GridZone, Signal, TimeSpan
from carbonshift.planner.contiguous import best_start
from carbonshift.schedule import cron_trigger, next_nominal
from carbonshift.timeutil import from_epoch_s, parse_duration, to_epoch_s

log = logging.getLogger(__name__)


def _duration(value: timedelta | str, what: str) -> timedelta:
    td = parse_duration(value) if isinstance(value, str) else value
    if td < timedelta(0):
        raise ValueError(f"{what} must not be negative")
    return td


class CarbonAwareTrigger(BaseTrigger):  # type: ignore[misc]
    def __init__(
        self,
        cron: str,
        *,
        location: str,
        flex: timedelta | str,
        duration: timedelta | str = timedelta(hours=1),
        timezone: str = "UTC",
        signal: Signal | str = Signal.AVERAGE,
        service: IntensityService | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.cron = cron
        self.timezone = timezone
        self.location = location
        self.flex = _duration(flex, "flex")
        self.duration = _duration(duration, "duration")
        if self.duration <= timedelta(0):
            raise ValueError("duration must be longer than zero")
        self.signal = Signal(signal)
        self._cron = cron_trigger(cron, timezone)  # validates the expression and the zone now
        self._service = service
        self._settings = settings
        self._zone: GridZone | None = None

    # ---- APScheduler's interface -------------------------------------------------------------------
    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is None:
            nominal = self._next_at_or_after(now)
            earliest = now
        else:
            last = self._nominal_at_or_before(previous_fire_time)
            nominal = (
                self._next_after(last)
                if last is not None
                else self._next_at_or_after(previous_fire_time + timedelta(seconds=1))
            )
            earliest = previous_fire_time + timedelta(microseconds=1)
        if nominal is None:
            return None
        fire = self.best_time(nominal, not_before=earliest)
        return fire.astimezone(self._tz())

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": 1,
            "cron": self.cron,
            "timezone": self.timezone,
            "location": self.location,
            "flex_s": self.flex.total_seconds(),
            "duration_s": self.duration.total_seconds(),
            "signal": self.signal.value,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["cron"],
            location=state["location"],
            flex=timedelta(seconds=state["flex_s"]),
            duration=timedelta(seconds=state["duration_s"]),
            timezone=state["timezone"],
            signal=state["signal"],
        )

    def __str__(self) -> str:
        return f"carbon-aware[cron='{self.cron}', flex={self.flex}, location={self.location}]"

    def __repr__(self) -> str:
        return (
            f"<CarbonAwareTrigger (cron={self.cron!r}, timezone={self.timezone!r}, flex={self.flex}, "
            f"duration={self.duration}, location={self.location!r}, signal={self.signal.value})>"
        )

    # ---- the carbon-aware part ---------------------------------------------------------------------
    def best_time(self, nominal: datetime, *, not_before: datetime | None = None) -> datetime:
        """The lowest-carbon start in [max(nominal, not_before), nominal + flex] (whole seconds); the
        nominal time (or not_before) when there is no data or nothing to choose."""
        lo = nominal if not_before is None else max(nominal, not_before)
        hi = nominal + self.flex
        lo_s = to_epoch_s(lo) + (1 if lo.microsecond else 0)
        hi_s = to_epoch_s(hi)
        if hi_s <= lo_s:
            return lo
        d = int(self.duration.total_seconds())
        try:
            series = self._service_now().series(
                self._zone_id(), TimeSpan.from_epoch(lo_s, hi_s + d), self.signal
            )
            start_s, _mean = best_start(series.edges_s, series.values, lo_s, hi_s, d)
        except Exception as exc:  # no data, a source down, an unknown zone: fire at the nominal time
            log.warning(
                "CarbonAwareTrigger %s: no intensity data (%s); firing at the nominal time", self, exc
            )
            return lo
        return from_epoch_s(start_s)

    def _service_now(self) -> IntensityService:
        if self._service is None:
            from carbonshift import runtime

            self._service = runtime.build_service(self._settings_now())
        return self._service

    def _settings_now(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def _zone_id(self) -> GridZone:
        if self._zone is None:
            from carbonshift import runtime

            settings = self._settings_now()
            self._zone = runtime.resolve_zone(self.location, runtime.build_catalog(settings), settings)
        return self._zone

    # ---- cron arithmetic ---------------------------------------------------------------------------
    def _tz(self) -> tzinfo:
        tz: tzinfo = self._cron.timezone
        return tz

    def _nominal_at_or_before(self, t: datetime) -> datetime | None:
        """The latest nominal time <= t (searched from t - flex: a fire at t belongs to a nominal time
        no earlier than that)."""
        found: datetime | None = None
        probe = self._next_at_or_after(t - self.flex)
        while probe is not None and probe <= t:
            found = probe
            probe = self._next_after(probe)
        return found

    def _next_after(self, t: datetime | None) -> datetime | None:
        if t is None:
            return None
        return self._next_at_or_after(t + timedelta(seconds=1))

    def _next_at_or_after(self, t: datetime) -> datetime | None:
        """The first nominal time >= t (UTC): one per nominal local time, across DST too (chaining
        APScheduler's CronTrigger gives a fall-back night's time twice; see carbonshift.schedule)."""
        return next_nominal(self.cron, self.timezone, t)


__all__ = ["CarbonAwareTrigger"]
