"""Settings from environment variables: CARBONSHIFT_<SETTING>, with nested keys joined by a double
underscore (CARBONSHIFT_CACHE__FORECAST_TTL_S), read into the nested mapping a settings model validates.

Why our own reader: pydantic-settings, which read them before, cost about 100 ms of every command's
start-up (it imports asyncio, dotenv and its cloud secret providers), out of the 500 ms a cold
`carbonshift plan` may take (issue 13). The rules are the ones it applied with our configuration
(prefix CARBONSHIFT_, delimiter `__`, names in any case), so every variable reads as it did:

- a variable that names no setting is ignored; a nested one whose key is unknown is kept, and the
  model refuses it as an unknown setting;
- a setting whose type is a model, a list or a mapping takes JSON (CARBONSHIFT_LOCATIONS='[...]');
  an object is merged with the nested variables under it, which win;
- any other value is passed on as text, for the model to convert ("false", "8765", a path).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence, Set
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

DELIMITER = "__"
_CONTAINERS = (BaseModel, Mapping, Sequence, Set, tuple, deque)


class EnvironmentValueError(ValueError):
    """A variable of a model, list or mapping setting that is not JSON."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"environment variable {variable.upper()}: {problem}")


def environment_values(model: type[BaseModel], environ: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """The values `environ` gives the fields of `model` (see the module docstring)."""
    env = {name.lower(): value for name, value in environ.items()}
    data: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        variable = (prefix + name).lower()
        text = env.get(variable)
        is_complex, lenient = _field_kind(field)
        if not is_complex:
            if text is not None:
                data[name] = text
            continue
        nested_prefix = variable + DELIMITER
        if text is None:
            nested = _nested(nested_prefix, field, env)
            if nested:
                data[name] = nested
            continue
        value = _json(variable, text, lenient)
        data[name] = (
            deep_update(value, _nested(nested_prefix, field, env)) if isinstance(value, dict) else value
        )
    return data


def deep_update(base: Mapping[str, Any], *updates: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with each of `updates` laid over it in turn: mappings under the same key are merged, and
    anything else is replaced. Neither argument is changed."""
    merged = dict(base)
    for update in updates:
        for key, value in update.items():
            old = merged.get(key)
            if isinstance(old, dict) and isinstance(value, dict):
                merged[key] = deep_update(old, value)
            else:
                merged[key] = value
    return merged


def _nested(prefix: str, field: FieldInfo, env: Mapping[str, str]) -> dict[str, Any]:
    """The nested variables under `prefix` (CARBONSHIFT_CACHE__...) as a mapping of mappings."""
    of_dict = _is_dict(field.annotation)
    result: dict[str, Any] = {}
    for variable, text in env.items():
        if not variable.startswith(prefix):
            continue
        *keys, last = variable[len(prefix) :].split(DELIMITER)
        target: Any = field  # a field, a type (a mapping's values) or None (not a known key)
        place: Any = result
        for key in keys:
            target = _next(target, key)
            if isinstance(place, dict):
                place = place.setdefault(key, {})
        target = _next(target, last)
        value: Any = text
        if text and (target is not None or of_dict):
            value = _decoded(variable, target, text)
        if isinstance(place, dict):
            place[last] = value
    return result


def _decoded(variable: str, target: Any, text: str) -> Any:
    """A nested variable's value: JSON where its field (or a mapping's value type) is complex."""
    if isinstance(target, FieldInfo):
        is_complex, lenient = _field_kind(target)
    elif target is not None:
        if not _is_complex(target) and _union_is_complex(target):
            decoded = _json(variable, text, lenient=True)
            return decoded if isinstance(decoded, list | dict) else text
        is_complex, lenient = _is_complex(target), True
    else:  # under a mapping, a key no type describes
        is_complex, lenient = True, True
    return _json(variable, text, lenient) if is_complex else text


def _json(variable: str, text: str, lenient: bool) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        if lenient:
            return text
        raise EnvironmentValueError(variable, f"not valid JSON ({exc})") from None


def _next(target: Any, key: str) -> Any:
    """What `key` names under `target`: a model's field, or a mapping's value type; None if nothing."""
    if not target:
        return None
    annotation = target.annotation if isinstance(target, FieldInfo) else target
    if _is_dict(annotation):
        args = get_args(annotation)
        return args[-1] if args else None
    for arg in get_args(annotation):
        found = _next(arg, key)
        if found:
            return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return next((f for name, f in annotation.model_fields.items() if name.lower() == key), None)
    return None


def _field_kind(field: FieldInfo) -> tuple[bool, bool]:
    """(whether the field takes JSON, whether text that is not JSON is passed on as text): a union
    with a complex member (`list[str] | str`) takes either."""
    if _is_complex(field.annotation):
        return True, False
    if _union_is_complex(field.annotation):
        return True, True
    return False, False


def _is_complex(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is not None and _is_annotated(annotation):
        return _is_complex(get_args(annotation)[0])
    return any(_is_container(t) for t in (annotation, origin)) or hasattr(origin, "__pydantic_core_schema__")


def _union_is_complex(annotation: Any) -> bool:
    if get_origin(annotation) not in (Union, UnionType):
        return False
    return any(_is_complex(arg) or _union_is_complex(arg) for arg in get_args(annotation))


def _is_container(annotation: Any) -> bool:
    return (
        isinstance(annotation, type)
        and not issubclass(annotation, str | bytes)
        and issubclass(annotation, _CONTAINERS)
    )


def _is_dict(annotation: Any) -> bool:
    origin = get_origin(annotation) if get_origin(annotation) is not None else annotation
    return isinstance(origin, type) and issubclass(origin, dict)


def _is_annotated(annotation: Any) -> bool:
    return hasattr(annotation, "__metadata__")
