from pathlib import Path

import pytest

from carbonshift.config import Settings, load_settings
from carbonshift.errors import ConfigError
from carbonshift.intensity.types import Signal


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CARBONSHIFT_"):
            monkeypatch.delenv(key)


def test_defaults_work_with_no_file_and_no_env() -> None:
    s = load_settings()
    assert s.electricitymaps_token is None and s.signal is Signal.AVERAGE
    assert s.intensity.priority[0] == "files"


def test_env_beats_file_and_nested_keys_use_double_underscore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ukci_url: http://file\ncache:\n  forecast_ttl_s: 60\n")
    monkeypatch.setenv("CARBONSHIFT_UKCI_URL", "http://env")
    monkeypatch.setenv("CARBONSHIFT_CACHE__HISTORY_TTL_S", "7")
    s = load_settings(cfg)
    assert s.ukci_url == "http://env"
    assert s.cache.forecast_ttl_s == 60 and s.cache.history_ttl_s == 7


def test_config_from_env_var_and_relative_file_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "conf" / "c.yaml"
    cfg.parent.mkdir()
    cfg.write_text(
        "intensity:\n  files:\n    ES: data/es-2023.csv\nlocations:\n"
        "  - provider: local\n    region: madrid-lab\n    zone: ES\n"
    )
    monkeypatch.setenv("CARBONSHIFT_CONFIG", str(cfg))
    s = load_settings()
    assert s.intensity.files["ES"] == (tmp_path / "conf" / "data" / "es-2023.csv").resolve()
    assert s.locations[0].region == "madrid-lab" and s.locations[0].zone == "ES"


@pytest.mark.parametrize(
    ("yaml_text", "match"),
    [
        ("bogus: 1\n", r"setting 'bogus'.*unknown setting"),
        (
            "cache:\n  forecast_ttl_s: soon\n",
            r"setting 'cache\.forecast_ttl_s'.*CARBONSHIFT_CACHE__FORECAST_TTL_S.*integer",
        ),
        ("intensity:\n  priority: [files, nosuch]\n", r"intensity\.priority.*nosuch.*allowed: files"),
        ("signal: carbon\n", r"setting 'signal'.*average.*marginal"),
        ("api_compute_slots: 0\n", r"setting 'api_compute_slots'.*CARBONSHIFT_API_COMPUTE_SLOTS.*1"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("a: [\n", "not valid YAML at line"),
    ],
)
def test_invalid_settings_name_the_key(tmp_path: Path, yaml_text: str, match: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError, match=match):
        load_settings(cfg)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_secrets_are_never_echoed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARBONSHIFT_ELECTRICITYMAPS_TOKEN", "tok-SECRET-123")
    s = load_settings()
    assert "tok-SECRET-123" not in repr(s) and "tok-SECRET-123" not in str(s.model_dump())
    cfg = tmp_path / "c.yaml"
    cfg.write_text("watttime_password: [hunter2-SECRET]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert "hunter2" not in str(err.value) and "watttime_password" in str(err.value)


def test_overrides_beat_env_which_beats_the_file_and_nested_mappings_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ukci_url: http://file\nimages:\n  aws: ami-file\n  gcp: img-file\n")
    monkeypatch.setenv("carbonshift_Ukci_Url", "http://env")  # names in any case, as documented
    monkeypatch.setenv("CARBONSHIFT_IMAGES__GCP", "img-env")
    monkeypatch.setenv("CARBONSHIFT_CACHE", '{"enabled": false, "forecast_ttl_s": 5}')
    monkeypatch.setenv("CARBONSHIFT_CACHE__FORECAST_TTL_S", "6")  # a nested variable wins over the JSON
    s = load_settings(cfg, ukci_url="http://override")
    assert s.ukci_url == "http://override"
    assert s.images == {"aws": "ami-file", "gcp": "img-env"}
    assert s.cache.enabled is False and s.cache.forecast_ttl_s == 6
    assert load_settings(cfg).ukci_url == "http://env"


def test_list_and_model_settings_take_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBONSHIFT_INTENSITY__PRIORITY", '["ukci", "files"]')
    monkeypatch.setenv("CARBONSHIFT_LOCATIONS", '[{"region": "lab", "zone": "ES"}]')
    s = load_settings()
    assert s.intensity.priority == ["ukci", "files"]
    assert s.locations[0].region == "lab"
    monkeypatch.setenv("CARBONSHIFT_INTENSITY__PRIORITY", "ukci")
    with pytest.raises(ConfigError, match=r"CARBONSHIFT_INTENSITY__PRIORITY: not valid JSON"):
        load_settings()


def test_unknown_nested_env_key_is_refused_and_unknown_top_level_variable_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARBONSHIFT_NO_SUCH_SETTING", "1")
    assert load_settings().ukci_enabled is True
    monkeypatch.setenv("CARBONSHIFT_CACHE__BOGUS", "1")
    with pytest.raises(
        ConfigError, match=r"setting 'cache\.bogus'.*CARBONSHIFT_CACHE__BOGUS.*unknown setting"
    ):
        load_settings()


def test_settings_built_directly_read_the_environment_under_the_values_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARBONSHIFT_BOOTSTRAP_SOURCE", "index")
    monkeypatch.setenv("CARBONSHIFT_GCP_PROJECT", "env-project")
    s = Settings(gcp_project="given")
    assert s.bootstrap_source == "index" and s.gcp_project == "given"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("gpu-runner", True),
        ("arn:aws:iam::123456789012:instance-profile/team/gpu-runner", True),
        ("p" * 128, True),
        ("p" * 129, False),
        ("no spaces allowed", False),
        ("runner\n", False),
    ],
)
def test_aws_instance_profile_is_a_name_or_an_arn(value: str, ok: bool) -> None:
    if ok:
        assert load_settings(None, aws_instance_profile=value).aws_instance_profile == value
    else:
        with pytest.raises(
            ConfigError, match=r"setting 'aws_instance_profile'.*should match pattern '\^\(arn"
        ):
            load_settings(None, aws_instance_profile=value)
