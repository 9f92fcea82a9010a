"""How carbonshift writes JSON for the API: compact UTF-8 that never fails on a stored value. Here,
below both, so the API's answers and the scheduler's job list (`scheduler/listing.py`) share one
encoder.

A 139-region plan is about 90 KB of JSON with some 2,000 floats; the standard library's encoder spent
~1 ms of a plan's CPU on it (mostly `float.__repr__`), held under the GIL while seven other requests
waited. `pydantic_core.to_json` (Rust, already a dependency through pydantic) writes the same JSON
about four times faster. What a reader parses is the same: the same keys in the same order, the same
numbers (a float may be spelled differently, `-0.000057` for `-5.7e-05`, never a different value), the
same strings (escaped as `json.dumps(ensure_ascii=False)` does).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic_core import PydanticSerializationError, to_json


def encode_json(content: Any) -> bytes:
    """Compact UTF-8 JSON that never fails on stored data: a non-finite float becomes null, and text
    that is not valid Unicode (a lone surrogate stored before validation refused it) is sent as
    `\\u` escapes, which every JSON parser reads, instead of failing the whole answer.

    A value neither encoder knows (an arbitrary object) still raises TypeError, as `json.dumps`
    does. Unlike `json.dumps`, values pydantic knows how to write (a datetime, a set) are written
    rather than refused: nothing the API answers holds one today."""
    try:
        return to_json(content, inf_nan_mode="null")
    except PydanticSerializationError:
        # a lone surrogate (UTF-8 cannot hold it) or a type pydantic does not know: the standard
        # library escapes the first and raises TypeError for the second
        return json.dumps(finite(content), separators=(",", ":")).encode()


def finite(value: Any) -> Any:
    """`value` with every non-finite float in it (at any depth of dicts, lists and tuples) replaced
    by None: what `encode_json` writes as null, for an encoder that refuses NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
