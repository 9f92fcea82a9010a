"""The per-source time budget holds over the whole answer (issue 15, defect 4): a server that sends
one byte a second, in its headers or in its body, is cut off at the budget, not after the last byte."""

from __future__ import annotations

import time

import pytest
import requests

from carbonshift.intensity.base import SourceError
from carbonshift.intensity.http import HttpClient
from tests.intensity.trickle import trickling_server

BUDGET_S = 1.5


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickling_answer_is_cut_at_the_budget(where: str) -> None:
    http = HttpClient("slow", connect_timeout_s=2, read_timeout_s=5, budget_s=BUDGET_S, max_retries=2)
    with trickling_server(where) as url:
        started = time.monotonic()
        with pytest.raises(SourceError) as caught:
            http.get_json(url + "/data")
        elapsed = time.monotonic() - started
    assert BUDGET_S - 0.2 < elapsed < BUDGET_S + 0.7
    assert f"no answer before the time budget of {BUDGET_S:g} s ran out" in caught.value.reason
    assert caught.value.transient


def test_an_injected_session_still_has_its_body_cut_at_the_budget() -> None:
    http = HttpClient(
        "slow",
        connect_timeout_s=2,
        read_timeout_s=5,
        budget_s=BUDGET_S,
        max_retries=0,
        session=requests.Session(),
    )
    with trickling_server("body") as url:
        started = time.monotonic()
        with pytest.raises(SourceError):
            http.get_json(url + "/data")
        assert time.monotonic() - started < BUDGET_S + 0.7


def test_a_shared_budget_block_cuts_the_second_call_at_the_shared_deadline() -> None:
    http = HttpClient("slow", connect_timeout_s=2, read_timeout_s=5, budget_s=BUDGET_S, max_retries=0)
    with trickling_server("body") as url:
        started = time.monotonic()
        with http.budget():
            for _ in range(2):
                with pytest.raises(SourceError):
                    http.get_json(url + "/data")
        assert time.monotonic() - started < BUDGET_S + 0.7
