"""config.fingerprint: what workers of one cluster must agree on."""

from __future__ import annotations

from config import load_settings
from config.fingerprint import fingerprint


def test_the_fingerprint_names_each_camera_and_ignores_local_settings() -> None:
    settings = load_settings("config/demo.yaml")
    fp = fingerprint(settings)
    assert {k for k in fp if k.startswith("cameras.")} == {f"cameras.{c.id}" for c in settings.cameras}
    local = settings.model_copy(update={"wall": settings.wall.model_copy(update={"port": 9999})})
    assert fingerprint(local) == fp
    cams = [c.model_copy(update={"name": "改名"}) if c.id == "cam-bin" else c for c in settings.cameras]
    changed = fingerprint(settings.model_copy(update={"cameras": cams}))
    assert [k for k in fp if fp[k] != changed[k]] == ["cameras.cam-bin"]
