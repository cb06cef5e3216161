"""The settings schema: the shipped demo config is valid; bad files are refused naming the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import ConfigError, load_settings, parse_settings, redact_url

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "config" / "demo.yaml"


def demo_data() -> dict:
    return yaml.safe_load(DEMO.read_text(encoding="utf-8").replace("${CITYWALL_REDIS_URL:-}", "").replace(
        "${CITYWALL_MQTT_URL:-}", ""))


def test_demo_config_is_valid():
    settings = load_settings(DEMO)
    assert {c.id for c in settings.cameras} == {"cam-vending", "cam-bin", "cam-road", "cam-street"}
    assert settings.demo.enabled
    assert settings.brokers.redis_url is None  # empty → private redis-server


def test_camera_connection_options_default_to_ingest_and_can_be_overridden():
    from citywall.builders.worker import camera_options

    data = demo_data()
    data["ingest"] = {"transport": "tcp", "login": {"backoff_s": [120], "max_attempts": 2, "window_s": 900}}
    data["cameras"][0].update(transport="udp", login={"backoff_s": [30, 60]})
    settings = parse_settings(data, "test.yaml")
    own, default = camera_options(settings, settings.cameras[0]), camera_options(settings, settings.cameras[1])
    assert (own.transport, own.login.backoff_s, own.login.max_attempts) == ("udp", (30, 60), 3)
    assert (default.transport, default.login.backoff_s, default.login.window_s) == ("tcp", (120,), 900)
    shipped = load_settings(DEMO)
    assert camera_options(shipped, shipped.cameras[0]).login.backoff_s == (60, 300, 900)


@pytest.mark.parametrize(
    "mutate, path, reason",
    [
        (lambda d: d["cameras"][0].update(colour="red"), "cameras[0].colour", "Extra inputs are not permitted"),
        (lambda d: d["cameras"][1]["zones"][0].update(polygon=[[0, 0], [2, 0], [0, 1]]),
         "cameras[1].zones[0].polygon", "outside 0..1"),
        (lambda d: d["cameras"][0]["zones"][0].update(polygon=[[0, 0], [0.5, 0.5], [1, 1]]),
         "cameras[0].zones[0].polygon", "no area"),
        (lambda d: d["cameras"][0]["zones"][0].update(events=["juggling"]), "cameras[0].zones[0].events[0]",
         "vending"),
        (lambda d: d["cameras"][2].update(url="http://example/x"), "cameras[2].url", "unsupported URL scheme"),
        (lambda d: d["cameras"][3].update(id="cam-bin"), "(top level)", "repeated: cam-bin"),
        (lambda d: d["demo"].update(enabled=False), "(top level)", "demo.enabled is false"),
        (lambda d: d["brokers"].update(redis_url="http://x"), "brokers.redis_url", "redis://"),
        (lambda d: d["users"][0].update(password_hash="hunter2"), "users[0].password_hash", "hash-password"),
        (lambda d: d["cameras"][0]["zones"][0].update(schedule=["8:00-20:00"]), "cameras[0].zones[0].schedule",
         "HH:MM-HH:MM"),
        (lambda d: d["cameras"][0]["zones"][0].update(dwell_s=0), "cameras[0].zones[0].dwell_s", "greater than 0"),
        (lambda d: d.pop("users"), "users", "Field required"),
        (lambda d: d["cameras"][0].update(transport="rtp"), "cameras[0].transport", "'auto', 'tcp' or 'udp'"),
        (lambda d: d["ingest"].update(transport="quic"), "ingest.transport", "'auto', 'tcp' or 'udp'"),
        (lambda d: d["ingest"]["login"].update(backoff_s=[300, 60]), "ingest.login.backoff_s", "must not shrink"),
        (lambda d: d["ingest"]["login"].update(backoff_s=[]), "ingest.login.backoff_s", "at least 1"),
        (lambda d: d["ingest"]["login"].update(max_attempts=0), "ingest.login.max_attempts", "greater than or equal"),
        (lambda d: d["cameras"][1].update(login={"backoff_s": [0]}), "cameras[1].login.backoff_s", "> 0"),
    ],
)
def test_bad_config_names_key_path_and_reason(mutate, path, reason):
    data = demo_data()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_settings(data, "test.yaml")
    text = str(info.value)
    assert f"{path}:" in text, text
    assert reason in text, text


def test_yaml_syntax_error_names_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("users:\n  - username: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: not valid YAML"):
        load_settings(bad)


def test_missing_file_and_unset_env(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.yaml")
    cfg = tmp_path / "env.yaml"
    cfg.write_text("site_name: ${CITYWALL_TEST_UNSET_VAR}\n", encoding="utf-8")
    monkeypatch.delenv("CITYWALL_TEST_UNSET_VAR", raising=False)
    with pytest.raises(ConfigError, match="CITYWALL_TEST_UNSET_VAR.*not set"):
        load_settings(cfg)


def test_redact_url_hides_password_only():
    assert redact_url("rtsp://admin:s3cr3t@10.0.0.5:554/Streaming/101") == "rtsp://admin:***@10.0.0.5:554/Streaming/101"
    assert redact_url("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url("rtsp://cam.local/x") == "rtsp://cam.local/x"


@pytest.mark.slow
def test_check_config_cli_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "citywall.cli", "check-config", str(DEMO)],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "4 cameras" in ok.stdout
    data = demo_data()
    data["cameras"][0]["zones"][0]["min_area"] = 5
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "citywall.cli", "check-config", str(bad)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2
    assert "cameras[0].zones[0].min_area" in res.stderr


@pytest.mark.slow
def test_check_config_also_checks_the_case_files(tmp_path):
    grid = tmp_path / "grid.geojson"
    grid.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature"}]}', encoding="utf-8")
    data = demo_data()
    data["cases"] = {"grid_file": str(grid)}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "citywall.cli", "check-config", str(cfg)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2
    assert str(grid) in res.stderr and "features[0]" in res.stderr, res.stderr
