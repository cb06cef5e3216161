"""Site model versions (learning.registry): promotion keeps the previous version, 回退 walks back through the
history, bad requests are refused with the reason; the detection worker's switch (learning.switch) keeps what runs
when a promoted file is not a usable model, and hands the base back on a rollback to none."""

from __future__ import annotations

import json

import pytest

from learning.classes import class_map
from learning.registry import ModelRegistry, RegistryError
from learning.switch import ModelSwitch

NOW = 1_773_198_000.0


def _version(registry: ModelRegistry, now: float, onnx: bytes = b"not a model") -> str:
    path = registry.new_version(now)
    (path / "model.onnx").write_bytes(onnx)
    (path / "card.json").write_text(json.dumps({"version": path.name, "class_map": class_map(),
                                                "classes": [{"id": "vendor_stall"}]}), encoding="utf-8")
    return path.name


def test_promote_and_roll_back_through_the_history(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    a, b, c = (_version(registry, NOW + i) for i in range(3))
    assert [v[:5] for v in registry.versions()] == ["v0001", "v0002", "v0003"]
    assert registry.state().active is None
    registry.promote(a, by="admin", now=NOW)
    registry.promote(b, by="admin", now=NOW + 1)
    registry.promote(c, by="lead", now=NOW + 2)
    with pytest.raises(RegistryError, match="live already"):
        registry.promote(c, by="admin", now=NOW + 3)
    assert registry.rollback(by="admin", now=NOW + 4).active == b
    assert registry.rollback(by="admin", now=NOW + 5).active == a
    assert registry.rollback(by="admin", now=NOW + 6).active is None
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback(by="admin", now=NOW + 7)
    history = registry.state().history
    assert [(h["action"], h["version"], h["previous"]) for h in history] == [
        ("promote", a, None), ("promote", b, a), ("promote", c, b), ("rollback", b, c), ("rollback", a, b),
        ("rollback", None, a)]
    for v in (a, b, c):  # every version is kept on disk
        assert (registry.root / v / "model.onnx").is_file()
    with pytest.raises(RegistryError, match="unknown model version 'v9999"):
        registry.promote("v9999-20260101-000000", by="admin", now=NOW)
    with pytest.raises(RegistryError, match="unknown model version"):
        registry.card("../../etc")


def test_a_version_without_its_card_is_not_offered(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    half = registry.new_version(NOW)  # a training that died: no card, no model
    assert registry.versions() == [] and half.is_dir()


def test_switch_keeps_the_running_backend_when_the_promoted_file_is_unusable(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    bad = _version(registry, NOW)
    base = object()
    handed: list[object] = []
    switch = ModelSwitch(registry, base, handed.append)
    assert switch.poll() is False and handed == []  # nothing promoted: the worker keeps its base
    registry.promote(bad, by="admin", now=NOW)
    assert switch.poll() is False and switch.errors == 1 and handed == []
    assert switch.poll() is False and switch.errors == 1  # the same state is not retried every poll
    registry.rollback(by="admin", now=NOW + 1)
    assert switch.poll() is False and switch.live is None  # already running the base
