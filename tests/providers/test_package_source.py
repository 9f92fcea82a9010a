"""Where a launched instance gets carbonshift. By default the daemon's own wheel (the version it runs),
served to the run's token and installed only if its sha256 matches; or a pinned wheel URL and hash
from config; the public package index only when configured. Never the index by default: whoever
controls that name there would run code as root on users' instances."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from carbonshift.config import load_settings
from carbonshift.errors import ConfigError, UserInputError
from carbonshift.providers.base import PackageSource
from carbonshift.providers.bootstrap import EXIT_MARKER, package_source, render_bootstrap
from carbonshift.providers.selfwheel import build_wheel_bytes, own_wheel, wheel_filename
from tests.providers.conftest import launch_cli, make_request
from tests.providers.fakes import Answer, FakeServer, Recorded
from tests.providers.test_bootstrap import STUB_CARBONSHIFT, run_script

STUB_PYTHON3 = """#!/bin/sh
# `python3 -m venv DIR`: a venv whose pip records what it installs and whose carbonshift is the stub
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/sh\\nprintf "%%s\\\\n" "$@" > "$SANDBOX/pip-args"\\n' > "$3/bin/pip"
  cp "$SANDBOX/stub-carbonshift" "$3/bin/carbonshift"
  chmod +x "$3/bin/pip" "$3/bin/carbonshift"
  exit 0
fi
exit 1
"""


class WheelServer(FakeServer):
    """Serves one wheel at /api/v1/runs/<run>/wheel/<file> to the run's token only."""

    def __init__(self, data: bytes, token: str | None) -> None:
        self.data = data
        self.token = token
        super().__init__()

    def route(self, rec: Recorded, raw: bytes) -> Answer:
        if self.token is not None and rec.headers.get("authorization") != f"Bearer {self.token}":
            return Answer(403, {"detail": "not this run's token"})
        return Answer(200, raw=self.data, headers={"Content-Type": "application/octet-stream"})


needs_tools = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("sha256sum") is None, reason="needs curl and sha256sum"
)


def _run_with_python(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """The bootstrap in the sandbox with no carbonshift on PATH, so it installs one: python3 is a stub
    that makes a venv whose pip records its arguments; curl and sha256sum are the real ones."""
    (tmp_path / "stub-carbonshift").write_text(STUB_CARBONSHIFT)
    return run_script(
        tmp_path,
        script,
        stubs=("poweroff",),
        extra={"python3": STUB_PYTHON3},
        CARBONSHIFT_VENV=str(tmp_path / "venv"),
    )


@needs_tools
def test_the_daemons_wheel_is_fetched_with_the_run_token_checked_and_installed(tmp_path: Path) -> None:
    data = b"PK-not-really-a-wheel-but-bytes"
    server = WheelServer(data, token="run-token-1")
    try:
        package = PackageSource(
            wheel_url=f"{server.url}/api/v1/runs/run-0001/wheel/{wheel_filename()}",
            sha256=hashlib.sha256(data).hexdigest(),
            wheel_file=wheel_filename(),
            send_token=True,
        )
        request = make_request("eu-north-1", report_token="run-token-1")
        script = render_bootstrap(request, "aws", package=package)
        result = _run_with_python(tmp_path, script)
        assert result.returncode == 0, result.stderr
        installed = (tmp_path / "pip-args").read_text().split("\n")
        assert installed[-2].endswith(wheel_filename())  # pip was given the checked file, not a name
        assert "carbonshift==" not in script.split("PACKAGE=")[1].split("\n")[0]
        (rec,) = server.requests
        assert rec.headers["authorization"] == "Bearer run-token-1"
        assert f"{EXIT_MARKER} 0" in result.stdout
        assert not (tmp_path / "state" / "wheel-headers").exists()  # the token is not left on disk
    finally:
        server.close()


@needs_tools
def test_a_wheel_whose_sha256_differs_is_never_installed(tmp_path: Path) -> None:
    server = WheelServer(b"tampered bytes", token=None)
    try:
        package = PackageSource(
            wheel_url=f"{server.url}/dist/{wheel_filename()}",
            sha256="0" * 64,
            wheel_file=wheel_filename(),
        )
        script = render_bootstrap(make_request("eu-north-1", report_token="tok"), "aws", package=package)
        result = _run_with_python(tmp_path, script)
        assert "refusing to install" in result.stdout
        assert f"{EXIT_MARKER} 127" in result.stdout
        assert not (tmp_path / "pip-args").exists()  # pip never ran
        assert "authorization" not in server.requests[0].headers  # a pinned URL never gets the run token
    finally:
        server.close()


def test_package_sources_from_the_settings(tmp_path: Path) -> None:
    index = package_source(load_settings(None, bootstrap_source="index"), "run-1")  # explicit wins
    assert index.requirement and index.requirement.startswith("carbonshift==") and index.wheel_url is None
    digest = "ab" * 32
    pinned = package_source(
        load_settings(
            None,
            bootstrap_source="url",
            bootstrap_wheel_url="https://dl.example.org/wheels/carbonshift-0.1.0-py3-none-any.whl?sig=x",
            bootstrap_wheel_sha256=digest,
        ),
        "run-1",
    )
    assert (pinned.sha256, pinned.wheel_file, pinned.send_token) == (
        digest,
        "carbonshift-0.1.0-py3-none-any.whl",
        False,
    )
    daemon = load_settings(
        None,
        bootstrap_source="daemon",
        data_dir=str(tmp_path / "data"),
        scheduler={"report_url": "https://cs.example:8443/api/v1/runs/{run_id}/report"},
    )
    served = package_source(daemon, "run-7")
    own = own_wheel(tmp_path / "data" / "wheels")
    assert served.wheel_url == f"https://cs.example:8443/api/v1/runs/run-7/wheel/{own.filename}"
    assert served.sha256 == own.sha256 == hashlib.sha256(own.path.read_bytes()).hexdigest()
    assert served.send_token and served.requirement is None


def test_the_default_without_a_daemon_is_refused_naming_the_setting() -> None:
    with pytest.raises(UserInputError, match="bootstrap_source") as err:
        package_source(load_settings(None, bootstrap_source="daemon"), "run-1")
    assert "bootstrap_wheel_url" in str(err.value) and "index" in str(err.value)


def test_a_pinned_source_needs_an_https_wheel_and_its_sha256() -> None:
    with pytest.raises(ConfigError, match="bootstrap_wheel_url"):
        load_settings(None, bootstrap_source="url", bootstrap_wheel_sha256="ab" * 32)
    with pytest.raises(ConfigError, match="bootstrap_wheel_sha256"):
        load_settings(
            None,
            bootstrap_source="url",
            bootstrap_wheel_url="https://x.example/carbonshift-0.1.0-py3-none-any.whl",
            bootstrap_wheel_sha256="not-a-digest",
        )


def test_launch_without_a_daemon_or_a_chosen_source_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text("name: j\ncommand: [python, train.py]\nduration: 1h\n")
    result = launch_cli(
        "launch", str(spec), "--provider", "aws", "--region", "us-east-1", "--dry-run",
        env={"CARBONSHIFT_BOOTSTRAP_SOURCE": "daemon"}, tmp=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "bootstrap_source" in result.stderr and "Traceback" not in result.stderr


def test_the_own_wheel_is_reproducible_and_installs(tmp_path: Path) -> None:
    assert build_wheel_bytes() == build_wheel_bytes()  # every daemon on one install announces one hash
    own = own_wheel(tmp_path / "wheels")
    with zipfile.ZipFile(own.path) as zf:
        names = zf.namelist()
        assert "carbonshift/__init__.py" in names and "carbonshift/catalog/data/zones.csv" in names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        info = own.filename.removesuffix("-py3-none-any.whl") + ".dist-info"
        assert "carbonshift = carbonshift.cli.app:main" in zf.read(f"{info}/entry_points.txt").decode()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = venv / "lib" / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target", str(target), str(own.path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); import carbonshift; print(carbonshift.__version__)", str(target)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert probe.stdout.strip() == own.filename.split("-")[1], probe.stderr
