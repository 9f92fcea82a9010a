"""Candidate filtering from the spec's placement rules."""

from __future__ import annotations

import pytest

from carbonshift.config.jobspec import Placement
from carbonshift.errors import UserInputError
from carbonshift.planner.placement import filter_candidates, find_region

from .helpers import Reg

CATALOG = [
    Reg("aws", "eu-west-1", country="IE"),
    Reg("aws", "us-east-1", country="US"),
    Reg("gcp", "europe-west4", country="NL"),
    Reg("gcp", "us-central1", country="US-IA"),
    Reg("azure", "swedencentral", country="SE"),
    Reg("azure", "uksouth", country="GB"),
    Reg("local", "here", country=None),
]


def refs(regions: list[Reg]) -> list[str]:
    return [f"{r.provider}:{r.region}" for r in regions]


def test_no_rules_keep_everything() -> None:
    assert filter_candidates(CATALOG, Placement()) == CATALOG


def test_providers_regions_exclude_countries() -> None:
    assert refs(filter_candidates(CATALOG, Placement(providers=["gcp"]))) == [
        "gcp:europe-west4",
        "gcp:us-central1",
    ]
    assert refs(filter_candidates(CATALOG, Placement(regions=["aws:us-east-1", "gcp:us-central1"]))) == [
        "aws:us-east-1",
        "gcp:us-central1",
    ]
    assert "aws:eu-west-1" not in refs(filter_candidates(CATALOG, Placement(exclude=["aws:eu-west-1"])))
    assert refs(filter_candidates(CATALOG, Placement(countries=["EU"]))) == [
        "aws:eu-west-1",
        "gcp:europe-west4",
        "azure:swedencentral",
    ]
    # a subdivision counts as its country; an unknown country never passes a country rule
    assert refs(filter_candidates(CATALOG, Placement(countries=["US"]))) == [
        "aws:us-east-1",
        "gcp:us-central1",
    ]
    assert refs(
        filter_candidates(CATALOG, Placement(providers=["aws", "azure"], countries=["EU", "GB"]))
    ) == [
        "aws:eu-west-1",
        "azure:swedencentral",
        "azure:uksouth",
    ]


def test_everything_filtered_out_says_which_rule_did_it() -> None:
    with pytest.raises(UserInputError) as info:
        filter_candidates(CATALOG, Placement(providers=["gcp"], countries=["SE"]))
    assert info.value.where == "placement"
    assert "2 from providers gcp -> 0 in countries SE" in info.value.problem


def test_unknown_names_are_errors_not_silent_no_ops() -> None:
    with pytest.raises(UserInputError) as info:
        filter_candidates(CATALOG, Placement(providers=["ibm"]))
    assert info.value.where == "placement.providers" and "aws, azure, gcp, local" in info.value.problem
    with pytest.raises(UserInputError) as info:
        filter_candidates(CATALOG, Placement(exclude=["gcp:europe-west5"]))
    assert info.value.where == "placement.exclude" and "did you mean gcp:europe-west4" in info.value.problem
    with pytest.raises(UserInputError, match="unknown region"):
        find_region(CATALOG, "aws:mars-1", field="baseline")
    assert find_region(CATALOG, "GCP:us-central1", field="baseline").region == "us-central1"
