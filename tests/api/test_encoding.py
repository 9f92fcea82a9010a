"""`encode_json` (orjson's encoder) says what the standard library's JSON says, and keeps its
guarantees: NaN and infinities as null, lone surrogates escaped, unknown objects refused."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbonshift.jsonwire import encode_json, finite

_TEXT = st.text(max_size=20) | st.sampled_from(["\x00", "\x1f\x7f", "\u2028é", '"\\/', "x" * 50])
_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT
_VALUE = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=5),
    max_leaves=40,
)


def _stdlib(value: Any) -> Any:
    """What the standard library's encoder writes for it (non-finite floats as null), read back."""
    return json.loads(json.dumps(finite(value), ensure_ascii=False, allow_nan=False))


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values, floats to the bit (json.loads's == would take 0.0 for -0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return a.hex() == b.hex()
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@given(_VALUE)
def test_the_json_says_what_the_standard_library_says(value: Any) -> None:
    body = encode_json(value)
    assert _same(json.loads(body), _stdlib(value))


def test_non_finite_floats_are_null_and_text_is_utf8() -> None:
    value = {"a": [math.nan, math.inf, -math.inf, 1.5, -0.0], "é": "ü"}
    assert json.loads(encode_json(value)) == {"a": [None, None, None, 1.5, -0.0], "é": "ü"}
    assert encode_json({"name": "é"}) == '{"name":"é"}'.encode()
    assert encode_json({"a": [1, True], "b": {"c": None}}) == b'{"a":[1,true],"b":{"c":null}}'  # compact


def test_a_lone_surrogate_is_escaped_and_nan_still_null() -> None:
    body = encode_json({"command": ["echo \ud800"], "kg": math.nan, "name": "é", "n": 10**30})
    assert body.isascii()
    assert json.loads(body) == {"command": ["echo \ud800"], "kg": None, "name": "é", "n": 10**30}


def test_an_object_no_encoder_knows_is_refused_as_json_dumps_refuses_it() -> None:
    with pytest.raises(TypeError):
        encode_json({"x": object()})
