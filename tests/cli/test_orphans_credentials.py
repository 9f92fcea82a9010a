"""`carbonshift providers orphans` without --provider skips clouds with no credentials configured
(issue 15, defect 9): it says so on stderr and never runs an SDK's default credential lookup, which
would probe the cloud's metadata address."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

from carbonshift.cli.cloud_credentials import cloud_configured
from carbonshift.config import load_settings
from tests.cli.helpers import run_cli


def _no_cloud_env(home: Path) -> dict[str, str]:
    """A home without ~/.aws, ~/.config/gcloud or ~/.azure, and no cloud variables."""
    return {
        "HOME": str(home),
        "APPDATA": "",
        "CLOUDSDK_CONFIG": str(home / "gcloud"),
        "AZURE_CONFIG_DIR": str(home / "az"),
    }


def test_clouds_without_credentials_are_skipped_and_never_probed(tmp_path: Path) -> None:
    metadata = socket.socket()  # where google-auth and azure-identity would probe, if asked
    metadata.bind(("127.0.0.1", 0))
    metadata.listen(8)
    metadata.settimeout(0.2)
    probed: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                conn, _ = metadata.accept()
            except TimeoutError:
                continue
            probed.append("connection")
            conn.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    host = f"127.0.0.1:{metadata.getsockname()[1]}"
    known = tmp_path / "live.txt"
    known.write_text("")
    env = {
        **_no_cloud_env(tmp_path),
        "GCE_METADATA_HOST": host,
        "GCE_METADATA_IP": host,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://{host}/",
        "IDENTITY_ENDPOINT": f"http://{host}/",
        "MSI_ENDPOINT": f"http://{host}/",
    }
    started = time.monotonic()
    result = run_cli(
        "providers", "orphans", "--known-runs", str(known), "--format", "json", env=env, tmp=tmp_path
    )
    elapsed = time.monotonic() - started
    stop.set()
    watcher.join(timeout=5)
    metadata.close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"orphans": [], "terminated": [], "skipped": ["aws", "azure", "gcp"]}
    for cloud in ("aws", "gcp", "azure"):
        assert f"skipping {cloud}: no credentials configured" in result.stderr
    assert "--provider gcp" in result.stderr
    assert probed == [] and elapsed < 20


def test_credential_sources_are_read_from_env_and_files_only(tmp_path: Path) -> None:
    settings = load_settings(None)
    bare = {"HOME": str(tmp_path)}
    assert not any(cloud_configured(c, settings, bare, tmp_path) for c in ("aws", "gcp", "azure"))
    assert cloud_configured("aws", settings, {"AWS_PROFILE": "dev"}, tmp_path)
    assert cloud_configured("gcp", settings, {"GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}, tmp_path)
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\n")
    assert cloud_configured("aws", settings, bare, tmp_path)
    adc = tmp_path / ".config" / "gcloud"
    adc.mkdir(parents=True)
    (adc / "application_default_credentials.json").write_text("{}")
    assert cloud_configured("gcp", settings, bare, tmp_path)
    (tmp_path / ".azure").mkdir()
    (tmp_path / ".azure" / "azureProfile.json").write_text("{}")
    assert not cloud_configured("azure", settings, bare, tmp_path)  # signed in, but no subscription
    assert cloud_configured("azure", settings, {**bare, "AZURE_SUBSCRIPTION_ID": "s"}, tmp_path)
