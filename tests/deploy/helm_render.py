"""A renderer for the small subset of Helm's Go templates that deploy/helm/carbonshift uses, for tests on
machines without the `helm` binary (no Debian package ships it, and PyPI's bindings need Python 3.12).

Supported, with Go's semantics: `{{ .Values.a.b }}`, `.Release.Name|Namespace|Service`,
`.Chart.Name|Version|AppVersion`; `{{- if X }} ... {{- else }} ... {{- end }}` (nestable; X a pipeline);
the functions quote, default, required, not, toYaml, nindent, indent; pipes (the piped value becomes the
last argument); string and integer literals; `{{-` and `-}}` trimming all whitespace beside them.
Anything else (range, with, include, define, variables, comments, parentheses, a missing value) raises
RenderError instead of rendering something helm would not, so the chart cannot drift out of the subset
unnoticed.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
WORD = re.compile(r'"(?:[^"\\]|\\.)*"|\||[^\s"|]+')
WS = " \t\r\n"


class RenderError(Exception):
    pass


def _go_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise RenderError(f"cannot print {type(value).__name__} {value!r} (use toYaml)")


def _indent(n: int, text: str) -> str:
    pad = " " * n
    return pad + text.replace("\n", "\n" + pad)


def _required(msg: str, value: Any) -> Any:
    if value is None or value == "":
        raise RenderError(f"required: {msg}")
    return value


FUNCS: dict[str, Any] = {
    "quote": lambda v: json.dumps(_go_str(v)),
    "default": lambda d, v: v if v else d,
    "required": _required,
    "not": lambda v: not v,
    "toYaml": lambda v: yaml.safe_dump(v, default_flow_style=False, sort_keys=True).removesuffix("\n"),
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "indent": _indent,
}


def _term(word: str, ctx: dict[str, Any]) -> Any:
    if word.startswith('"'):
        return json.loads(word)
    if re.fullmatch(r"-?\d+", word):
        return int(word)
    if not re.fullmatch(r"(\.[A-Za-z_][A-Za-z0-9_]*)+", word):
        raise RenderError(f"unsupported term {word!r}")
    value: Any = ctx
    for key in word[1:].split("."):
        if not isinstance(value, dict) or key not in value:
            raise RenderError(f"no value at {word}")
        value = value[key]
    return value


def _pipeline(source: str, ctx: dict[str, Any]) -> Any:
    tokens = WORD.findall(source)
    if any(not t.startswith('"') and any(c in t for c in "()$/*") for t in tokens):
        raise RenderError(f"unsupported action {{{{ {source} }}}}")
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token == "|":
            commands.append([])
        else:
            commands[-1].append(token)
    result: Any = None
    for i, words in enumerate(commands):
        if not words:
            raise RenderError(f"empty command in {source!r}")
        head, args = words[0], [_term(w, ctx) for w in words[1:]]
        if i > 0:
            args.append(result)
        if head in FUNCS:
            result = FUNCS[head](*args)
        elif len(args) == 0:
            result = _term(head, ctx)
        else:
            raise RenderError(f"unknown function {head!r} in {source!r}")
    return result


def render_template(text: str, ctx: dict[str, Any]) -> str:
    """One template file's text, rendered."""
    parts: list[tuple[str, str]] = []  # ("text", s) or ("action", body)
    pos = 0
    for m in ACTION.finditer(text):
        before = text[pos : m.start()]
        if m.group(1):
            before = before.rstrip(WS)
        parts.append(("text", before))
        parts.append(("action", m.group(2).strip()))
        pos = m.end()
        if m.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(WS))
    parts.append(("text", text[pos:]))
    out: list[str] = []
    stack: list[tuple[bool, bool]] = []  # (this branch is taken, the enclosing block is emitting)
    for kind, body in parts:
        emitting = all(taken for taken, _ in stack)
        if kind == "text":
            if emitting:
                out.append(body)
        elif body.startswith("if "):
            stack.append((bool(_pipeline(body[3:], ctx)) if emitting else False, emitting))
        elif body == "else":
            if not stack:
                raise RenderError("else without if")
            taken, outer = stack[-1]
            stack[-1] = (outer and not taken, outer)
        elif body == "end":
            if not stack:
                raise RenderError("end without if")
            stack.pop()
        elif body.split(" ")[0] in {"range", "with", "define", "block", "template", "include", "else"}:
            raise RenderError(f"unsupported action {{{{ {body} }}}}")
        elif emitting:
            out.append(_go_str(_pipeline(body, ctx)))
    if stack:
        raise RenderError("if without end")
    return "".join(out)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def render_chart(
    chart: Path,
    values: dict[str, Any] | None = None,
    release: str = "carbonshift",
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """`helm template RELEASE CHART --set ...`: every manifest the chart's templates produce, parsed."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    ctx = {
        "Values": _merge(yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8")), values or {}),
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion", "")},
    }
    docs: list[dict[str, Any]] = []
    for path in sorted((chart / "templates").glob("*.yaml")):
        rendered = render_template(path.read_text(encoding="utf-8"), ctx)
        try:
            docs.extend(d for d in yaml.safe_load_all(rendered) if d)
        except yaml.YAMLError as exc:
            raise RenderError(f"{path.name} rendered to invalid YAML: {exc}\n{rendered}") from exc
    return docs
