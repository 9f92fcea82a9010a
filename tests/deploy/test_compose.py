"""deploy/compose.yaml and deploy/carbonshift.env.example, parsed (no Docker engine, and no compose
plugin, here): the services, PostgreSQL 16 on a named volume, healthchecks and start order, secrets only
through the env file, and an environment that carbonshift's settings accept."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from carbonshift.config import load_settings
from tests.deploy.helpers import (
    COMPOSE,
    DEPLOY,
    ENV_EXAMPLE,
    SECRET_NAME,
    dockerfile_env,
    parse_dockerfile,
    read_env_file,
)

COMPOSE_DOC: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE_DOC["services"]


def _env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file", [])
    return [files] if isinstance(files, str) else [f if isinstance(f, str) else f["path"] for f in files]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_carbonshift_and_postgres_16_on_named_volumes() -> None:
    assert set(SERVICES) == {"carbonshift", "postgres"}
    image = SERVICES["postgres"]["image"]
    assert re.fullmatch(r"postgres:16(\.\d+)?([-.]\w+)*", image), f"{image}: PostgreSQL 16"
    named = set(COMPOSE_DOC.get("volumes", {}))
    mounts = {m.split(":")[0]: m.split(":")[1] for m in SERVICES["postgres"]["volumes"]}
    assert any(src in named and dst == "/var/lib/postgresql/data" for src, dst in mounts.items()), mounts
    data = {m.split(":")[0]: m.split(":")[1] for m in SERVICES["carbonshift"]["volumes"]}
    dockerfile = DEPLOY / "docker" / "Dockerfile"
    instructions = parse_dockerfile(dockerfile.read_text(encoding="utf-8"))
    image_env = dockerfile_env(instructions, max(i.stage for i in instructions))
    assert image_env["CARBONSHIFT_DATA_DIR"] in data.values()
    assert set(data) <= named, "the data dir on a named volume too"


def test_build_points_at_the_dockerfile() -> None:
    build = SERVICES["carbonshift"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert (context / build["dockerfile"]).resolve() == (DEPLOY / "docker" / "Dockerfile").resolve()
    assert (context / "pyproject.toml").exists()


def test_healthchecks_and_start_order() -> None:
    pg_test = " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in pg_test
    cs_test = SERVICES["carbonshift"]["healthcheck"]["test"]
    assert cs_test[0] in {"CMD", "CMD-SHELL"} and "/healthz" in " ".join(cs_test)
    port = _environment(SERVICES["carbonshift"])["CARBONSHIFT_PORT"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(cs_test)
    assert SERVICES["carbonshift"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    published = [str(p) for p in SERVICES["carbonshift"]["ports"]]
    assert any(p.endswith(f":{port}") for p in published), published


def test_secrets_come_only_from_the_env_file() -> None:
    for name, service in SERVICES.items():
        assert _env_files(service) == ["carbonshift.env"], f"{name}: env_file"
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{\w+(:?[-?][^}]*)?\}", value), f"{name}: {key} is a literal secret"
            assert urlsplit(value).password is None if "://" in value else True, (
                f"{name}: {key} has a password"
            )
    example = read_env_file(ENV_EXAMPLE)
    assert {"CARBONSHIFT_API_TOKEN", "POSTGRES_PASSWORD", "PGPASSWORD"} <= set(example)
    for key, value in read_env_file(ENV_EXAMPLE, include_commented=True).items():
        if SECRET_NAME.search(key) and value:
            assert value.startswith("replace-with-"), f"{key}: the example holds placeholders only"
    assert example["POSTGRES_PASSWORD"] == example["PGPASSWORD"], "server and client share one password"
    assert "carbonshift.env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


def test_the_carbonshift_service_environment_is_valid_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The image's ENV, then the env file (every example uncommented), then `environment:` — what the
    container gets — loads as carbonshift settings: no unknown CARBONSHIFT_* name, no bad value."""
    instructions = parse_dockerfile((DEPLOY / "docker" / "Dockerfile").read_text(encoding="utf-8"))
    env = dockerfile_env(instructions, max(i.stage for i in instructions))
    env.update(read_env_file(ENV_EXAMPLE, include_commented=True))
    env.update(_environment(SERVICES["carbonshift"]))
    for key in list(os.environ):
        if key.startswith("CARBONSHIFT_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("CARBONSHIFT_"):
            monkeypatch.setenv(key, value.replace("/var/lib/carbonshift", str(tmp_path)))
    settings = load_settings()
    assert settings.api_token is not None and settings.host == "0.0.0.0" and settings.port == 8765
    assert settings.db_url is not None and urlsplit(settings.db_url).hostname == "postgres"
    assert urlsplit(settings.db_url).password is None
