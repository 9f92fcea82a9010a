"""plan_batch against plan(): the same plans for every spec, however the batch shares its work."""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonshift.advisor import advise, advise_many
from carbonshift.catalog import load_catalog
from carbonshift.clock import FixedClock
from carbonshift.config import load_settings
from carbonshift.config.jobspec import JobSpec, load_jobspec, parse_jobspec
from carbonshift.intensity.service import IntensityService
from carbonshift.intensity.sources.files import FileSource
from carbonshift.intensity.types import IntensitySeries, Kind, Signal
from carbonshift.planner import batch
from carbonshift.planner.batch import PlacementIndex, RankedOptions, plan_batch
from carbonshift.planner.contiguous import run_integrals
from carbonshift.planner.options import flag_columns, flags_of
from carbonshift.planner.placement import filter_candidates
from carbonshift.planner.plan import Candidate, Plan, PlanOption, plan

from .helpers import T0, T0_S, Reg, emissions, prov, series

REPO = Path(__file__).resolve().parents[2]
HOUR = 3600


def spec(
    duration_s: int,
    *,
    earliest_s: int | None = None,
    deadline_s: int | None = None,
    name: str = "job",
    **extra: Any,
) -> JobSpec:
    data: dict[str, Any] = {
        "name": name,
        "command": ["run"],
        "duration": f"{duration_s}s",
        "hardware": {"gpu": "A100", "gpus": 1, "vcpus": 8, "memory_gb": 64},
    }
    window: dict[str, str] = {}
    if earliest_s is not None:
        window["earliest"] = datetime.fromtimestamp(earliest_s, UTC).isoformat()
    if deadline_s is not None:
        window["deadline"] = datetime.fromtimestamp(deadline_s, UTC).isoformat()
    if window:
        data["window"] = window
    data.update(extra)
    return parse_jobspec(data)


# ---- comparing plans --------------------------------------------------------------------------------


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        return exc


def loop(
    specs: Sequence[JobSpec],
    cands_for: Callable[[JobSpec], Sequence[Candidate]],
    base_for: Callable[[JobSpec], Candidate | None],
    now: datetime,
) -> list[Plan] | Exception:
    """What plan_batch must equal: plan() per spec, stopping at the first error."""
    out = []
    for s in specs:
        got = outcome(lambda s=s: plan(s, cands_for(s), now=now, baseline=base_for(s)))
        if isinstance(got, Exception):
            return got
        out.append(got)
    return out


def close(a: float, b: float, rel: float = 1e-9, scale: float = 0.0) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9 + 1e-12 * scale)


def rounding_scale(o: PlanOption) -> float:
    """How large the batch's rounding can be, as a mean: it integrates the whole series, so its error
    is a few ulps of the series' integral, spread over the run."""
    s = o.series
    span = float(s.edges_s[-1] - s.edges_s[0])
    top = float(np.nanmax(np.abs(s.values))) if not np.isnan(s.values).all() else 0.0
    return top * span / max(o.end_s - o.start_s, 1)


def assert_same_plan(got: Plan, want: Plan, *, strict_starts: bool) -> None:
    """The same plan: where each region's best start is the same (always, on data whose integrals
    are exact), every field of the plan and of every option, in order, to the last bit. Otherwise
    (float data, a start within rounding of the tie tolerance) the other start's emissions equal the
    best to rounding, and only options whose kg are that close may swap places."""
    columns = flag_columns(got.options)  # read from the batch's arrays, before any option is built
    built = [flags_of(o) for o in got.options]
    assert columns.fallback.tolist() == [f.fallback for f in built]
    assert columns.static_only.tolist() == [f.static_only for f in built]
    assert columns.exact.tolist() == [f.exact for f in built]
    starts = {o.ref: o.start_s for o in want.options}
    same_starts = {o.ref: o.start_s for o in got.options} == starts
    assert same_starts or not strict_starts, ([o.start_s for o in got.options], list(starts.values()))
    if same_starts:
        # the dicts are read from the batch's columns (a table of every plan's first PRESUMMED
        # ranks, or of every rank), want's from its built options: the same JSON, to the bit
        for top in (1, batch.PRESUMMED, None):
            assert json.dumps(got.to_dict(top=top)) == json.dumps(want.to_dict(top=top))
        assert got == want
        assert got.to_dict() == want.to_dict()
        assert got.notes == want.notes
        return
    for name in ("job", "signal", "generated_at", "earliest", "deadline", "duration_s", "interruptible"):
        assert getattr(got, name) == getattr(want, name), name
    assert (got.min_chunk_s, got.it_energy, got.no_time_preference) == (
        want.min_chunk_s,
        want.it_energy,
        want.no_time_preference,
    )
    by_ref = {o.ref: o for o in want.options}
    assert sorted(by_ref) == sorted(o.ref for o in got.options)
    for o in got.options:
        w = by_ref[o.ref]
        scale = rounding_scale(w)
        assert close(o.mean_g_per_kwh, w.mean_g_per_kwh, scale=scale), (o.ref, o, w)
        assert close(o.kg_co2e, w.kg_co2e, scale=scale * w.energy_kwh / 1000.0)
        assert (o.energy_kwh, o.pue, o.flat, o.series) == (w.energy_kwh, w.pue, w.flat, w.series)
    got_refs = [o.ref for o in got.options]
    want_refs = [o.ref for o in want.options]
    i = 0
    while i < len(want_refs):  # runs of options whose kg are equal to rounding may be permuted
        j = i + 1
        w = want.options[i]
        scale = rounding_scale(w) * w.energy_kwh / 1000.0
        while j < len(want_refs) and close(want.options[j].kg_co2e, w.kg_co2e, 1e-12, scale):
            j += 1
        assert sorted(got_refs[i:j]) == sorted(want_refs[i:j]), (got_refs, want_refs)
        i = j
    assert (got.baseline.start, got.baseline.end, got.baseline.basis) == (
        want.baseline.start,
        want.baseline.end,
        want.baseline.basis,
    )


# ---- random batches ---------------------------------------------------------------------------------


@dataclass
class Batch:
    pool: list[Candidate]  # every region with its series
    specs: list[JobSpec]
    subsets: list[list[int]]  # per spec, the indices of its candidates in `pool` (shared lists)
    base_extra: Candidate | None  # a baseline region that is no candidate
    now: datetime


@st.composite
def batches(draw: st.DrawFn, integer: bool) -> Batch:
    """Series in one to three edge groups (regular or not, starting at or before T0, all covering T0
    .. T0 + horizon), some shared by two regions; specs of any duration and window inside that,
    aligned or not, some interruptible, some with a baseline; now and then a spec plan() refuses (a
    window past a series' end or over a gap, an unknown baseline, a deadline already too close)."""
    now_s = T0_S + draw(st.sampled_from([0, 0, 17, 300, 1799]))
    horizon = draw(st.sampled_from([1, 3, 8])) * HOUR
    end_s = T0_S + horizon
    pool: list[Candidate] = []
    for g in range(draw(st.integers(1, 3))):
        first = T0_S - draw(st.sampled_from([0, 0, 600, 3600]))
        if draw(st.booleans()):
            step = draw(st.sampled_from([300, 900, 3600]))
            n = -(-(end_s - first) // step) + draw(st.integers(0, 3))
            widths = [step] * n
        else:
            pattern = draw(
                st.lists(st.sampled_from([60, 300, 700, 1800, 3600, 5400]), min_size=1, max_size=12)
            )
            widths = []
            while first + sum(widths) < end_s:
                widths += pattern
        edges = np.cumsum([first, *widths])
        for r in range(draw(st.integers(1, 3))):
            if integer:
                vals = draw(st.lists(st.integers(0, 12), min_size=len(widths), max_size=len(widths)))
                values = [float(v * 50) for v in vals]
            else:
                values = draw(
                    st.lists(st.floats(0, 900, allow_nan=False), min_size=len(widths), max_size=len(widths))
                )
            if draw(st.sampled_from([False] * 14 + [True])):  # a gap: plan() refuses windows over it
                values[draw(st.integers(0, len(values) - 1))] = float("nan")
            if draw(st.booleans()):
                s = series(edges.tolist(), values, zone=f"Z{g}{r}")
            else:
                provs = (prov("live", Kind.FORECAST), prov("static", Kind.STATIC))
                idx = draw(st.lists(st.integers(0, 1), min_size=len(values), max_size=len(values)))
                s = series(edges.tolist(), values, zone=f"Z{g}{r}", provenances=provs, prov_index=idx)
            for copy in range(draw(st.sampled_from([1, 1, 2]))):
                pue = draw(st.sampled_from([None, 1.1, 1.1, 1.25]))
                region = Reg(
                    draw(st.sampled_from(["aws", "gcp"])), f"r{g}{r}{copy}", zone=f"Z{g}{r}", pue=pue
                )
                pool.append(Candidate(region, s))
    refs = [f"{c.region.provider}:{c.region.region}" for c in pool]
    extra: Candidate | None = None
    if draw(st.booleans()):
        extra_series = pool[draw(st.integers(0, len(pool) - 1))].series
        extra = Candidate(Reg("azure", "base", pue=1.2), extra_series)
    subsets_choices = [list(range(len(pool)))]
    if len(pool) > 1:
        subsets_choices.append(sorted(draw(st.sets(st.integers(0, len(pool) - 1), min_size=1))))
    refuse = draw(st.sampled_from([False] * 7 + [True]))  # one spec in the batch that plan() refuses
    specs: list[JobSpec] = []
    subsets: list[list[int]] = []
    for k in range(draw(st.integers(1, 7))):
        earliest = draw(st.integers(now_s, end_s - 1))
        if draw(st.booleans()):
            earliest = max(earliest - earliest % 300, now_s)
        deadline = draw(st.integers(earliest + 1, end_s))
        duration = draw(st.integers(1, deadline - earliest))
        if draw(st.booleans()):
            duration = max(300, duration - duration % 300)
        extra_fields: dict[str, Any] = {}
        if draw(st.sampled_from([False] * 4 + [True])):
            extra_fields["interruptible"] = True
            extra_fields["min_chunk"] = f"{draw(st.sampled_from([0, 300, 1800]))}s"
        subset = draw(st.sampled_from(subsets_choices))
        choice = draw(st.integers(0, 2))
        if choice == 1:
            extra_fields["baseline"] = refs[subset[0]].lower()
        elif choice == 2 and extra is not None:
            extra_fields["baseline"] = "azure:base"
        if refuse and k == 0:
            how = draw(st.sampled_from(["past the end", "unknown baseline", "too close"]))
            if how == "past the end":
                deadline = end_s + 7 * HOUR
            elif how == "unknown baseline":
                extra_fields["baseline"] = "azure:nowhere"
            else:
                earliest, deadline, duration = T0_S - HOUR, now_s + 1, 3600
        try:
            s = spec(duration, earliest_s=earliest, deadline_s=deadline, name=f"j{k}", **extra_fields)
        except Exception:
            continue  # a spec the schema refuses never reaches a planner
        specs.append(s)
        subsets.append(subset)
    if not specs:
        specs.append(spec(1, earliest_s=T0_S, deadline_s=T0_S + 1))
        subsets.append(subsets_choices[0])
    return Batch(pool, specs, subsets, extra, datetime.fromtimestamp(now_s, UTC))


def check_batch(b: Batch, *, strict_starts: bool) -> None:
    """plan_batch equals plan() per spec (see assert_same_plan)."""
    lists: dict[tuple[int, ...], list[Candidate]] = {}
    per_spec = {}
    for s, subset in zip(b.specs, b.subsets, strict=True):
        per_spec[id(s)] = lists.setdefault(tuple(subset), [b.pool[i] for i in subset])

    def cands_for(s: JobSpec) -> list[Candidate]:
        return per_spec[id(s)]

    def base_for(s: JobSpec) -> Candidate | None:
        return b.base_extra if s.baseline == "azure:base" else None

    want = loop(b.specs, cands_for, base_for, b.now)
    got = outcome(lambda: plan_batch(b.specs, cands_for, now=b.now, baseline=base_for))
    if isinstance(want, Exception):
        assert isinstance(got, Exception), "plan() refused a spec, plan_batch did not"
        assert (type(got), str(got)) == (type(want), str(want))
        return
    assert not isinstance(got, Exception), got
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_same_plan(g, w, strict_starts=strict_starts)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(integer=True))
def test_equals_plan_per_spec_on_integer_data(b: Batch) -> None:
    """Whole-second edges and multiples of 50 g/kWh: every integral is exact in both, so the same
    start is chosen in every region, ties included, and the plans are equal to the last bit."""
    check_batch(b, strict_starts=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(integer=False))
def test_equals_plan_per_spec_on_float_data(b: Batch) -> None:
    check_batch(b, strict_starts=False)


@pytest.mark.parametrize("table", [True, False])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b=batches(integer=True))
def test_sparse_table_and_direct_evaluation_agree(table: bool, b: Batch) -> None:
    """Both ways of finding each pair's best start give plan()'s answer (the batch picks one by cost)."""
    original = batch._use_table
    batch._use_table = lambda *args: table
    try:
        check_batch(b, strict_starts=True)
    finally:
        batch._use_table = original


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([60, 300, 700, 3600]), min_size=2, max_size=20),
    st.lists(st.floats(0, 900, allow_nan=False), min_size=20, max_size=20),
    st.data(),
)
def test_run_integrals_do_not_depend_on_where_the_series_starts(
    widths: list[int], values: list[float], data: st.DataObject
) -> None:
    """What plans report: exact to rounding, and the same bits from a longer or shorter series."""
    edges = np.cumsum([T0_S, *widths])
    vals = np.array(values[: len(widths)])
    start = data.draw(st.integers(int(edges[0]), int(edges[-1]) - 1))
    end = data.draw(st.integers(start + 1, int(edges[-1])))
    first = data.draw(st.integers(0, int(np.searchsorted(edges, start, side="right")) - 1))
    whole = run_integrals(
        edges, vals[None, :], np.zeros(1, dtype=np.int64), np.array([start]), np.array([end])
    )
    cut = run_integrals(
        edges[first:], vals[None, first:], np.zeros(1, dtype=np.int64), np.array([start]), np.array([end])
    )
    assert whole[0] == cut[0]
    assert whole[0] == pytest.approx(
        emissions(edges.tolist(), vals.tolist(), start, end), rel=1e-12, abs=1e-9
    )
    many = run_integrals(  # with other runs of other lengths beside it: the same bits
        edges,
        np.vstack([vals, vals[::-1]]),
        np.array([1, 0, 0], dtype=np.int64),
        np.array([int(edges[0]), start, int(edges[0])]),
        np.array([int(edges[-1]), end, int(edges[1])]),
    )
    assert many[1] == whole[0]


# ---- fixed cases -----------------------------------------------------------------------------------


def grid(
    values: Sequence[float], *, step: int = HOUR, zone: str = "Z", start_s: int = T0_S
) -> IntensitySeries:
    edges = start_s + step * np.arange(len(values) + 1)
    return series(edges.tolist(), list(values), zone=zone)


def test_ties_rank_by_start_then_name_as_plan_does() -> None:
    flat = grid([200.0] * 24)
    dip = grid([300.0] * 6 + [100.0] * 4 + [300.0] * 14)
    same = grid([300.0] * 6 + [100.0] * 4 + [300.0] * 14)  # equal values, another object
    cands = [
        Candidate(Reg("gcp", "b", pue=1.0), flat),
        Candidate(Reg("aws", "z", pue=1.0), dip),
        Candidate(Reg("aws", "a", pue=1.0), flat),
        Candidate(Reg("aws", "m", pue=1.0), same),
        Candidate(Reg("azure", "k", pue=1.0), dip),
    ]
    specs = [spec(4 * HOUR, earliest_s=T0_S, deadline_s=T0_S + 24 * HOUR), spec(2 * HOUR)]
    got = plan_batch(specs, cands, now=T0)
    for g, s in zip(got, specs, strict=True):
        want = plan(s, cands, now=T0)
        assert [o.ref for o in g.options] == [o.ref for o in want.options]
        assert g.options == want.options
        assert g.to_dict() == want.to_dict()


def test_batch_equals_plan_on_the_benchmark_shape() -> None:
    """Many regions on one 5-minute grid, windows off the grid, durations repeated across specs."""
    rng = np.random.default_rng(7)
    n = 288
    edges = (T0_S + 300 * np.arange(n + 1)).tolist()
    cands = [
        Candidate(
            Reg(("aws", "gcp", "azure")[i % 3], f"region-{i}", pue=float(rng.uniform(1.05, 1.4))),
            series(edges, (rng.uniform(50, 600) * (1 + 0.3 * np.sin(np.arange(n) / 40 + i))).tolist()),
        )
        for i in range(30)
    ]
    specs = []
    for k in range(60):
        lo = T0_S + int(rng.integers(0, 6 * HOUR))
        d = int(rng.integers(1, 13)) * 300 + (0 if k % 3 else int(rng.integers(1, 300)))
        hi = min(lo + d + int(rng.integers(0, 12 * HOUR)), edges[-1])
        specs.append(spec(d, earliest_s=lo, deadline_s=hi, name=f"j{k}"))
    got = plan_batch(specs, cands, now=T0)
    for g, s in zip(got, specs, strict=True):
        want = plan(s, cands, now=T0)
        assert_same_plan(g, want, strict_starts=True)
        assert json.dumps(g.to_dict(top=5)) == json.dumps(want.to_dict(top=5))


def test_interruptible_batch_equals_plan_on_the_benchmark_shape() -> None:
    """Interruptible specs of many windows and durations (planned together by the batch): flat,
    repeated and distinct series on two grids, min_chunk on and off the data's step, and none."""
    rng = np.random.default_rng(13)
    half = (T0_S + 1800 * np.arange(49)).tolist()
    five = (T0_S + 300 * np.arange(289)).tolist()
    shape = 250 + 120 * np.sin(np.arange(48) / 8)
    cands = [
        Candidate(Reg("aws", "flat-a"), series(half, [180.0] * 48)),
        Candidate(Reg("aws", "same-1"), series(half, shape.round(0).tolist())),
        Candidate(Reg("gcp", "same-2"), series(half, shape.round(0).tolist())),
        Candidate(Reg("gcp", "noisy"), series(half, (shape + rng.normal(0, 40, 48)).tolist())),
        Candidate(Reg("azure", "fine"), series(five, rng.uniform(50, 500, 288).round(1).tolist(), zone="F")),
        Candidate(Reg("azure", "flat-b"), series(half, [180.0] * 48)),
    ]
    specs = []
    for k in range(40):
        lo = T0_S + int(rng.integers(0, 8 * HOUR))
        d = int(rng.integers(30, 6 * 60)) * 60
        hi = min(lo + d + int(rng.integers(0, 14 * HOUR)), half[-1])
        chunk = ("30m", "1h", "0s", "45m")[k % 4]
        specs.append(spec(d, earliest_s=lo, deadline_s=hi, name=f"j{k}", interruptible=True, min_chunk=chunk))
    got = plan_batch(specs, cands, now=T0)
    assert sum(len(o.chunks_s) > 1 for g in got for o in g.options) > 20
    for g, s in zip(got, specs, strict=True):
        want = plan(s, cands, now=T0)
        assert_same_plan(g, want, strict_starts=True)
        assert g.notes == want.notes
        assert json.dumps(g.to_dict()) == json.dumps(want.to_dict())


def test_options_are_built_when_read() -> None:
    cands = [Candidate(Reg("aws", f"r{i}"), grid([100.0 + i, 50.0, 300.0] * 8)) for i in range(20)]
    (p,) = plan_batch([spec(HOUR)], cands, now=T0)
    options = p.options
    assert isinstance(options, RankedOptions) and len(options) == 20
    built = [0]
    original = batch._Ranking.options

    def counting(self: batch._Ranking, job: int, ranks: Sequence[int]) -> list[PlanOption]:
        built[0] += len(ranks)
        return original(self, job, ranks)

    batch._Ranking.options = counting  # type: ignore[method-assign]
    try:
        p.to_dict(top=3)
        p.to_dict()
        assert built[0] == 0  # the dicts read the ranking's columns, and the notes need no options
        assert p.best is options[0] and built[0] == 1
        full = tuple(options)
    finally:
        batch._Ranking.options = original  # type: ignore[method-assign]
    assert built[0] == 20 and options[-1] is full[-1] and options[1:3] == full[1:3]
    want = plan(spec(HOUR), cands, now=T0)
    assert options == want.options and p == want and hash(p) == hash(want)
    assert pickle.loads(pickle.dumps(p)) == want
    with pytest.raises(IndexError):
        options[20]


def test_interruptible_specs_and_custom_energy_are_planned_as_plan_does() -> None:
    cands = [
        Candidate(Reg("aws", "a"), grid([300.0, 100.0, 250.0, 90.0] * 6)),
        Candidate(Reg("gcp", "b"), grid([200.0] * 24)),
    ]
    specs = [
        spec(3 * HOUR, interruptible=True, min_chunk="1h"),
        spec(HOUR),
        spec(2 * HOUR, interruptible=True, min_chunk="0s"),
    ]
    got = plan_batch(specs, cands, now=T0)
    for g, s in zip(got, specs, strict=True):
        want = plan(s, cands, now=T0)
        assert g.to_dict() == want.to_dict()

    from carbonshift.planner.energy import EnergyEstimate, default_model

    def energy_for(region: Any) -> EnergyEstimate:
        return default_model().at_pue(
            default_model().power(specs[1]), HOUR, 1.5 if region.region == "a" else 1.0
        )

    (g,) = plan_batch([specs[1]], cands, now=T0, energy_for=energy_for)
    assert g.to_dict() == plan(specs[1], cands, now=T0, energy_for=energy_for).to_dict()


def test_the_first_refused_spec_raises_plans_own_error() -> None:
    good = grid([100.0] * 24)
    gap = grid([100.0] * 10 + [float("nan")] + [100.0] * 13)
    cands = [Candidate(Reg("aws", "a"), good), Candidate(Reg("aws", "b"), gap)]
    fine = spec(HOUR, earliest_s=T0_S, deadline_s=T0_S + 5 * HOUR)
    reaches_gap = spec(HOUR, earliest_s=T0_S, deadline_s=T0_S + 20 * HOUR)
    too_late = spec(HOUR, earliest_s=T0_S + 30 * HOUR, deadline_s=T0_S + 40 * HOUR)
    for specs in ([fine, reaches_gap, too_late], [fine, too_late, reaches_gap]):
        want = loop(specs, lambda s: cands, lambda s: None, T0)
        assert isinstance(want, Exception)
        with pytest.raises(type(want)) as raised:
            plan_batch(specs, cands, now=T0)
        assert str(raised.value) == str(want)
    with pytest.raises(Exception, match="no candidate"):
        plan_batch([fine], [], now=T0)


def test_mixed_signals_and_bad_pue_fall_to_plans_errors() -> None:
    marginal = grid([100.0] * 24)
    marginal = IntensitySeries(
        "Z",
        Signal.MARGINAL,
        marginal.edges_s,
        marginal.values,
        marginal.prov_index,
        (prov(signal=Signal.MARGINAL),),
    )
    for cands in (
        [Candidate(Reg("aws", "a"), grid([100.0] * 24)), Candidate(Reg("aws", "b"), marginal)],
        [Candidate(Reg("aws", "a", pue=0.9), grid([100.0] * 24))],
    ):
        want = outcome(lambda cands=cands: plan(spec(HOUR), cands, now=T0))
        assert isinstance(want, Exception)
        with pytest.raises(type(want)) as got:
            plan_batch([spec(HOUR)], cands, now=T0)
        assert str(got.value) == str(want)


# ---- placement --------------------------------------------------------------------------------------

PROVIDERS = ["aws", "gcp", "azure"]
COUNTRIES = ["DE", "FR", "US", "SE", None, "US-CA", "GR"]
REGIONS = [Reg(PROVIDERS[i % 3], f"r{i}", country=COUNTRIES[i % len(COUNTRIES)]) for i in range(21)]
REFS = [f"{r.provider}:{r.region}" for r in REGIONS]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([*PROVIDERS, "ibm"]), max_size=2, unique=True),
    st.lists(st.sampled_from([*REFS, "aws:nowhere", "GCP:R1"]), max_size=4, unique=True),
    st.lists(st.sampled_from(REFS), max_size=3, unique=True),
    st.lists(st.sampled_from(["EU", "DE", "US", "EL", "JP"]), max_size=2, unique=True),
)
def test_placement_index_equals_filter_candidates(
    providers: list[str], regions: list[str], exclude: list[str], countries: list[str]
) -> None:
    data = {"providers": providers, "regions": regions, "exclude": exclude, "countries": countries}
    try:
        placement = parse_jobspec(
            {"name": "p", "command": ["x"], "duration": "1h", "placement": data}
        ).placement
    except Exception:
        return
    index = PlacementIndex(REGIONS)
    want = outcome(lambda: filter_candidates(REGIONS, placement))
    got = outcome(lambda: index.filter(placement))
    if isinstance(want, Exception):
        assert (type(got), str(got)) == (type(want), str(want))
    else:
        assert got == want
        assert index.filter(placement) is got  # one answer per distinct placement


# ---- advise_many ------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def offline(now: datetime) -> tuple[Any, IntensityService]:
    settings_ = load_settings(REPO / "examples" / "config" / "carbonshift.yaml")
    catalog = load_catalog(locations=settings_.locations)
    files = FileSource({"ES": REPO / "examples" / "config" / "data" / "es-scenario.csv"})
    return catalog, IntensityService([files], cache=None, clock=FixedClock(now))


def example_specs() -> list[JobSpec]:
    specs = [load_jobspec(p, now=NOW) for p in sorted((REPO / "examples").glob("*.yaml"))]
    specs += [
        spec(3 * HOUR, name="lab", placement={"providers": ["local"]}),
        spec(
            2 * HOUR,
            name="lab-late",
            earliest_s=int(NOW.timestamp()) + 200 * HOUR,  # after the file ends: modelled, then static
            deadline_s=int(NOW.timestamp()) + 230 * HOUR,
            placement={"countries": ["ES", "FR"]},
        ),
        spec(45 * 60, name="eu", placement={"countries": ["EU"]}, baseline="gcp:europe-west3"),
        spec(
            5 * HOUR,
            name="us",
            placement={"providers": ["aws"], "countries": ["US"]},
            baseline="gcp:europe-west3",
        ),
        spec(HOUR, name="all"),
    ]
    return specs


@pytest.mark.parametrize("top", [None, 2])
def test_advise_many_prints_what_advise_prints(top: int | None) -> None:
    specs = example_specs()
    catalog, service = offline(NOW)
    want = [json.dumps(advise(s, catalog=catalog, service=service, now=NOW).to_dict(top=top)) for s in specs]
    catalog, service = offline(NOW)
    got = [
        json.dumps(a.to_dict(top=top)) for a in advise_many(specs, catalog=catalog, service=service, now=NOW)
    ]
    assert got == want


def test_advise_many_raises_the_loops_first_error() -> None:
    bad = spec(HOUR, name="bad", placement={"regions": ["aws:nowhere"]})
    specs = [*example_specs()[:2], bad, spec(HOUR, name="late")]
    catalog, service = offline(NOW)
    with pytest.raises(Exception) as want:
        [advise(s, catalog=catalog, service=service, now=NOW) for s in specs]
    catalog, service = offline(NOW)
    with pytest.raises(type(want.value)) as got:
        advise_many(specs, catalog=catalog, service=service, now=NOW)
    assert str(got.value) == str(want.value)
    assert advise_many([], catalog=catalog, service=service, now=NOW) == []


def test_advise_many_fetches_each_zone_once_over_the_union_of_windows() -> None:
    catalog, service = offline(NOW)
    calls: list[tuple[int, Any]] = []
    original = service.series_many

    def counting(
        zones: Sequence[Any], span: Any, signal: Signal = Signal.AVERAGE, max_workers: int = 8
    ) -> Any:
        calls.append((len(zones), span))
        return original(zones, span, signal, max_workers)

    service.series_many = counting  # type: ignore[method-assign]
    specs = [spec(HOUR, name=f"j{k}", earliest_s=int(NOW.timestamp()) + k * HOUR) for k in range(5)]
    advise_many(specs, catalog=catalog, service=service, now=NOW)
    from carbonshift.catalog.instances import filter_offering

    offering = filter_offering(catalog.regions(), specs[0].hardware)  # only regions with the hardware
    assert len(calls) == 1 and calls[0][0] == len(offering)
    assert calls[0][1].start == NOW and calls[0][1].end == NOW + timedelta(hours=28)
