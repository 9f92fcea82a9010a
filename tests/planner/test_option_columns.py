"""A batch plan's option columns, read out of its ranking for the whole batch at once, are the columns
of its options built one by one (`built_columns`): every field, every rounded figure, to the bit.
The JSON of `plan DIR` is built from the former, the API's single plans from the latter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from carbonshift.config.jobspec import JobSpec
from carbonshift.planner import batch
from carbonshift.planner.batch import RankedOptions, plan_batch
from carbonshift.planner.energy import EnergyEstimate, default_model
from carbonshift.planner.footprints import Footprints
from carbonshift.planner.option_columns import OptionColumns, built_columns, columns_of
from carbonshift.planner.plan import Candidate, plan
from carbonshift.planner.rounding import SMALL

from .helpers import T0, Reg, prov, series
from .test_batch import HOUR, grid, spec


def _bits(value: Any) -> Any:
    """Floats by their bits (the sign of zero included), in any list or tuple."""
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_bits(v) for v in value]
    return value


def _assert_same(got: OptionColumns, want: OptionColumns) -> None:
    for name in OptionColumns.__slots__:
        if name == "footprint":  # compared on its own below
            continue
        if name == "shown":
            for g, w, field in zip(got.shown, want.shown, got.shown._fields, strict=True):
                assert _bits(list(g)) == _bits(list(w)), field
        elif name == "series":
            assert all(a is b for a, b in zip(got.series, want.series, strict=True))
            assert len(got.series) == len(want.series)
        else:
            assert _bits(list(getattr(got, name))) == _bits(list(getattr(want, name))), name


AWS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "eu-north-1", "ap-southeast-1", "ca-central-1"]


def _candidates(n: int) -> list[Candidate]:
    """Regions of the AWS catalog (as far as it goes: embodied kg from its instance types), flat
    static ones and regions of two provenances (outside any catalog: a whole server's share)."""
    rng = np.random.default_rng(5)
    cands = []
    for i in range(n):
        values = rng.uniform(20.0, 700.0, 24).tolist()
        if i % 5 == 0:  # a flat static region, and one of two provenances (a live head, static tail)
            cands.append(Candidate(Reg("gcp", f"flat-{i}", pue=1.1 + i / 100), grid([300.0 + i] * 24)))
            continue
        if i % 7 == 0:
            two = (prov("live"), prov("static"))
            edges = (int(T0.timestamp()) + HOUR * np.arange(25)).tolist()
            cands.append(
                Candidate(
                    Reg("azure", f"two-{i}", pue=None),
                    series(edges, values, provenances=two, prov_index=[0] * 12 + [1] * 12),
                )
            )
            continue
        name = AWS[i % len(AWS)] if i < len(AWS) else f"r-{i}"
        cands.append(Candidate(Reg("aws", name, pue=1.05 + i / 50), grid(values)))
    return cands


def _specs() -> list[JobSpec]:
    """Runs to the hour and to the second, a spec baseline, an interruptible run."""
    return [
        spec(HOUR, name="plain"),
        spec(3 * HOUR + 17, name="odd"),
        spec(2 * HOUR, name="pinned", baseline=f"aws:{AWS[1]}"),
        spec(3 * HOUR, name="split", interruptible=True, min_chunk="1h"),
    ]


@pytest.mark.parametrize("custom_energy", [False, True])
def test_batch_columns_are_the_built_options_columns(custom_energy: bool) -> None:
    cands = _candidates(SMALL + 9)
    specs = [*_specs(), spec(4 * HOUR, name="split-any", interruptible=True, min_chunk="0s")]
    model = default_model()

    def energy_for(region: Any) -> EnergyEstimate:
        return model.at_pue(model.power(specs[0]), HOUR, 1.0 + len(region.region) / 10)

    kw: dict[str, Any] = {"energy_for": energy_for} if custom_energy else {}
    plans = plan_batch(specs, cands, now=T0, **kw)
    for got, s in zip(plans, specs, strict=True):
        assert isinstance(got.options, RankedOptions)
        n = len(got.options)
        for top in (None, 1, batch.PRESUMMED, batch.PRESUMMED + 1, n - 1, -2):
            columns = columns_of(got.options, top)  # first: from the table, nothing built
            assert got.options._built is None or top is not None
            _assert_same(columns, built_columns(tuple(got.options)[:top]))
        want = plan(s, cands, now=T0, **kw)
        _assert_same(columns_of(got.options), columns_of(want.options))


def test_an_option_of_a_plan_that_emits_nothing_has_no_savings_percentage() -> None:
    cands = [Candidate(Reg("aws", f"zero-{i}"), grid([0.0] * 24)) for i in range(3)]
    (got,) = plan_batch([spec(HOUR)], cands, now=T0)
    columns = columns_of(got.options)
    assert columns.shown.savings_pct == [None, None, None]
    _assert_same(columns, built_columns(tuple(got.options)))


def test_a_batchs_footprint_figures_are_those_each_plan_works_out() -> None:
    """Embodied, total and total savings of every option, worked out for the whole batch at once, are
    what `Footprints.add_fields` works out plan by plan from built options: spec baselines and
    own-region ones, interruptible runs, durations to the second."""
    cands = _candidates(SMALL + 9)
    specs = [*_specs(), spec(5 * HOUR, name="cpu", hardware={"vcpus": 16, "memory_gb": 64})]
    plans = plan_batch(specs, cands, now=T0, footprints_for=Footprints.of)
    for got in plans:
        fp = got.footprints
        assert fp is not None
        for top in (None, 2):
            columns = columns_of(got.options, top)
            assert columns.footprint is not None and columns.footprint.of is fp
            want = fp._figures(built_columns(tuple(got.options)[:top]), got.baseline)
            for name in ("embodied_kg", "embodied_shown", "total_shown", "total_savings_shown"):
                assert _bits(list(getattr(columns.footprint, name))) == _bits(list(getattr(want, name))), name
        every = columns_of(got.options).footprint
        assert every is not None and len(set(every.embodied_kg)) > 1  # regions differ in what they charge
