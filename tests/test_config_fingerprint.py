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


def test_the_fingerprint_is_keyed_by_the_cluster_token() -> None:
    import hashlib
    import json

    settings = load_settings("config/demo.yaml")
    a = settings.model_copy(update={"cluster": settings.cluster.model_copy(update={"token": "t" * 32})})
    b = settings.model_copy(update={"cluster": settings.cluster.model_copy(update={"token": "u" * 32})})
    fa, fb = fingerprint(a), fingerprint(b)
    assert fa.keys() == fb.keys() and all(fa[k] != fb[k] for k in fa)  # without the token no guess can be checked
    cam = a.model_dump(mode="json")["cameras"][0]
    plain = hashlib.sha256(json.dumps(cam, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    assert plain.hexdigest()[:16] not in fa.values()  # not the old unsalted digest
