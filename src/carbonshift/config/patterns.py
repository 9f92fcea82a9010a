"""A `Field(pattern=...)` check made on demand, for a pattern that is costly to compile.

Why: pydantic compiles every field's pattern when the model is defined, with its own (Rust) regex
engine. A Unicode class under a long bounded repetition (`[\\w...]{1,128}`) takes that engine ~50 ms,
paid by every command at start-up even when the setting is never given. Checked here, the same
engine compiles it the first time a value is checked, and a value it refuses gets the error
pydantic's own check gives: same type, message and context.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError


@cache
def _adapter(pattern: str) -> TypeAdapter[str]:
    return TypeAdapter(Annotated[str, Field(pattern=pattern)])


def check_pattern(value: str, pattern: str) -> None:
    """Raise what `Field(pattern=pattern)` raises for `value`, if it does not match."""
    try:
        _adapter(pattern).validate_python(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise PydanticCustomError(
            error["type"], "String should match pattern '{pattern}'", error.get("ctx")
        ) from None
