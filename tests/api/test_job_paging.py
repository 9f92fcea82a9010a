"""`GET /api/v1/jobs?limit=N&cursor=C` and `carbonshift jobs list --limit/--all` (issue 13): pages
newest first by a keyset cursor, so a listing that is followed to the end shows every job exactly once,
even when jobs are submitted between pages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbonshift.api.paging import After, decode_cursor, encode_cursor, page
from carbonshift.errors import UserInputError
from tests.api.helpers import ApiServer, cli_env, local_spec, start_server
from tests.cli.helpers import run_cli

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Job:
    id: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id}


def test_pages_follow_the_list_order_through_ties_in_creation_time() -> None:
    # newest first, then by id: three jobs share one creation time
    jobs = [
        Job("e", T0),
        Job("a", T0 - timedelta(1)),
        Job("b", T0 - timedelta(1)),
        Job("c", T0 - timedelta(1)),
    ]
    jobs.append(Job("d", T0 - timedelta(2)))
    seen: list[str] = []
    after: After | None = None
    while True:
        chunk, cursor = page(jobs, 2, after)
        seen += [j.id for j in chunk]
        if cursor is None:
            break
        after = decode_cursor(cursor)
    assert seen == [j.id for j in jobs]
    assert page(jobs, 5, None) == (jobs, None)  # exactly one full page: no cursor to an empty one


def test_a_cursor_round_trips_and_anything_else_is_refused_naming_the_parameter() -> None:
    job = Job("0123abcd", T0 + timedelta(microseconds=17))
    assert decode_cursor(encode_cursor(job)) == After(job.created_at, job.id)
    for bad in ("", "not-base64!", "W10", encode_cursor(job)[:-3], "WyIyMDI2LTEyLTAxVDEyOjAwOjAwIiwgMV0"):
        with pytest.raises(UserInputError) as err:
            decode_cursor(bad)
        assert err.value.where == "cursor"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    api = start_server(tmp_path_factory.mktemp("paging"))
    try:
        for i in range(7):  # tomorrow on this machine: nothing runs while the tests read the list
            api.submit(local_spec(f"page-{i}", ["true"], start_in=timedelta(days=1), labels={"team": "t"}))
        yield api
    finally:
        api.stop()


def _pages(api: ApiServer, limit: int, **params: str) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query: dict[str, str | int] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        body = api.get("/api/v1/jobs", params=query).json()
        pages.append([j["id"] for j in body["jobs"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_following_next_cursor_lists_every_job_once_in_order(server: ApiServer) -> None:
    everything = server.get("/api/v1/jobs").json()
    assert everything["next_cursor"] is None
    ids = [j["id"] for j in everything["jobs"]]
    assert len(ids) >= 7
    pages = _pages(server, 3)
    assert [len(p) for p in pages[:-1]] == [3] * (len(pages) - 1) and 1 <= len(pages[-1]) <= 3
    assert [i for p in pages for i in p] == ids
    team = [j["id"] for j in server.get("/api/v1/jobs", params={"team": "t"}).json()["jobs"]]
    assert [i for p in _pages(server, 3, team="t") for i in p] == team  # the labels filter, then pages


def test_a_job_submitted_between_pages_neither_repeats_nor_skips_one(server: ApiServer) -> None:
    first = server.get("/api/v1/jobs", params={"limit": 2}).json()
    newer = server.submit(local_spec("page-late", ["true"], start_in=timedelta(days=1)))
    rest = server.get("/api/v1/jobs", params={"limit": 1000, "cursor": first["next_cursor"]}).json()
    shown = [j["id"] for j in first["jobs"] + rest["jobs"]]
    everything = [j["id"] for j in server.get("/api/v1/jobs").json()["jobs"]]
    assert newer["id"] not in shown  # the newest is at the front, before the cursor
    assert shown == [i for i in everything if i != newer["id"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": 2, "cursor": "bogus"}, "cursor")],
)
def test_bad_paging_parameters_are_a_422_naming_them(
    server: ApiServer, params: dict[str, Any], field: str
) -> None:
    response = server.get("/api/v1/jobs", params=params)
    assert response.status_code == 422
    assert [d["loc"] for d in response.json()["detail"]] == [["query", field]]


def test_jobs_list_shows_the_newest_n_and_all_follows_the_pages(server: ApiServer, tmp_path: Path) -> None:
    everything = [j["id"] for j in server.get("/api/v1/jobs").json()["jobs"]]
    few = run_cli("jobs", "list", "--limit", "2", "--format", "json", env=cli_env(server), tmp=tmp_path)
    assert few.returncode == 0, few.stderr
    assert [j["id"] for j in json.loads(few.stdout)] == everything[:2]
    assert "--all lists every job" in few.stderr
    every = run_cli("jobs", "list", "--all", "--format", "json", env=cli_env(server), tmp=tmp_path)
    assert every.returncode == 0, every.stderr
    assert [j["id"] for j in json.loads(every.stdout)] == everything
    assert "--all" not in every.stderr
