"""Hardware alternatives (issue 14): `hardware_options` in the spec, ranked with region and start time
by total kg CO2e (operational + embodied), each on its own duration and energy, only where offered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.advisor import advise, advise_many
from carbonshift.catalog.embodied import embodied_in_region
from carbonshift.catalog.instances import offers
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import Hardware, JobSpecError, parse_jobspec
from carbonshift.footprint import sci
from carbonshift.runtime import build_catalog, build_service

NOW = datetime(2026, 11, 24, 0, tzinfo=UTC)
A100 = {"gpu": "A100", "gpus": 8, "vcpus": 96, "memory_gb": 1152}
H100 = {"gpu": "H100", "gpus": 8, "vcpus": 96, "memory_gb": 1152}


def job(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "train",
        "command": ["python", "train.py"],
        "duration": "8h",
        "hardware": A100,
        "window": {"earliest": "2026-11-24T00:00Z", "deadline": "2026-11-24T08:00Z"},
        "placement": {"providers": ["local"]},
        # the H100 draws 700 W a GPU to the A100's 400 W, and is 1.5x as fast: more energy per run
        "hardware_options": [{**H100, "speedup": 1.5}],
    }
    data.update(extra)
    return data


def two_labs(tmp_path: Path) -> tuple[Any, Any]:
    """`flat` at 300 g all window; `dip` at 40 g for 5h20m (the H100's run) and 600 g around it."""
    files = {}
    for zone, value in {
        "FLAT-ZONE": lambda m: 300.0,
        "DIP-ZONE": lambda m: 40.0 if 60 <= m < 380 else 600.0,
    }.items():
        path = tmp_path / f"{zone}.csv"
        rows = [(NOW + timedelta(minutes=m), value(m)) for m in range(0, 24 * 60, 20)]
        path.write_text("timestamp,g_per_kwh\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in rows))
        files[zone] = str(path)
    settings = load_settings(
        None,
        ukci_enabled=False,
        cache={"enabled": False},
        intensity={"files": files},
        locations=[
            {"region": "flat", "zone": "FLAT-ZONE", "country": "ES", "pue": 1.2},
            {"region": "dip", "zone": "DIP-ZONE", "country": "ES", "pue": 1.2},
        ],
    )
    return build_catalog(settings), build_service(settings, FixedClock(NOW))


# ---- the spec ---------------------------------------------------------------------------------------


def test_options_take_a_duration_or_a_speedup() -> None:
    spec = parse_jobspec(
        job(hardware_options=[{**H100, "speedup": 1.5}, {"gpu": "L4", "gpus": 8, "duration": "20h"}])
    )
    first, second = spec.hardware_options
    assert spec.option_duration(first) == timedelta(hours=8) / 1.5
    assert spec.option_duration(second) == timedelta(hours=20)
    assert first.hardware == Hardware(**H100)
    assert parse_jobspec(spec.model_dump(mode="json")) == spec  # round-trips


def test_speedup_rounds_up_to_a_whole_second() -> None:
    spec = parse_jobspec(job(duration="1h", hardware_options=[{"gpu": "H100", "speedup": 7}]))
    assert spec.option_duration(spec.hardware_options[0]) == timedelta(seconds=515)  # 3600 / 7 = 514.3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([{"gpu": "H100"}], "hardware_options[0].speedup: give duration (its own runtime) or speedup"),
        ([{"gpu": "H100", "speedup": 2, "duration": "4h"}], "hardware_options[0].speedup: give duration"),
        ([{"gpu": "H100", "speedup": 0}], "hardware_options[0].speedup: Input should be greater than 0"),
        (
            [{"gpu": "H100", "speedup": 2}, {"gpu": "B52", "speedup": 2}],
            "hardware_options[1].gpu: unknown GPU",
        ),
        ([{"gpu": "TPU v5e", "speedup": 2}], "hardware_options[0].gpu: TPU v5e has no published TDP"),
        ([{"gpu": "H100", "duration": "4h", "watts": 1}], "hardware_options[0].watts: unknown key"),
        ([{"gpu": "H100", "duration": "0s"}], "hardware_options[0].duration: must be longer than zero"),
        ([{"gpu": "H100", "speedup": 0.0005}], "hardware_options[0].speedup: makes the run longer than 366d"),
    ],
)
def test_bad_options_name_their_field(options: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_jobspec(job(hardware_options=options))
    assert message in str(caught.value)


def test_an_option_without_a_public_tdp_is_planned_with_its_measured_power() -> None:
    spec = parse_jobspec(
        job(hardware_options=[{"gpu": "TPU v5e", "gpus": 8, "speedup": 2, "power_watts": 1800}])
    )
    assert spec.hardware_options[0].power_watts == 1800


# ---- the joint ranking ------------------------------------------------------------------------------


def test_each_alternative_wins_where_the_numbers_say_so(tmp_path: Path) -> None:
    catalog, service = two_labs(tmp_path)
    advice = advise(parse_jobspec(job()), catalog=catalog, service=service, now=NOW)
    options = advice.plan.options
    assert {(o.region, o.alternative) for o in options} == {("flat", 0), ("flat", 1), ("dip", 0), ("dip", 1)}
    by = {(o.region, o.alternative): o for o in options}
    fp = advice.plan.footprints
    assert fp is not None
    total = {key: fp.total_kg(o) for key, o in by.items()}
    # flat grid: the A100's smaller energy wins; the dip: only the H100's shorter run fits inside it
    assert total["flat", 0] < total["flat", 1]
    assert total["dip", 1] < total["dip", 0]
    assert [fp.total_kg(o) for o in options] == sorted(total.values())
    assert options[0].region == "dip" and options[0].alternative == 1
    h100 = by["dip", 1]
    assert h100.start == NOW + timedelta(hours=1) and h100.end - h100.start == timedelta(hours=8) / 1.5
    # the hungrier card draws more energy for the same job
    assert h100.energy_kwh > by["dip", 0].energy_kwh


def test_each_alternative_is_planned_as_its_own_spec(tmp_path: Path) -> None:
    """Exact: an alternative's options are those of planning its hardware and duration alone, the
    savings re-measured against the spec's own hardware."""
    catalog, service = two_labs(tmp_path)
    data = job()
    merged = advise(parse_jobspec(data), catalog=catalog, service=service, now=NOW).plan
    alone_data = {k: v for k, v in data.items() if k != "hardware_options"}
    alone_h100 = advise(
        parse_jobspec({**alone_data, "hardware": H100, "duration": "5h20m"}),
        catalog=catalog,
        service=service,
        now=NOW,
    ).plan
    alone_a100 = advise(parse_jobspec(alone_data), catalog=catalog, service=service, now=NOW).plan
    for alone, k in ((alone_a100, 0), (alone_h100, 1)):
        for o in alone.options:
            m = next(x for x in merged.options if x.ref == o.ref and x.alternative == k)
            assert (m.start_s, m.end_s, m.mean_g_per_kwh, m.kg_co2e, m.energy_kwh) == (
                o.start_s,
                o.end_s,
                o.mean_g_per_kwh,
                o.kg_co2e,
                o.energy_kwh,
            )
            a100_here = next(x for x in alone_a100.options if x.ref == o.ref)
            assert m.baseline_kg_co2e == a100_here.baseline_kg_co2e  # the A100 at earliest, there
            assert m.savings_kg == pytest.approx(m.baseline_kg_co2e - m.kg_co2e)
    # own-region baseline: the spec's own hardware at earliest in the best option's region
    assert (merged.baseline.region, merged.baseline.energy.duration_s) == ("dip", 8 * 3600)


def test_options_are_filtered_by_what_each_region_offers() -> None:
    settings = load_settings(None, ukci_enabled=False, cache={"enabled": False})
    catalog, service = build_catalog(settings), build_service(settings, FixedClock(NOW))
    a100, h100 = Hardware(**A100), Hardware(**H100)
    both = next(
        r
        for r in catalog.regions()
        if offers(r.provider, r.region, a100) and offers(r.provider, r.region, h100)
    )
    only_a100 = next(
        r
        for r in catalog.regions()
        if offers(r.provider, r.region, a100) and not offers(r.provider, r.region, h100)
    )
    refs = [f"{both.provider}:{both.region}", f"{only_a100.provider}:{only_a100.region}"]
    spec = parse_jobspec(job(placement={"regions": refs}, duration="2h", window={}))
    advice = advise(spec, catalog=catalog, service=service, now=NOW)
    got = {(o.ref, o.alternative) for o in advice.plan.options}
    assert got == {(refs[0], 0), (refs[0], 1), (refs[1], 0)}
    assert not any(e.rule == "hardware" for e in advice.excluded if e.region in refs)
    # the other way round: the A100-only region runs the alternative
    h100_first = parse_jobspec(
        job(
            hardware=H100,
            hardware_options=[{**A100, "duration": "3h"}],
            placement={"regions": refs},
            duration="2h",
            window={},
        )
    )
    got = {
        (o.ref, o.alternative)
        for o in advise(h100_first, catalog=catalog, service=service, now=NOW).plan.options
    }
    assert got == {(refs[0], 0), (refs[0], 1), (refs[1], 1)}
    # a region offering neither is left out naming both
    nowhere = parse_jobspec(
        job(
            hardware=H100,
            hardware_options=[{**H100, "gpus": 64, "speedup": 2}],
            window={},
            duration="2h",
            placement={"regions": refs},
        )
    )
    hardware_out = [
        e for e in advise(nowhere, catalog=catalog, service=service, now=NOW).excluded if e.rule == "hardware"
    ]
    assert [e.region for e in hardware_out] == [refs[1]]
    assert hardware_out[0].reason.endswith("nor any of hardware_options")


def test_an_alternative_too_slow_for_the_window_is_left_out_with_a_notice(tmp_path: Path) -> None:
    catalog, service = two_labs(tmp_path)
    spec = parse_jobspec(
        job(hardware_options=[{**H100, "speedup": 1.5}, {"gpu": "L4", "gpus": 8, "duration": "20h"}])
    )
    advice = advise(spec, catalog=catalog, service=service, now=NOW)
    assert {o.alternative for o in advice.plan.options} == {0, 1}
    assert any(
        n.startswith("hardware_options[1] (8x L4 20h) left out: must be at least") for n in advice.notices
    )


def test_batch_equals_single(tmp_path: Path) -> None:
    catalog, service = two_labs(tmp_path)
    specs = [
        parse_jobspec(job()),
        parse_jobspec(job(name="plain", hardware_options=[])),
        parse_jobspec(job(name="faster", hardware_options=[{**H100, "duration": "3h"}])),
        parse_jobspec(job(name="based", baseline="local:flat")),
        parse_jobspec(job(name="sized", hardware={"gpu": "A100", "gpus": 8})),  # planned one by one
    ]
    specs += specs[::2]  # the same spec objects again: each is planned, and answered, in its place
    single = [advise(s, catalog=catalog, service=service, now=NOW).to_dict() for s in specs]
    batch = [a.to_dict() for a in advise_many(specs, catalog=catalog, service=service, now=NOW)]
    for one in (*single, *batch):
        one.pop("generated_at")
    assert batch == single


def test_batch_equals_single_on_the_cloud_catalog() -> None:
    settings = load_settings(None, ukci_enabled=False, cache={"enabled": False})
    catalog, service = build_catalog(settings), build_service(settings, FixedClock(NOW))
    specs = [
        parse_jobspec(job(name=f"j-{i}", placement=placement, window={}, duration="2h", **extra))
        for i, (placement, extra) in enumerate(
            [
                ({"providers": ["aws"]}, {}),
                ({"countries": ["US"]}, {"baseline": "gcp:us-central1"}),
                ({}, {"hardware": H100, "hardware_options": [{**A100, "duration": "3h"}]}),
                ({"providers": ["gcp", "azure"]}, {"interruptible": True, "min_chunk": "1h"}),
            ]
        )
    ]
    single = [advise(s, catalog=catalog, service=service, now=NOW).to_dict() for s in specs]
    batch = [a.to_dict() for a in advise_many(specs, catalog=catalog, service=service, now=NOW)]
    assert batch == single
    assert all(len({o["hardware"]["option"] for o in one["options"]}) == 2 for one in batch)


# ---- the JSON -----------------------------------------------------------------------------------------


def test_option_json_carries_hardware_embodied_total_and_sci(tmp_path: Path) -> None:
    catalog, service = two_labs(tmp_path)
    spec = parse_jobspec(job(functional_unit={"name": "epoch", "count": 90}))
    data = advise(spec, catalog=catalog, service=service, now=NOW).to_dict()
    best, *_ = data["options"]
    assert best["hardware"] == {
        "option": 1,
        "field": "hardware_options[0]",
        "gpu": "H100",
        "gpus": 8,
        "vcpus": 96,
        "memory_gb": 1152.0,
        "duration": "5h20m",
        "duration_s": 19200,
    }
    embodied = embodied_in_region("local", "dip", Hardware(**H100), 19200).kg_co2e
    assert best["embodied_kg_co2e"] == round(embodied, 6)
    assert best["total_kg_co2e"] == pytest.approx(best["kg_co2e"] + best["embodied_kg_co2e"], abs=2e-6)
    assert best["sci"]["kg_co2e_per_unit"] == pytest.approx(sci(best["kg_co2e"], embodied, 90), rel=1e-6)
    assert best["sci"]["functional_unit"] == {"name": "epoch", "count": 90}
    base = data["baseline"]
    base_embodied = embodied_in_region("local", base["region"], Hardware(**A100), 8 * 3600).kg_co2e
    assert base["total_kg_co2e"] == pytest.approx(base["kg_co2e"] + base_embodied, abs=2e-6)
    assert best["total_savings_kg"] == pytest.approx(
        best["baseline_kg_co2e"] + base_embodied - best["total_kg_co2e"], abs=5e-6
    )
    assert data["footprint"]["ranked_by"] == "total_kg_co2e"
    assert [h["option"] for h in data["footprint"]["hardware_options"]] == [0, 1]
    assert [h["duration"] for h in data["footprint"]["hardware_options"]] == ["8h", "5h20m"]


def test_a_plan_without_alternatives_adds_embodied_and_total_but_no_hardware(tmp_path: Path) -> None:
    catalog, service = two_labs(tmp_path)
    spec = parse_jobspec(job(hardware_options=[]))
    advice = advise(spec, catalog=catalog, service=service, now=NOW)
    data = advice.to_dict()
    assert data["footprint"]["ranked_by"] == "kg_co2e"
    for option, shown in zip(advice.plan.options, data["options"], strict=True):
        assert "hardware" not in shown and "sci" not in shown
        embodied = embodied_in_region(option.provider, option.region, Hardware(**A100), 8 * 3600).kg_co2e
        assert shown["embodied_kg_co2e"] == round(embodied, 6)
        assert shown["kg_co2e"] == round(option.kg_co2e, 6)  # operational, as before
    kgs = [o["kg_co2e"] for o in data["options"]]
    assert kgs == sorted(kgs)  # ranked by operational kg, as before


# ---- the table --------------------------------------------------------------------------------------


def test_the_table_shows_the_hardware_column_only_with_alternatives(tmp_path: Path) -> None:
    from carbonshift.cli.plan_view import render_plan

    catalog, service = two_labs(tmp_path)
    with_alternatives = advise(parse_jobspec(job()), catalog=catalog, service=service, now=NOW)
    text = render_plan(with_alternatives.plan, 10, with_alternatives.notices)
    head = next(line for line in text.splitlines() if line.startswith("#  region"))
    assert head.split()[:6] == ["#", "region", "zone", "hardware", "start", "(UTC)"]
    assert "embodied kg" in head and "total kg" in head
    first_row = text.splitlines()[text.splitlines().index(head) + 2]
    assert "local:dip" in first_row and "8x H100 5h20m" in first_row
    assert "hardware: 0: 8x A100 8h; 1: 8x H100 5h20m" in text
    plain = advise(parse_jobspec(job(hardware_options=[])), catalog=catalog, service=service, now=NOW)
    plain_head = next(
        line for line in render_plan(plain.plan, 10, []).splitlines() if line.startswith("#  region")
    )
    assert "hardware" not in plain_head and "embodied kg" in plain_head and "total kg" in plain_head


def test_the_plot_draws_a_region_once_whatever_hardware_its_options_use(tmp_path: Path) -> None:
    from carbonshift.cli.plan_plot import lines_of

    catalog, service = two_labs(tmp_path)
    advice = advise(parse_jobspec(job()), catalog=catalog, service=service, now=NOW)
    lines = lines_of(advice, 8)
    assert sorted(ref for line in lines for ref in line.refs) == ["local:dip", "local:flat"]


def test_a_recurring_spec_plans_its_occurrence_on_every_alternative_that_fits(tmp_path: Path) -> None:
    catalog, service = two_labs(tmp_path)
    spec = parse_jobspec(
        job(
            window={},
            duration="2h",
            schedule={"cron": "0 1 * * *", "flex": "2h"},  # 01:00 + 2h flex + 2h: until 05:00
            hardware_options=[{**H100, "duration": "1h"}, {"gpu": "L4", "gpus": 8, "duration": "6h"}],
        )
    )
    advice = advise(spec, catalog=catalog, service=service, now=NOW)
    assert {o.alternative for o in advice.plan.options} == {0, 1}
    assert all(
        o.start >= NOW + timedelta(hours=1) and o.end <= NOW + timedelta(hours=5) for o in advice.plan.options
    )
    assert any(n.startswith("hardware_options[1] (8x L4 6h) left out") for n in advice.notices)
