"""The pure plan(): ranking, baselines, savings, provenance, signals, flat static data, JSON shape."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from carbonshift.config.jobspec import JobSpec, loads_jobspec, parse_jobspec
from carbonshift.errors import UserInputError
from carbonshift.intensity.types import IntensitySeries, Kind, Signal
from carbonshift.planner.contiguous import best_start
from carbonshift.planner.energy import estimate_energy
from carbonshift.planner.plan import NO_TIME_PREFERENCE, Candidate, PlanningError, plan

from .helpers import T0, T0_S, Reg, hourly, prov, series

NOW = T0  # 2026-11-24T18:00Z
DAY = [400.0] * 6 + [100.0] * 6 + [300.0] * 12  # 24 hourly values from 18:00Z: clean 00:00-06:00Z


def spec(**extra: Any) -> JobSpec:
    data: dict[str, Any] = {
        "name": "train",
        "command": ["python", "train.py"],
        "duration": "4h",
        "hardware": {"gpu": "A100", "gpus": 8, "vcpus": 32, "memory_gb": 256},
    }
    data.update(extra)
    return parse_jobspec(data)


def test_ranks_regions_and_measures_savings_against_the_baseline_region() -> None:
    clean = Candidate(Reg("gcp", "europe-north1", pue=1.1), hourly(DAY))
    dirty = Candidate(Reg("gcp", "us-central1", pue=1.1), hourly([500.0] * 24))
    result = plan(spec(baseline="gcp:us-central1"), [dirty, clean], now=NOW)

    best = result.best
    assert (best.provider, best.region) == ("gcp", "europe-north1")
    assert best.start == NOW + timedelta(hours=6) and best.end == NOW + timedelta(hours=10)
    assert best.mean_g_per_kwh == pytest.approx(100.0)
    energy = estimate_energy(result_spec := spec(baseline="gcp:us-central1"), 1.1)
    assert best.kg_co2e == pytest.approx(energy.kwh * 100.0 / 1000)
    assert result.baseline.region == "us-central1" and result.baseline.basis == "spec"
    assert result.baseline.start == NOW and result.baseline.kg_co2e == pytest.approx(energy.kwh * 0.5)
    assert best.savings_pct == pytest.approx(80.0)
    assert best.savings_kg == pytest.approx(energy.kwh * 0.4)
    assert [o.kg_co2e for o in result.options] == sorted(o.kg_co2e for o in result.options)
    assert result.energy_kwh == pytest.approx(energy.it_kwh)  # IT energy, before PUE
    assert result_spec.name == result.job == "train"


def test_without_a_baseline_each_option_is_compared_with_its_own_region_at_earliest() -> None:
    a = Candidate(Reg("aws", "eu-west-1", pue=1.2), hourly(DAY))
    b = Candidate(Reg("aws", "eu-north-1", pue=1.2), hourly([50.0] * 24))
    result = plan(spec(), [a, b], now=NOW)
    first, second = result.options
    assert first.region == "eu-north-1" and first.savings_pct == pytest.approx(0.0)
    assert second.region == "eu-west-1"
    assert second.baseline_kg_co2e == pytest.approx(second.energy.kwh * 0.4)  # 400 g/kWh at 18:00Z
    assert second.savings_pct == pytest.approx(75.0)
    assert result.baseline.region == "eu-north-1" and result.baseline.basis == "own-region"
    assert any("own region" in n for n in result.notes)


def test_pue_changes_the_ranking_at_equal_intensity() -> None:
    lean = Candidate(Reg("gcp", "a", pue=1.08), hourly([200.0] * 24))
    wasteful = Candidate(Reg("azure", "b", pue=1.5), hourly([200.0] * 24))
    result = plan(spec(), [wasteful, lean], now=NOW)
    assert result.best.region == "a"
    assert result.options[1].energy.kwh / result.best.energy.kwh == pytest.approx(1.5 / 1.08)


def test_flat_static_values_give_no_time_preference() -> None:
    span = series([T0_S, T0_S + 24 * 3600], [300.0], kind=Kind.STATIC)
    other = series([T0_S, T0_S + 24 * 3600], [120.0], kind=Kind.STATIC)
    result = plan(spec(), [Candidate(Reg("aws", "x"), span), Candidate(Reg("aws", "y"), other)], now=NOW)
    assert result.no_time_preference
    assert result.notes[0] == NO_TIME_PREFERENCE
    assert all(o.start == NOW for o in result.options)
    assert all(o.static_fallback and o.flat for o in result.options)
    assert result.best.region == "y"
    assert result.to_dict()["no_time_preference"] is True


def test_static_fallback_and_sources_report_what_the_chosen_window_used() -> None:
    forecast, static = prov("electricitymaps", Kind.FORECAST), prov("ember", Kind.STATIC)
    # 12 h of forecast, then 12 h of static: the cheap hours are at the start of the static part
    values = [400.0] * 10 + [350.0] * 2 + [100.0] * 12
    s = series(
        (T0_S + 3600 * np.arange(25)).tolist(),
        values,
        provenances=[forecast, static],
        prov_index=[0] * 12 + [1] * 12,
    )
    result = plan(spec(), [Candidate(Reg("gcp", "x"), s)], now=NOW)
    best = result.best
    assert best.start == NOW + timedelta(hours=12)
    assert best.static_fallback
    assert [(x.source, x.kind, x.share) for x in best.sources] == [("ember", Kind.STATIC, 1.0)]
    assert result.baseline.sources[0].source == "electricitymaps" and not result.baseline.static_fallback
    # a run straddling both reports both, by share of time
    straddle = plan(
        spec(window={"earliest": "2026-11-25T04:00Z", "deadline": "2026-11-25T08:00Z"}),
        [Candidate(Reg("gcp", "x"), s)],
        now=NOW,
    ).best
    assert {(x.source, x.share) for x in straddle.sources} == {("electricitymaps", 0.5), ("ember", 0.5)}


def test_average_and_marginal_are_never_compared() -> None:
    avg = Candidate(Reg("aws", "a"), hourly(DAY))
    marg = Candidate(Reg("aws", "b"), hourly(DAY, signal=Signal.MARGINAL))
    with pytest.raises(PlanningError, match="average and marginal"):
        plan(spec(), [avg, marg], now=NOW)
    with pytest.raises(PlanningError, match="average and marginal"):
        plan(
            spec(baseline="aws:c"),
            [avg],
            now=NOW,
            baseline=(Reg("aws", "c"), hourly(DAY, signal=Signal.MARGINAL)),
        )
    assert plan(spec(), [marg], now=NOW).signal is Signal.MARGINAL


def test_baseline_outside_the_candidates() -> None:
    cand = Candidate(Reg("gcp", "europe-north1"), hourly(DAY))
    with pytest.raises(PlanningError, match="not a candidate"):
        plan(spec(baseline="gcp:us-central1"), [cand], now=NOW)
    result = plan(
        spec(baseline="gcp:us-central1"),
        [cand],
        now=NOW,
        baseline=(Reg("gcp", "us-central1"), hourly([500.0] * 24)),
    )
    assert result.baseline.mean_g_per_kwh == 500.0
    assert result.best.savings_pct == pytest.approx(80.0)


def test_series_that_do_not_cover_the_window_are_refused_by_name() -> None:
    short = Candidate(Reg("aws", "short"), hourly([100.0] * 10))
    with pytest.raises(PlanningError, match="aws:short"):
        plan(spec(), [short], now=NOW)
    gappy = Candidate(Reg("aws", "gappy"), hourly([100.0] * 5 + [np.nan] + [100.0] * 18))
    with pytest.raises(PlanningError, match=r"aws:gappy.*gaps"):
        plan(spec(), [gappy], now=NOW)


def test_no_candidates_and_impossible_windows_are_user_errors() -> None:
    with pytest.raises(UserInputError) as info:
        plan(spec(), [], now=NOW)
    assert info.value.where == "placement"
    late = spec(window={"deadline": "2026-11-24T20:00Z"})
    with pytest.raises(UserInputError) as info:
        plan(late, [Candidate(Reg("aws", "a"), hourly(DAY))], now=NOW)
    assert info.value.where == "window.deadline"


def test_json_has_the_documented_keys_and_is_serialisable() -> None:
    result = plan(
        spec(baseline="gcp:b"),
        [
            Candidate(Reg("gcp", "a", zone="SE-SE3"), hourly(DAY)),
            Candidate(Reg("gcp", "b"), hourly([500.0] * 24)),
        ],
        now=NOW,
    )
    doc = json.loads(json.dumps(result.to_dict()))
    assert {"job", "signal", "energy_kwh", "baseline", "options"} <= set(doc)
    assert {"provider", "region", "start", "end", "mean_g_per_kwh", "kg_co2e"} <= set(doc["baseline"])
    for option in doc["options"]:
        assert {
            "provider",
            "region",
            "zone",
            "start",
            "end",
            "mean_g_per_kwh",
            "kg_co2e",
            "savings_pct",
            "sources",
            "static_fallback",
        } <= set(option)
    assert doc["job"] == "train" and doc["signal"] == "average"
    assert doc["options"][0]["zone"] == "SE-SE3"
    assert doc["options"][0]["start"] == "2026-11-25T00:00:00Z"
    assert [o["kg_co2e"] for o in doc["options"]] == sorted(o["kg_co2e"] for o in doc["options"])
    assert len(result.to_dict(top=1)["options"]) == 1
    assert doc["generated_at"] == "2026-11-24T18:00:00Z"


def test_interruptible_jobs_get_chunks() -> None:
    values = [400.0, 50.0, 400.0, 400.0, 60.0, 60.0, 400.0, 70.0] + [400.0] * 16
    s = spec(interruptible=True, min_chunk="1h", duration="4h")
    result = plan(s, [Candidate(Reg("aws", "a"), hourly(values))], now=NOW)
    best = result.best
    chunks = [(a - NOW, b - NOW) for a, b in best.chunks]
    hours = [(int(a.total_seconds() // 3600), int(b.total_seconds() // 3600)) for a, b in chunks]
    assert hours == [(1, 2), (4, 6), (7, 8)]
    assert best.mean_g_per_kwh == pytest.approx((50 + 60 + 60 + 70) / 4)
    assert (best.start, best.end) == (best.chunks[0][0], best.chunks[-1][1])
    assert len(result.to_dict()["options"][0]["chunks"]) == 3
    # a longer minimum chunk forces a contiguous-enough schedule
    longer = plan(
        spec(interruptible=True, min_chunk="2h"), [Candidate(Reg("aws", "a"), hourly(values))], now=NOW
    )
    assert all(b - a >= timedelta(hours=2) for a, b in longer.best.chunks)


def test_a_min_chunk_too_fine_for_the_exact_programme_says_so() -> None:
    """min_chunk 1799 s on hourly data: slots of 1 s would make the programme too large, so the plan
    is the best single run, marked inexact in the option and in the notes (never silently)."""
    values = [400.0, 50.0, 400.0, 400.0, 60.0, 60.0, 400.0, 70.0] + [400.0] * 16
    s = spec(interruptible=True, min_chunk="1799s", duration="4h")
    result = plan(s, [Candidate(Reg("aws", "a"), hourly(values))], now=NOW)
    assert not result.best.exact and len(result.best.chunks) == 1
    assert result.to_dict()["options"][0]["exact"] is False
    assert any("best single run" in note and "aws:a" in note for note in result.notes)
    # on the data's step the same job is split exactly
    exact = plan(
        spec(interruptible=True, min_chunk="30m", duration="4h"),
        [Candidate(Reg("aws", "a"), hourly(values))],
        now=NOW,
    )
    assert exact.best.exact and "exact" not in exact.to_dict()["options"][0]
    assert exact.best.mean_g_per_kwh < result.best.mean_g_per_kwh


def test_spec_times_across_dst_plan_in_utc() -> None:
    # the user writes Berlin local times across the spring change; the data is hourly in UTC
    s = loads_jobspec(
        "name: dst\ncommand: x\nduration: 2h\n"
        "window: {earliest: 2026-03-29T00:00+01:00, deadline: 2026-03-29T06:00+02:00}"
    )
    start_s = int(datetime(2026, 3, 28, 23, tzinfo=UTC).timestamp())
    values = [300.0, 300.0, 100.0, 100.0, 300.0, 300.0]  # 23:00Z .. 05:00Z
    result = plan(
        s,
        [Candidate(Reg("aws", "a"), hourly(values, start_s=start_s))],
        now=datetime(2026, 3, 28, tzinfo=UTC),
    )
    assert result.earliest == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert result.deadline == datetime(2026, 3, 29, 4, tzinfo=UTC)  # 06:00 CEST, a 5 h window
    assert result.best.start == datetime(2026, 3, 29, 1, tzinfo=UTC)


def test_series_with_different_edges_are_planned_alike() -> None:
    rng = np.random.default_rng(11)
    cands = []
    for i in range(12):
        step = [300, 900, 3600][i % 3]
        n = 24 * 3600 // step
        edges = T0_S + step * np.arange(n + 1)
        cands.append(Candidate(Reg("gcp", f"r{i}"), series(edges.tolist(), rng.uniform(50, 500, n).tolist())))
    now = NOW + timedelta(seconds=437)  # earliest off every grid
    result = plan(spec(duration="3h20m", window={"deadline": "2026-11-25T18:00Z"}), cands, now=now)
    lo = int(now.timestamp())
    hi = T0_S + 24 * 3600
    for option in result.options:
        cand = next(c for c in cands if c.region.region == option.region)
        start, mean = best_start(cand.series.edges_s, cand.series.values, lo, hi - 12000, 12000)
        assert int(option.start.timestamp()) == start
        assert option.mean_g_per_kwh == pytest.approx(mean)


def test_a_custom_energy_function_is_used() -> None:
    s = spec()
    calls: list[str] = []

    def energy_for(region: Any) -> Any:
        calls.append(region.region)
        return estimate_energy(s, 2.0)

    result = plan(s, [Candidate(Reg("aws", "a"), hourly(DAY))], now=NOW, energy_for=energy_for)
    assert calls == ["a"] and result.best.energy.pue == 2.0


def test_series_are_not_modified() -> None:
    s = hourly(DAY)
    before = (s.edges_s.copy(), s.values.copy())
    plan(spec(interruptible=True), [Candidate(Reg("aws", "a"), s)], now=NOW)
    assert np.array_equal(before[0], s.edges_s) and np.array_equal(before[1], s.values)
    assert isinstance(s, IntensitySeries)


def test_missing_pue_uses_the_stated_default_and_impossible_ones_are_refused() -> None:
    result = plan(spec(), [Candidate(Reg("local", "here", pue=None), hourly(DAY))], now=NOW)
    assert result.best.pue == 1.56
    assert any("PUE 1.56 assumed" in a for a in result.best.energy.assumptions)
    assert result.best.energy.kwh == pytest.approx(result.best.energy_kwh)
    with pytest.raises(PlanningError, match="below 1"):
        plan(spec(), [Candidate(Reg("aws", "odd", pue=0.9), hourly(DAY))], now=NOW)


def test_shown_figures_are_pythons_round_for_few_options_and_for_many() -> None:
    """`option_dicts` rounds a few options one by one and many together (`rounded`): either way each
    figure must be `round` of the option's own value, to the bit (a --top 3 line and the API's
    whole plan say the same of an option)."""
    from carbonshift.planner.option_columns import built_columns
    from carbonshift.planner.plan import option_dicts
    from carbonshift.planner.rounding import SMALL

    rng = np.random.default_rng(13)
    cands = [
        Candidate(
            Reg("aws", f"r-{i}", pue=float(rng.uniform(1.05, 1.6))), hourly(rng.uniform(20, 700, 24).tolist())
        )
        for i in range(SMALL + 8)
    ]
    result = plan(spec(baseline="aws:r-0"), cands, now=NOW)
    options = list(result.options)
    for n in (1, 3, SMALL - 1, SMALL, len(options)):
        for o, d in zip(options[:n], option_dicts(built_columns(options[:n])), strict=True):
            want = {
                "mean_g_per_kwh": round(o.mean_g_per_kwh, 3),
                "kg_co2e": round(o.kg_co2e, 6),
                "savings_pct": None if o.savings_pct is None else round(o.savings_pct, 2),
                "savings_kg": round(o.savings_kg, 6),
                "baseline_kg_co2e": round(o.baseline_kg_co2e, 6),
                "energy_kwh": round(o.energy_kwh, 6),
            }
            got = {k: d[k] for k in want}
            assert {k: v if v is None else v.hex() for k, v in got.items()} == {
                k: v if v is None else v.hex() for k, v in want.items()
            }, (n, o.region)


def test_plans_sharing_an_energy_estimate_show_it_alike_and_apart() -> None:
    """A plan's `energy` object is worked out once per estimate (a batch shares them): every plan
    shows the estimate's words less the PUE's, and each gets its own dicts to change."""
    cands = [Candidate(Reg("aws", "a"), hourly(DAY)), Candidate(Reg("aws", "b"), hourly([50.0] * 24))]
    first = plan(spec(), cands, now=NOW)
    second = dataclasses.replace(first, job="other")
    assert second.it_energy is first.it_energy
    a, b = first.to_dict()["energy"], second.to_dict()["energy"]
    whole = first.it_energy.to_dict()
    assert a == b
    assert a["assumptions"] == [w for w in whole["assumptions"] if not w.startswith("PUE")]
    assert (a["it_power_w"], a["power_w"], a["source"]) == (
        whole["it_power_w"],
        whole["power_w"],
        whole["source"],
    )
    a["power_w"]["gpu"] = -1.0
    a["assumptions"].append("changed")
    assert second.to_dict()["energy"] == b
