"""Settings for tests that plan onto one region of a named provider (a cloud region, a cluster, a
fake's own provider name): that region is a user location on the grid of LAB-ZONE, whose hourly series
the test gives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from carbonshift.config import Settings, load_settings
from tests.scheduler.helpers import NOW, hourly, write_series


def located_settings(
    tmp_path: Path,
    provider: str,
    region: str,
    g_per_kwh: Callable[[int], float] = lambda h: 300.0,
    scheduler: dict[str, Any] | None = None,
    **extra: Any,
) -> Settings:
    """`provider:region` on LAB-ZONE, whose series runs hourly from a day before NOW for three days
    (`g_per_kwh(hour index)`); the scheduler waits an hour between polls unless told otherwise."""
    path = tmp_path / "lab.csv"
    write_series(path, hourly(NOW - timedelta(days=1), 72, g_per_kwh))
    return load_settings(
        None,
        ukci_enabled=False,
        cache={"enabled": False},
        data_dir=str(tmp_path / "data"),
        intensity={"files": {"LAB-ZONE": str(path)}},
        locations=[{"provider": provider, "region": region, "zone": "LAB-ZONE", "country": "ES"}],
        tracker={"detect_cloud": False, "codecarbon_csv": False},
        scheduler={"poll_interval_s": 3600, "replan_before_start_s": 0, **(scheduler or {})},
        **extra,
    )
