"""The job spec's SCI functional unit (`functional_unit: {name: epoch, count: 90}`) and its CLI form."""

from __future__ import annotations

from typing import Any

import pytest

from carbonshift.config.jobspec import JobSpecError, loads_jobspec, parse_functional_unit, parse_jobspec
from carbonshift.errors import UserInputError


def spec(unit: Any) -> dict[str, Any]:
    return {"name": "train", "command": "python train.py", "duration": "2h", "functional_unit": unit}


def test_functional_unit_parses_and_round_trips() -> None:
    job = loads_jobspec(
        "name: train\ncommand: python train.py\nduration: 2h\nfunctional_unit: {name: epoch, count: 90}\n"
    )
    assert job.functional_unit is not None
    assert (job.functional_unit.name, job.functional_unit.count) == ("epoch", 90)
    dumped = job.model_dump(mode="json")["functional_unit"]
    assert dumped == {"name": "epoch", "count": 90}
    assert parse_jobspec(job.model_dump(mode="json")) == job
    assert parse_jobspec(spec({"name": "GB processed", "count": 1.5})).functional_unit.count == 1.5  # type: ignore[union-attr]
    assert parse_jobspec({"name": "a", "command": "x", "duration": "1h"}).functional_unit is None


@pytest.mark.parametrize(
    ("unit", "message"),
    [
        ({"name": "", "count": 1}, "functional_unit.name: must be 1 to 63 characters"),
        ({"name": "-x", "count": 1}, "functional_unit.name: must be 1 to 63 characters"),
        ({"name": "epoch", "count": 0}, "functional_unit.count: must be a positive number"),
        ({"name": "epoch", "count": -3}, "functional_unit.count: must be a positive number"),
        ({"name": "epoch", "count": True}, "functional_unit.count: must be a positive number such as 90"),
        ({"name": "epoch", "count": "90"}, "functional_unit.count: must be a positive number such as 90"),
        ({"name": "epoch"}, "functional_unit.count: required"),
        ({"name": "epoch", "count": 1, "per": "run"}, "functional_unit.per"),
    ],
)
def test_bad_functional_units_are_named(unit: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_jobspec(spec(unit))
    assert message in str(caught.value)


def test_command_line_form() -> None:
    assert parse_functional_unit("epoch=90").count == 90
    assert parse_functional_unit("image=2.5e3").count == 2500.0
    for text, problem in [
        ("epoch", "write NAME=COUNT"),
        ("epoch=many", "COUNT must be a positive number"),
        ("epoch=0", "must be a positive number"),
        ("=4", "must be 1 to 63 characters"),
    ]:
        with pytest.raises(UserInputError) as caught:
            parse_functional_unit(text)
        assert caught.value.where.startswith("--functional-unit") and problem in str(caught.value)
