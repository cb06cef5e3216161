"""The running configuration's pure core (old settings, new settings → actions; the key-path diff), the password
rules, and the overlay store: persisted, reloaded at start, a refused change leaves everything as it was."""

from __future__ import annotations

import os
import stat

import pytest

from admin.changes import diff_lines, plan_changes
from admin.passwords import password_problem
from admin.running import OVERLAY_NAME, RunningConfig, load_running, settings_data
from config import ConfigError, parse_settings
from tests.fixtures.wall import make_settings


def _with(settings, **sections):
    return parse_settings({**settings_data(settings), **sections})


def _cams(settings):
    return [c.model_dump(mode="json") for c in settings.cameras]


NEW_CAM = {"id": "cam-c", "name": "新摄像机", "url": "rtsp://u:pw@127.0.0.1:2/c",
           "position": {"lon": 120.1, "lat": 30.2}}


@pytest.mark.parametrize("edit, expect", [
    (lambda cams: cams + [NEW_CAM], {"cameras_added": ["cam-c"]}),
    (lambda cams: cams[:1], {"cameras_removed": ["cam-b"]}),
    (lambda cams: [cams[0], {**cams[1], "enabled": False}], {"cameras_removed": ["cam-b"]}),
    (lambda cams: [{**cams[0], "url": "rtsp://127.0.0.1:3/a"}, cams[1]], {"cameras_reconnected": ["cam-a"]}),
    (lambda cams: [{**cams[0], "transport": "udp"}, cams[1]], {"cameras_reconnected": ["cam-a"]}),
    (lambda cams: [{**cams[0], "zones": []}, cams[1]], {"cameras_reanalysed": ["cam-a"]}),
    (lambda cams: [cams[0], {**cams[1], "position": {"lon": 121, "lat": 31}}], {"cameras_reanalysed": ["cam-b"]}),
    (lambda cams: cams, {}),
])
def test_camera_changes_become_ingest_and_detection_actions(tmp_path, edit, expect):
    old = make_settings(tmp_path)
    new = _with(old, cameras=edit(_cams(old)))
    got = plan_changes(old, new).to_dict()
    for key in ("cameras_added", "cameras_removed", "cameras_reconnected", "cameras_reanalysed"):
        assert got[key] == expect.get(key, []), key
    assert got["users_ended"] == [] and got["restart_needed"] == []


def test_disabled_removed_or_demoted_users_have_their_sessions_ended(tmp_path):
    old = make_settings(tmp_path)
    users = [u.model_dump(mode="json") for u in old.users]
    disabled = plan_changes(old, _with(old, users=[users[0], {**users[1], "enabled": False}]))
    assert disabled.users_ended == ["duty"] and disabled.users_changed
    demoted = plan_changes(old, _with(old, users=[users[0], {**users[1], "role": "monitor"}]))
    assert demoted.users_ended == ["duty"]
    renamed = plan_changes(old, _with(old, users=[users[0], {**users[1], "display_name": "新名字"}]))
    assert renamed.users_ended == [] and renamed.users_changed
    removed = plan_changes(old, _with(old, users=users[:1]))
    assert removed.users_ended == ["duty"]


def test_other_sections_are_reported_as_needing_a_restart(tmp_path):
    old = make_settings(tmp_path)
    new = _with(old, site_name="别的中心")
    assert plan_changes(old, new).restart_needed == ["site_name"]


def test_diff_names_key_paths_by_id_and_masks_secrets():
    old = {"cameras": [{"id": "a", "url": "rtsp://u:secret@h/a", "name": "甲"}, {"id": "b", "name": "乙"}],
           "users": [{"username": "x", "password_hash": "scrypt$1"}]}
    new = {"cameras": [{"id": "b", "name": "乙"}, {"id": "c", "name": "丙"}],
           "users": [{"username": "x", "password_hash": "scrypt$2"}]}
    lines = {d["path"]: d for d in diff_lines(old, new)}
    assert set(lines) == {"cameras[a].id", "cameras[a].url", "cameras[a].name", "cameras[c].id", "cameras[c].name",
                          "users[x].password_hash"}
    assert lines["cameras[a].url"] == {"path": "cameras[a].url", "old": "rtsp://u:***@h/a"}
    assert lines["users[x].password_hash"] == {"path": "users[x].password_hash", "old": "***", "new": "***"}
    assert "secret" not in str(lines)


@pytest.mark.parametrize("username, password, ok", [
    ("duty", "short", False),
    ("duty", "duty-on-the-wall", False),
    ("duty", "1234567890", False),
    ("duty", "aaaaaaaaaaaa", False),
    ("duty", "风雨桥-East-7", True),
])
def test_password_rules(username, password, ok):
    problem = password_problem(username, password)
    assert (problem is None) is ok, problem


async def test_a_change_is_persisted_and_kept_by_a_restart(tmp_path):
    base = make_settings(tmp_path)
    running = RunningConfig(base)
    outcome = await running.change({"cameras": _cams(base) + [NEW_CAM]}, actor="admin")
    assert outcome.change.cameras_added == ["cam-c"] and not outcome.errors
    path = base.storage.data_dir / OVERLAY_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    restarted = load_running(make_settings(tmp_path))
    assert [c.id for c in restarted.cameras] == ["cam-a", "cam-b", "cam-c"]
    assert restarted.camera("cam-c").url == NEW_CAM["url"]


async def test_an_invalid_change_is_refused_naming_the_field_and_changes_nothing(tmp_path):
    base = make_settings(tmp_path)
    running = RunningConfig(base)
    applied = []

    async def applier(old, new, change):
        applied.append(change)

    running.add_applier(applier)
    bad = {**NEW_CAM, "url": "http://127.0.0.1/c"}
    with pytest.raises(ConfigError) as err:
        await running.change({"cameras": _cams(base) + [bad]}, actor="admin")
    assert err.value.problems[0][0] == "cameras[2].url" and "rtsp://" in err.value.problems[0][1]
    with pytest.raises(ConfigError) as err:
        await running.change({"site_name": "x"}, actor="admin")
    assert err.value.problems[0][0] == "site_name"
    assert running.settings is base and applied == [] and running.version == 0
    assert not (base.storage.data_dir / OVERLAY_NAME).exists()


async def test_export_then_import_changes_nothing_and_import_reports_restart_sections(tmp_path):
    base = make_settings(tmp_path)
    running = RunningConfig(base)
    text = running.export_yaml()
    new, restart = running.parse_import(text)
    assert new == base and restart == []
    change, diff = running.preview(new)
    assert change.empty and diff == []
    new, restart = running.parse_import(text.replace("测试中心", "别的中心"))
    assert restart == ["site_name"] and new.site_name == "测试中心"  # not applied while running
    with pytest.raises(ConfigError) as err:
        running.parse_import(text.replace("lat: 30.27", "lat: 300"))
    assert err.value.problems[0][0].startswith("cameras[0].position.lat")


def test_export_masks_every_secret_and_import_puts_the_stored_ones_back(tmp_path):
    data = settings_data(make_settings(tmp_path))
    data["cluster"] = {"token": "cluster-secret-42"}
    data["brokers"] = {"redis_url": "redis://:redispw9@127.0.0.1:6379/0"}
    base = parse_settings(data)
    running = RunningConfig(base)
    text = running.export_yaml()
    for secret in ("topsecret", "cluster-secret-42", "redispw9"):
        assert secret not in text
    assert "rtsp://viewer:***@127.0.0.1:1/a" in text and "token: '***'" in text
    new, restart = running.parse_import(text)
    assert new == base and restart == []  # masked values are the stored ones
    edited = text.replace("rtsp://viewer:***@127.0.0.1:1/a", "rtsp://viewer:newpass77@127.0.0.1:1/a")
    new, _ = running.parse_import(edited)
    assert new.camera("cam-a").url == "rtsp://viewer:newpass77@127.0.0.1:1/a"  # typed anew: kept as typed


async def test_following_the_bus_ends_when_asked(tmp_path, bus):
    import asyncio
    import time

    running = RunningConfig(make_settings(tmp_path), bus=bus)
    stop = asyncio.Event()
    task = asyncio.create_task(running.follow(stop))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 5)  # not only when the next message arrives (a process must stop on SIGTERM)
    assert time.monotonic() - started < 1.0
