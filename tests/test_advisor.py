"""The dry-run advisor through its Python API: catalog + intensity service + planner, no CLI."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carbonshift.advisor import advise
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import parse_jobspec
from carbonshift.errors import UserInputError
from carbonshift.runtime import build_catalog, build_service

NOW = datetime(2026, 11, 24, 0, tzinfo=UTC)


def setup(tmp_path: Path, rows: list[tuple[datetime, float]]):  # type: ignore[no-untyped-def]
    csv = tmp_path / "lab.csv"
    csv.write_text("timestamp,g_per_kwh\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in rows))
    settings = load_settings(
        None,
        ukci_enabled=False,
        cache={"enabled": False},
        intensity={"files": {"LAB-ZONE": str(csv)}},
        locations=[{"region": "lab", "zone": "LAB-ZONE", "country": "ES", "pue": 1.2}],
    )
    return build_catalog(settings), build_service(settings, FixedClock(NOW))


def spec(**extra):  # type: ignore[no-untyped-def]
    data = {"name": "j", "command": ["x"], "duration": "2h", "placement": {"providers": ["local"]}}
    data.update(extra)
    return parse_jobspec(data)


def test_a_series_that_ends_before_the_deadline_is_filled_with_static_and_flagged(tmp_path: Path) -> None:
    # six hours of data (too little history for a model), the window runs 12 h
    rows = [(NOW + timedelta(hours=h), 300.0 - 40 * h) for h in range(6)]  # falling to 100 at 05:00
    catalog, service = setup(tmp_path, rows)
    window = {"earliest": "2026-11-24T00:00Z", "deadline": "2026-11-24T12:00Z"}
    advice = advise(spec(window=window), catalog=catalog, service=service, now=NOW)
    series = advice.series["local:lab"]
    kinds = {p.provenance.kind.value for p in series.points()}
    assert kinds == {"measured", "static"}  # a user file is measured (as given) whenever it is read
    static = [p for p in series.points() if p.provenance.kind.value == "static"]
    assert static[0].start == NOW + timedelta(hours=6)  # static only after the file ends
    assert static[0].g_per_kwh == catalog.country("ES").g_per_kwh  # the zone's country average
    best = advice.plan.best
    # Spain's annual average is above 100, so the cheapest 2 h is the file's last two hours
    assert catalog.country("ES").g_per_kwh > 140
    assert best.start == NOW + timedelta(hours=4) and best.static_fallback is False
    # a run reaching into the static part is flagged
    late = advise(
        spec(window={"earliest": "2026-11-24T05:00Z", "deadline": "2026-11-24T12:00Z"}),
        catalog=catalog,
        service=service,
        now=NOW,
    )
    assert late.plan.best.static_fallback is True
    assert {s.kind.value for s in late.plan.best.sources} == {"measured", "static"}


def test_window_exactly_as_long_as_the_job(tmp_path: Path) -> None:
    catalog, service = setup(tmp_path, [(NOW + timedelta(hours=h), 100.0 + h) for h in range(24)])
    window = {"earliest": "2026-11-24T03:00Z", "deadline": "2026-11-24T05:00Z"}
    best = advise(spec(window=window), catalog=catalog, service=service, now=NOW).plan.best
    assert (best.start, best.end) == (NOW + timedelta(hours=3), NOW + timedelta(hours=5))
    assert best.mean_g_per_kwh == pytest.approx(103.5)
    assert best.energy.pue == 1.2  # the location's own PUE


def test_ties_go_to_the_earliest_start(tmp_path: Path) -> None:
    # two equally cheap dips: 03:00-05:00 and 09:00-11:00
    rows = [(NOW + timedelta(hours=h), 50.0 if h in (3, 4, 9, 10) else 200.0) for h in range(24)]
    catalog, service = setup(tmp_path, rows)
    best = advise(spec(), catalog=catalog, service=service, now=NOW).plan.best
    assert best.start == NOW + timedelta(hours=3)


def test_local_without_a_configured_location_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(None, ukci_enabled=False, cache={"enabled": False})
    with pytest.raises(UserInputError, match=r"placement\.providers.*locations"):
        advise(spec(), catalog=build_catalog(settings), service=build_service(settings), now=NOW)


# ---- one value per zone, one emissions basis (issue 9) ----------------------------------------------


def _offline():  # type: ignore[no-untyped-def]
    settings = load_settings(None, ukci_enabled=False, cache={"enabled": False})
    return build_catalog(settings), build_service(settings, FixedClock(NOW))


@pytest.mark.parametrize(
    "regions",
    [
        ["aws:ca-central-1", "azure:canadaeast", "gcp:northamerica-northeast1", "aws:us-east-1"],
        ["gcp:us-west1", "aws:us-west-2", "azure:eastus"],
        ["azure:uksouth", "aws:eu-west-2", "gcp:europe-west2", "aws:eu-central-1"],
    ],
)
def test_same_zone_regions_plan_alike_whichever_provider_is_listed_first(regions: list[str]) -> None:
    catalog, service = _offline()
    outcomes = set()
    for order in (regions, list(reversed(regions)), regions[1:] + regions[:1]):
        placement = {"regions": order}
        advice = advise(spec(placement=placement, duration="1h"), catalog=catalog, service=service, now=NOW)
        options = advice.plan.options
        same_zone = [o for o in options if o.zone == options[0].zone]
        assert len(same_zone) >= 2
        # one grid, one intensity: only PUE separates them
        assert len({round(o.mean_g_per_kwh, 9) for o in same_zone}) == 1
        outcomes.add(tuple(o.ref for o in options))
    assert len(outcomes) == 1  # the ranking does not depend on the order the spec lists regions


def test_options_say_their_basis_and_a_mixed_set_gets_a_notice() -> None:
    catalog, service = _offline()
    mixed = spec(placement={"regions": ["aws:ca-central-1", "aws:eu-central-1"]}, duration="1h")
    advice = advise(mixed, catalog=catalog, service=service, now=NOW)
    data = advice.to_dict()
    by_region = {o["region"]: o for o in data["options"]}
    assert by_region["ca-central-1"]["basis"] == "direct"
    assert by_region["eu-central-1"]["basis"] == "lifecycle"
    assert all(s["basis"] in ("direct", "lifecycle") for o in data["options"] for s in o["sources"])
    notice = next(n for n in data["notices"] if n.startswith("emissions bases differ"))
    assert "direct: aws:ca-central-1" in notice and "lifecycle: aws:eu-central-1" in notice
    assert "not converted" in notice
    # one basis: no such notice
    alike = spec(placement={"regions": ["aws:eu-central-1", "aws:eu-west-3"]}, duration="1h")
    notices = advise(alike, catalog=catalog, service=service, now=NOW).notices
    assert not any(n.startswith("emissions bases differ") for n in notices)


def test_batch_advice_carries_the_same_basis_notice() -> None:
    from carbonshift.advisor import advise_many

    catalog, service = _offline()
    specs = [
        spec(placement={"regions": ["aws:ca-central-1", "aws:eu-central-1"]}, duration="1h"),
        spec(placement={"regions": ["aws:eu-central-1", "aws:eu-west-3"]}, duration="1h"),
    ]
    one_by_one = [advise(s, catalog=catalog, service=service, now=NOW).notices for s in specs]
    together = [a.notices for a in advise_many(specs, catalog=catalog, service=service, now=NOW)]
    assert together == one_by_one
    assert any(n.startswith("emissions bases differ") for n in together[0])


def test_a_json_line_is_the_advice_as_compact_json() -> None:
    """`carbonshift plan DIR` prints `to_json_line` (`json_line`'s bytes), which encodes each distinct set of exclusions
    once: whatever the placement and however often a set is shown, the text must be exactly that of
    `encode_json(to_dict)`, and read back as `json.dumps(to_dict)` does (the same keys in the same
    order, the same values and types; only a float's spelling may differ)."""
    import json

    from carbonshift.advisor import advise_many
    from carbonshift.jsonwire import encode_json

    catalog, service = _offline()
    placements = [
        {},
        {"countries": ["EU"]},
        {"providers": ["gcp"]},
        {"countries": ["ES", "FR"], "exclude": ["gcp:europe-west1"]},
        {"regions": ["aws:eu-central-1", "aws:eu-west-3"]},
    ]
    specs = [
        spec(name=f"j-{i}", placement=p, duration="1h", hardware=h, interruptible=i % 2 == 1)
        for i, (p, h) in enumerate((p, h) for p in placements for h in ({"vcpus": 8}, {"gpu": "T4"}))
    ]
    advices = advise_many(specs, catalog=catalog, service=service, now=NOW)
    for top in (None, 2):
        for advice in advices + advices:  # the second time from the memo
            line = advice.to_json_line(top=top)
            whole = advice.to_dict(top=top)
            assert line == encode_json(whole).decode()
            assert advice.json_line(top=top) == encode_json(whole) + b"\n"  # what a UTF-8 batch writes
            assert _typed(json.loads(line, object_pairs_hook=list)) == _typed(
                json.loads(json.dumps(whole, ensure_ascii=False), object_pairs_hook=list)
            )
    shown = [json.loads(a.to_json_line()) for a in advices]
    assert any(s["excluded"] for s in shown)  # rules listed one by one
    assert any(s["excluded_counts"].get("hardware") for s in shown)
    assert any(s["excluded_counts"].get("placement.regions") for s in shown)  # allow-lists only counted
    assert all(
        sum(s["excluded_counts"].values()) == len(a.excluded) for s, a in zip(shown, advices, strict=True)
    )


def _typed(value: object) -> object:
    """A parsed JSON value with each number's type beside it (1 and 1.0 compare equal otherwise)."""
    if isinstance(value, list | tuple):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)
