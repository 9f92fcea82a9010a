"""`page_json` writes a page of the job list: a job that comes with its JSON written (the scheduler's
summary) is put in as it is, any other is encoded from its `to_dict()`; the cursor names the last job
only when more follow."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carbonshift.api.paging import After, decode_cursor, page_json

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Viewed:
    id: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": "é"}


@dataclass(frozen=True)
class Written:
    id: str
    created_at: datetime
    json: bytes

    def to_dict(self) -> dict[str, Any]:
        raise AssertionError("a written job is never encoded again")


def encode_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def test_written_jobs_go_in_as_they_are_and_others_are_encoded() -> None:
    written = Written("b", T0, b'{"id": "b", "spec": {"a": [1, 2]}}')
    body = json.loads(page_json([Viewed("a", T0), written], True, encode_json))
    assert body["jobs"] == [{"id": "a", "name": "é"}, {"id": "b", "spec": {"a": [1, 2]}}]
    assert decode_cursor(body["next_cursor"]) == After(T0, "b")
    assert json.loads(page_json([written], False, encode_json))["next_cursor"] is None
    assert json.loads(page_json([], True, encode_json)) == {"jobs": [], "next_cursor": None}
