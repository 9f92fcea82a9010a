"""deploy/docker/Dockerfile, without a Docker engine: its instructions are parsed and checked, and the
substance of its stages is executed here. The build stage's COPY and RUN build the wheel from a copy of
exactly what it copies; the runtime stage's install line is expanded by the shell and the wheel it names
is installed into a fresh virtual environment; then the image's ENTRYPOINT + CMD run from that
environment with the image's ENV (paths moved to a temporary directory), /healthz must answer, and the
HEALTHCHECK command must pass while it serves and fail once it has stopped."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import requests

from tests.deploy.helpers import (
    DOCKERFILE,
    REPO,
    SECRET_NAME,
    Instruction,
    Served,
    base_env,
    dockerfile_env,
    parse_dockerfile,
    token_like,
)

TOKEN = "deploy-test-token-0123456789abcdef"
INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
FINAL = max(i.stage for i in INSTRUCTIONS)


def _stage(index: int) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.stage == index]


def _one(name: str, stage: int = FINAL) -> Instruction:
    found = [i for i in _stage(stage) if i.name == name]
    assert len(found) == 1, f"expected one {name} in stage {stage}, found {len(found)}"
    return found[0]


def _command_line() -> list[str]:
    entrypoint = _one("ENTRYPOINT").exec_form()
    cmd = _one("CMD").exec_form()
    assert entrypoint is not None and cmd is not None, "ENTRYPOINT and CMD in exec (JSON) form"
    return entrypoint + cmd


def test_two_stages_build_the_wheel_and_install_it_as_a_non_root_user() -> None:
    assert FINAL == 1, "a build stage and a runtime stage"
    build_from = _one("FROM", 0).value.split()
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim|python:3\.\d+-slim", build_from[0])
    assert build_from[1:] == ["AS", "build"]
    assert re.fullmatch(r"python:(\$\{PYTHON_VERSION\}|3\.\d+)-slim", _one("FROM").value)
    wheel_run = [i.value for i in _stage(0) if i.name == "RUN"]
    assert len(wheel_run) == 1 and "pip wheel" in wheel_run[0] and "--no-deps" in wheel_run[0]
    install = [i.value for i in _stage(1) if i.name == "RUN" and "pip install" in i.value]
    assert len(install) == 1 and "from=build" in install[0] and "carbonshift-*.whl" in install[0]

    user = _one("USER").value
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, (
        f"USER {user}: numeric (Kubernetes' runAsNonRoot checks it) and not root"
    )
    setup = " ".join(i.value for i in _stage(1) if i.name == "RUN")
    assert f"--uid {uid}" in setup, "the USER's uid is created in the image"
    users = [i for i in INSTRUCTIONS if i.name == "USER"]
    assert users[-1].stage == FINAL and _stage(FINAL).index(users[-1]) > max(
        n for n, i in enumerate(_stage(FINAL)) if i.name == "RUN"
    ), "USER comes after every RUN of the runtime stage, so the server never runs as root"


def test_serves_on_every_address_with_a_data_volume_an_exposed_port_and_a_healthcheck() -> None:
    env = dockerfile_env(INSTRUCTIONS, FINAL)
    assert _command_line()[-2:] == ["carbonshift", "serve"]
    assert env["CARBONSHIFT_HOST"] == "0.0.0.0"
    assert _one("EXPOSE").value == env["CARBONSHIFT_PORT"] == "8765"
    volumes = json.loads(_one("VOLUME").value)
    assert volumes == [env["CARBONSHIFT_DATA_DIR"]]
    assert env["CARBONSHIFT_CACHE__PATH"].startswith(env["CARBONSHIFT_DATA_DIR"] + "/")
    assert env["HOME"] == env["CARBONSHIFT_DATA_DIR"], "nothing else to write under a read-only root"
    assert f"install -d -o {_one('USER').value.split(':')[0]}" in " ".join(i.value for i in _stage(1))
    health = _one("HEALTHCHECK")
    argv = health.exec_form()
    assert argv is not None and argv[0] == "python" and "/healthz" in argv[-1]
    assert "curl" not in health.value and "wget" not in health.value


def test_no_secret_is_baked_into_the_image() -> None:
    for ins in INSTRUCTIONS:
        if ins.name in {"ENV", "ARG", "LABEL"}:
            for pair in ins.value.split():
                key, _, value = pair.partition("=")
                assert not SECRET_NAME.search(key), (
                    f"{ins.name} {key}: secrets come from the environment at run time"
                )
                assert not token_like(value.strip('"')), f"{ins.name} {key}={value}: looks like a secret"


# --- the stages, executed ------------------------------------------------------------------------------


def _ignored(name: str) -> bool:
    patterns = (
        (REPO / "deploy" / "docker" / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    )
    return any(fnmatch.fnmatch(name, p.removeprefix("**/")) for p in patterns if p.startswith("**/"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage, run here: its COPYs from the repository (the build context, less what the
    Dockerfile's .dockerignore leaves out) into WORKDIR, then its RUN with /wheels moved to a temp dir."""
    root = tmp_path_factory.mktemp("build-stage")
    workdir = root / _one("WORKDIR", 0).value.lstrip("/")
    workdir.mkdir(parents=True)
    for ins in _stage(0):
        if ins.name != "COPY":
            continue
        *sources, dest = ins.value.split()
        target = workdir / dest
        for source in sources:
            src = REPO / source
            if src.is_dir():
                shutil.copytree(src, target, ignore=lambda _d, names: [n for n in names if _ignored(n)])
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target / src.name)
    out = root / "wheels"
    (run,) = [i.value for i in _stage(0) if i.name == "RUN"]
    script = run.replace("/wheels", shlex.quote(str(out)))
    env = base_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        ["sh", "-ec", script], cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if (
        result.returncode != 0
        and "hatchling" in result.stdout + result.stderr
        and "No matching" in result.stdout + result.stderr
    ):
        pytest.skip(
            "the build stage needs hatchling from the package index, which is unreachable: "
            + result.stderr[-500:]
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("carbonshift-*.whl")
    return built


def test_the_build_stage_makes_a_wheel_with_the_package_data(wheel: Path) -> None:
    package = REPO / "src" / "carbonshift"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    data = [
        p.relative_to(package.parent).as_posix()
        for p in package.rglob("*")
        if p.is_file() and p.suffix in {".csv", ".md", ".mako", ".json"} and "__pycache__" not in p.parts
    ]
    assert any(d.startswith("carbonshift/catalog/data/") and d.endswith(".csv") for d in data)
    missing = [d for d in data if d not in names]
    assert not missing, f"package data left out of the wheel: {missing}"
    migrations = [
        p.relative_to(package.parent).as_posix()
        for p in (package / "scheduler" / "migrations").rglob("*.py")
        if "__pycache__" not in p.parts
    ]
    assert len(migrations) >= 3 and not [m for m in migrations if m not in names], "every Alembic migration"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert re.search(r"^carbonshift = carbonshift\.cli\.app:main$", entry_points, re.M)


def _install_line_args(wheel: Path, extras: str) -> list[str]:
    """The runtime stage's install RUN, expanded by the shell with `pip` standing in as an echo."""
    (run,) = [i.value for i in _stage(FINAL) if i.name == "RUN" and "pip install" in i.value]
    command = run.split(" pip install", 1)[1]  # after the --mount=... option
    script = 'pip() { for a in "$@"; do printf \'%s\\n\' "$a"; done; }\npip install' + command
    script = script.replace("/wheels", shlex.quote(str(wheel.parent)))
    result = subprocess.run(
        ["sh", "-ec", script], env=base_env(EXTRAS=extras), capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def image_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel the runtime stage installs. Its dependencies come from this test
    environment through a path entry placed after the venv's own site-packages (no .pth of that
    environment is processed, so its editable carbonshift stays out: the wheel is what runs)."""
    args = _install_line_args(wheel, "")
    assert args[0] == "install" and args[-1] == str(wheel), args
    assert _install_line_args(wheel, "aws,gcp")[-1] == f"{wheel}[aws,gcp]"
    venv = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    where = subprocess.run(
        [str(python), "-c", "import carbonshift; print(carbonshift.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site), f"carbonshift imported from {where}, not from the wheel"
    return venv


def _image_env(venv: Path, tmp: Path, **extra: str) -> dict[str, str]:
    """The runtime stage's ENV, its directories moved under tmp, PATH to the venv first."""
    env = dockerfile_env(INSTRUCTIONS, FINAL)
    data = tmp / "data"
    for key, value in env.items():
        if value.startswith(env["CARBONSHIFT_DATA_DIR"]):
            env[key] = str(data) + value.removeprefix(env["CARBONSHIFT_DATA_DIR"])
    env["CARBONSHIFT_PORT"] = "0"  # a free port, announced by serve
    return base_env(PATH=f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin", **env, **extra)


def _argv(venv: Path) -> list[str]:
    argv = _command_line()
    if argv[:2] == ["tini", "--"] and shutil.which("tini") is None:
        argv = argv[2:]  # the init only reaps orphans; it is not on this machine
    return [str(venv / "bin" / a) if (venv / "bin" / a).exists() else a for a in argv]


def _healthcheck(venv: Path, port: int) -> int:
    argv = _one("HEALTHCHECK").exec_form()
    assert argv is not None
    env = base_env(CARBONSHIFT_PORT=str(port))
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]], env=env, capture_output=True, timeout=30, check=False
    ).returncode


def test_the_image_command_serves_healthz_and_the_healthcheck_follows_it(
    image_venv: Path, tmp_path: Path
) -> None:
    env = _image_env(image_venv, tmp_path, CARBONSHIFT_API_TOKEN=TOKEN)
    (tmp_path / "data").mkdir()
    served = Served(_argv(image_venv), env, cwd=tmp_path / "data")
    try:
        url = served.url()
        health = served.health()
        assert health["status"] == "ok" and health["role"] == "active"
        assert "serving on http://0.0.0.0:" in served.output(), (
            "listening on every address, as in a container"
        )
        assert requests.get(url + "/api/v1/jobs", timeout=10).status_code == 401, "the token is enforced"
        ok = requests.get(url + "/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert ok.status_code == 200
        assert _healthcheck(image_venv, served.port) == 0
        assert (tmp_path / "data" / "carbonshift.db").exists(), "the database is in the data volume"
    finally:
        code = served.stop()
    assert code == 0, served.output()
    assert TOKEN not in served.output()
    assert _healthcheck(image_venv, served.port) != 0, "the HEALTHCHECK fails when nothing answers"


def test_the_image_command_refuses_to_serve_without_a_token(image_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = subprocess.run(
        _argv(image_venv),
        env=_image_env(image_venv, tmp_path),
        cwd=tmp_path / "data",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 0.0.0.0 without an API token" in result.stderr
