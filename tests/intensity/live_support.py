"""Small helpers for the live-source tests (not a test module)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from carbonshift.intensity.http import HttpClient
from carbonshift.intensity.types import IntensitySeries, Kind, TimeSpan

NOW = datetime(2026, 3, 1, 12, 20, tzinfo=UTC)


def client(
    name: str,
    *,
    budget_s: float = 5.0,
    connect_timeout_s: float = 1.0,
    read_timeout_s: float = 2.0,
    max_retries: int = 2,
    hint: str | None = None,
    sleep: Callable[[float], None] | None = None,
) -> HttpClient:
    kwargs = {"sleep": sleep} if sleep is not None else {}
    return HttpClient(
        name,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
        budget_s=budget_s,
        max_retries=max_retries,
        credential_hint=hint,
        backoff_base_s=0.01,
        **kwargs,  # type: ignore[arg-type]
    )


def around(now: datetime = NOW, before_h: float = 0.0, after_h: float = 0.0) -> TimeSpan:
    return TimeSpan(now - timedelta(hours=before_h), now + timedelta(hours=after_h))


def value_at(series: IntensitySeries, when: datetime) -> float:
    t = int(when.timestamp())
    i = int(np.searchsorted(series.edges_s, t, side="right")) - 1
    return float(series.values[i])


def kind_at(series: IntensitySeries, when: datetime) -> Kind | None:
    t = int(when.timestamp())
    i = int(np.searchsorted(series.edges_s, t, side="right")) - 1
    p = int(series.prov_index[i])
    return None if p < 0 else series.provenances[p].kind


def note_at(series: IntensitySeries, when: datetime) -> str:
    t = int(when.timestamp())
    i = int(np.searchsorted(series.edges_s, t, side="right")) - 1
    p = int(series.prov_index[i])
    return "" if p < 0 else series.provenances[p].note


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
