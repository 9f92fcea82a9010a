"""`advise_many` turns Python's cyclic garbage collector off for a batch (advisor.py says why): it must
leave the collector as it found it, on or off, and after an error too."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carbonshift.advisor import advise_many
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import parse_jobspec
from carbonshift.errors import UserInputError
from carbonshift.runtime import build_catalog, build_service

NOW = datetime(2026, 11, 24, 0, tzinfo=UTC)


def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = load_settings(None, ukci_enabled=False, cache={"enabled": False}, data_dir=str(tmp_path))
    return build_catalog(settings), build_service(settings, FixedClock(NOW))


def spec(**extra: object):  # type: ignore[no-untyped-def]
    data = {"name": "j", "command": ["x"], "duration": "2h", "window": {"deadline": "2026-11-25T00:00Z"}}
    data.update(extra)
    return parse_jobspec(data)


@pytest.mark.parametrize("was_on", [True, False])
def test_the_collector_is_left_as_it_was_found(tmp_path: Path, was_on: bool) -> None:
    catalog, service = world(tmp_path)
    seen: list[bool] = []
    gc.enable() if was_on else gc.disable()
    try:
        advices = advise_many([spec(), spec(name="k")], catalog=catalog, service=service, now=NOW)
        seen.append(gc.isenabled())
    finally:
        gc.enable()
    assert seen == [was_on] and len(advices) == 2


def test_the_collector_is_on_again_after_a_refused_spec(tmp_path: Path) -> None:
    catalog, service = world(tmp_path)
    refused = spec(placement={"regions": ["nowhere:at-all"]})
    assert gc.isenabled()
    with pytest.raises(UserInputError):
        advise_many([spec(), refused], catalog=catalog, service=service, now=NOW)
    assert gc.isenabled()
