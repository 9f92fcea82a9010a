from pathlib import Path

from .helpers import REPO, run_cli, run_json


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("carbonshift ")


def test_offline_region_gives_static_with_source_and_year(tmp_path: Path) -> None:
    data = run_json(
        "intensity",
        "gcp:europe-north1",
        "--now",
        "2026-11-24T00:00Z",
        "--to",
        "+6h",
        "--format",
        "json",
        tmp=tmp_path,
    )
    assert data["zone"] == "FI" and data["signal"] == "average"
    assert data["start"] == "2026-11-24T00:00:00Z" and data["end"] == "2026-11-24T06:00:00Z"
    (point,) = data["points"]
    assert point["kind"] == "static" and "CodeCarbon nordic_emissions" in point["source"]
    assert point["basis"] == "lifecycle"
    assert point["g_per_kwh"] == data["mean_g_per_kwh"] > 0
    assert "no live source" in point["note"]


def test_file_mapped_user_location(tmp_path: Path) -> None:
    data = run_json(
        "--config",
        str(REPO / "examples" / "config" / "carbonshift.yaml"),
        "intensity",
        "madrid-lab",
        "--from",
        "2026-11-24T10:00Z",
        "--to",
        "2026-11-24T14:00Z",
        "--now",
        "2026-11-24T12:00Z",
        "--format",
        "json",
        tmp=tmp_path,
    )
    kinds = [(p["start"][11:16], p["kind"], p["source"]) for p in data["points"]]
    assert kinds == [
        ("10:00", "measured", "file:es-scenario.csv"),
        ("11:00", "measured", "file:es-scenario.csv"),
        ("12:00", "measured", "file:es-scenario.csv"),  # one kind, before and after now
        ("13:00", "measured", "file:es-scenario.csv"),
    ]


def test_table_output_is_aligned_with_units(tmp_path: Path) -> None:
    result = run_cli("intensity", "DE", "--now", "2026-11-24T00:00Z", tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "zone DE" in lines[0] and "gCO2e/kWh" in lines[0]
    assert lines[1].split()[:3] == ["start", "(UTC)", "end"]


def test_bad_input_is_a_clear_error_with_exit_code_2(tmp_path: Path) -> None:
    cases = [
        (("intensity", "atlantis"), "ZONE_OR_REGION"),
        (("intensity", "DE", "--from", "yesterday"), "--from"),
        (("intensity", "DE", "--from", "2026-11-24T00:00"), "no timezone"),
        (("intensity", "DE", "--signal", "both"), "allowed: average, marginal"),
        (("intensity", "DE", "--from", "+2h", "--to", "+1h"), "--to: must be after --from"),
    ]
    for args, message in cases:
        result = run_cli(*args, tmp=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_marginal_without_a_marginal_source_fails_clearly(tmp_path: Path) -> None:
    result = run_cli("intensity", "DE", "--signal", "marginal", tmp=tmp_path)
    assert result.returncode == 1
    assert "no marginal intensity" in result.stderr and "WattTime" in result.stderr


def test_invalid_setting_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    result = run_cli("intensity", "DE", tmp=tmp_path, env={"CARBONSHIFT_INTENSITY__MAX_RETRIES": "lots"})
    assert result.returncode == 2
    assert "intensity.max_retries" in result.stderr and "CARBONSHIFT_INTENSITY__MAX_RETRIES" in result.stderr


def test_live_source_through_the_command_and_no_secret_in_output(
    tmp_path: Path, fake_electricitymaps
) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    fake_electricitymaps.now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    env = fake_electricitymaps.env() | {"CARBONSHIFT_UKCI_ENABLED": "false"}
    result = run_cli(
        "intensity",
        "aws:eu-central-1",
        "--now",
        "2026-11-24T12:00Z",
        "--from",
        "-3h",
        "--to",
        "+3h",
        "--format",
        "json",
        env=env,
        tmp=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert fake_electricitymaps.token not in result.stdout + result.stderr
    import json

    data = json.loads(result.stdout)
    assert {(p["source"], p["kind"]) for p in data["points"]} == {
        ("electricitymaps", "measured"),
        ("electricitymaps", "forecast"),
    }
    sent = fake_electricitymaps.server.requests[0]
    assert sent.headers.get("auth-token") == fake_electricitymaps.token


def test_dead_source_is_a_warning_not_a_failure(tmp_path: Path, dead_url: str) -> None:
    env = {
        "CARBONSHIFT_ELECTRICITYMAPS_TOKEN": "tok-SECRET",
        "CARBONSHIFT_ELECTRICITYMAPS_URL": dead_url,
        "CARBONSHIFT_UKCI_ENABLED": "false",
        "CARBONSHIFT_INTENSITY__SOURCE_BUDGET_S": "2",
    }
    result = run_cli("intensity", "DE", "--to", "+2h", env=env, tmp=tmp_path)
    assert result.returncode == 0
    assert "warning: electricitymaps unavailable for DE" in result.stderr
    assert "static" in result.stdout and "tok-SECRET" not in result.stdout + result.stderr
