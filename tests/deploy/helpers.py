"""Shared by the deploy/ tests: paths, a Dockerfile parser, env-file and unit-file readers, and a
`carbonshift serve` process started the way a deployment starts it, probed on /healthz."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "carbonshift.env.example"
CHART = DEPLOY / "helm" / "carbonshift"
UNIT = DEPLOY / "systemd" / "carbonshift.service"

# names that hold secrets, and values that look like one (long random-looking words)
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL", re.I)
ANNOUNCE = re.compile(r"carbonshift serving on http://(\S+):(\d+)")


def token_like(value: str) -> bool:
    """A long word of base64/hex-ish characters with letters and digits: what a pasted token looks like."""
    return bool(re.fullmatch(r"[A-Za-z0-9_\-+=]{20,}", value)) and bool(re.search(r"\d", value))


# --- Dockerfile ----------------------------------------------------------------------------------------


@dataclass
class Instruction:
    name: str  # upper case: FROM, RUN, ...
    value: str  # the rest of the logical line, continuations joined
    stage: int  # index of the FROM it belongs to

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's argv, or None for the shell form."""
        text = self.value
        if self.name == "HEALTHCHECK":  # HEALTHCHECK [--option=...] CMD ...
            text = re.sub(r"^(--\S+\s+)*CMD\s+", "", text)
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        return parsed if isinstance(parsed, list) else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical instructions: comments dropped, backslash continuations joined (comment lines inside a
    continuation are skipped, as Docker does)."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        name, _, value = logical.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        out.append(Instruction(name, value.strip(), stage))
    assert not pending, "a continuation runs off the end of the Dockerfile"
    return out


def dockerfile_env(instructions: list[Instruction], stage: int) -> dict[str, str]:
    """The ENV values of one stage, in the `ENV K=V K2=V2` form (the one the Dockerfile uses)."""
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.stage == stage and ins.name == "ENV":
            for pair in ins.value.split():
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {ins.value!r}: write KEY=VALUE"
                env[key] = value.strip('"')
    return env


# --- env files and unit files --------------------------------------------------------------------------


def read_env_file(path: Path, include_commented: bool = False) -> dict[str, str]:
    """KEY=VALUE lines (compose, systemd and `docker run --env-file` read the same simple form);
    with include_commented, also the `# KEY=VALUE` examples."""
    env: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if include_commented and re.match(r"#\s*[A-Z][A-Z0-9_]*=", line):
            line = line.lstrip("#").strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"{path.name}: bad line {raw!r}"
        env[key] = value
    return env


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as INI: sections of keys, each key with every value it was given, in order."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a key outside any section: {raw!r}"
        assert not line.endswith("\\"), "keep unit lines on one line"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# --- a served process ----------------------------------------------------------------------------------


class Served:
    """A `carbonshift serve` command line in a subprocess, with exactly the given environment."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.port = 0
        self._announced = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            match = ANNOUNCE.search(line)
            if match:
                self.port = int(match.group(2))
                self._announced.set()
        self._announced.set()

    def output(self) -> str:
        time.sleep(0.1)
        return "".join(self.lines)

    def url(self, timeout: float = 60) -> str:
        """The loopback URL once serve has announced itself and /healthz answers 200."""
        self._announced.wait(timeout)
        if not self.port:
            self.proc.kill()
            raise AssertionError("serve did not start:\n" + self.output())
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(url + "/healthz", timeout=5).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("/healthz never answered 200:\n" + self.output())
            time.sleep(0.2)

    def health(self) -> dict[str, Any]:
        response = requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5)
        assert response.status_code == 200
        return dict(response.json())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def base_env(**extra: str) -> dict[str, str]:
    """A clean process environment: PATH and locale only, no CARBONSHIFT_* from the test runner."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT"}}
    env.update(extra)
    return env
