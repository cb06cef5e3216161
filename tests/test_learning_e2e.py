"""The learning loop end to end on demo frames with known boxes (demo.labelled), through the real commands, the real
wall server (admin API), a real case store and ONNX Runtime: reviewers' labels → ``citywall dataset export`` →
``citywall model train`` (tiny, CPU, a separate niced process) → ONNX loads → shadow run on camera frames →
``citywall model compare`` → promotion on the admin API → the detection worker's backend is swapped without a
restart and its detections carry the new classes' roles → 回退 gives the model-free path back."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time

import aiohttp
import cv2
import numpy as np
import pytest
import yaml

from cases.audit import AuditQuery
from cases.store import CaseStore
from citywall.cli import main as citywall
from config import load_settings
from demo.backdrop import StreetLayout, paint_street
from demo.labelled import labelled_frame
from learning import learning_root
from learning.classes import class_map
from learning.labels import LabelStore, parse_boxes
from learning.registry import ModelRegistry
from learning.shadow import ShadowPlan, ShadowRunner, ShadowStore
from learning.switch import ModelSwitch
from tests import signin
from tests.fixtures.wall import PASSWORD, settings_with_roles, wall_client
from video_ingest.frames import Frame
from wall import state
from wall.app import create_app

# Looked up, not imported: importing ultralytics patches PIL.Image.open for the whole test process (the training
# itself runs in its own process).
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("ultralytics") is None:
    pytest.skip("the learning extra (torch, ultralytics) is not installed", allow_module_level=True)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
T0 = 1_773_198_000.0


def _frames(n: int, seed: int):
    rng = np.random.default_rng(seed)
    street = paint_street(StreetLayout(building_bottom=260, kerb_y=None), np.random.default_rng(seed))
    for _ in range(n):
        objects = list(rng.choice(["bike", "vendor_stall", "person"], size=int(rng.integers(1, 4))))
        yield labelled_frame(street, rng, objects)


async def test_labels_to_a_promoted_site_model(tmp_path, bus):
    settings = settings_with_roles(tmp_path)
    # Labels dated March 2026: keep them whatever day the test runs (the export applies the retention rule).
    settings = settings.model_copy(update={"learning": settings.learning.model_copy(update={"retention_days": 3650})})
    config = tmp_path / "citywall.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    settings = load_settings(config)
    root = learning_root(settings)
    evidence = settings.storage.evidence_dir
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    store = CaseStore.open(settings.storage.resolved_cases_url())  # the one the commands open
    labels = LabelStore(store, root)
    # Reviewers' labels: 24 decided alarms on two cameras over two days (what PUT /api/review/{id}/labels stores;
    # tests/test_web_review_labels.py drives the console itself).
    for i, (image, boxes) in enumerate(_frames(24, seed=3)):
        camera = ("cam-a", "cam-b")[i % 2]
        rel = f"2026-03-1{1 + i % 2}/{camera}/alarm-{i}-clean.jpg"
        (evidence / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(evidence / rel), image)
        stall = [b for c, b in boxes if c == "vendor_stall"]
        alarm = {"alarm_id": f"alarm-{i}", "camera_id": camera, "at": T0 + (i % 2) * 86_400 + i * 60,
                 "snapshot_clean": rel, "event": "vending", "boxes": [list(b) for b in (stall or [boxes[0][1]])]}
        labels.save(alarm=alarm, decision="confirm" if stall else "reject", decided_by="monitor",
                    decided_at=alarm["at"] + 30, boxes=parse_boxes([{"class": c, "box": list(b)} for c, b in boxes]),
                    evidence_dir=evidence)
    store.close()  # the commands open the store themselves

    out = tmp_path / "dataset"
    assert citywall(["dataset", "export", "--config", str(config), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"]["train"] > 0 and summary["images"]["val"] > 0
    assert summary["groups"]["val"] and not set(summary["groups"]["val"]) & set(summary["groups"]["train"])

    started = time.monotonic()
    assert citywall(["model", "train", "--config", str(config), "--dataset", str(out), "--epochs", "2",
                     "--imgsz", "96", "--batch", "8", "--set", "warmup_epochs=0", "--set", "optimizer=AdamW"]) == 0
    trained_s = time.monotonic() - started
    registry = ModelRegistry(root / "models")
    [version] = registry.versions()
    card = registry.card(version)
    assert [c["id"] for c in card["classes"]][:3] == ["vendor_stall", "goods", "person"]
    assert card["class_map"] == class_map() and set(card["metrics_val"]) <= set(class_map()) | {"other"}
    assert card["command"].startswith("citywall model train") and card["onnx"]["input_size"] == 96
    assert card["training"]["overrides"] == {"warmup_epochs": 0.0, "optimizer": "AdamW"}
    assert (registry.root / version / "card.md").read_text().startswith("# 模型卡")
    print(f"tiny training: {trained_s:.1f} s wall, {card['training']['seconds']} s in ultralytics")

    # Shadow: the candidate on camera frames, one per camera per interval, stored; a full queue drops, counted.
    cases = CaseStore.open(settings.storage.resolved_cases_url())
    try:
        now = [T0 + 3 * 86_400]
        ShadowPlan(version=version, started_at=now[0], until=now[0] + 60, interval_s=5, by="admin").write(
            registry.root)
        frames = {cam: Frame(cam, image, now[0], 0.0, 1) for cam, (image, _) in
                  zip(("cam-a", "cam-b", "cam-c"), _frames(3, seed=11), strict=True)}
        runner = ShadowRunner(registry, ShadowStore(cases), frames.get, lambda: list(frames), queue=2,
                              clock=lambda: now[0])
        plan = ShadowPlan.read(registry.root)
        runner.sample(plan, now[0])
        assert (runner.sampled, runner.dropped, runner.queue.qsize()) == (3, 1, 2)
        while not runner.queue.empty():
            cam, frame = runner.queue.get_nowait()
            await asyncio.to_thread(runner.analyse, version, cam, frame)
        rows = ShadowStore(cases).window(version, now[0] - 1, now[0] + 1)
        assert sorted(r.camera_id for r in rows) == ["cam-a", "cam-b"]
        runner.sample(plan, now[0] + 1)  # within the interval: nothing new
        assert runner.sampled == 3
    finally:
        cases.close()

    assert citywall(["model", "compare", version, "--config", str(config), "--since", "2026-03-11",
                     "--until", "2026-03-14", "--confidence", "0.01"]) == 0
    report = registry.card(version)["compare"]
    assert report["split"]["candidate"]["images"] == summary["images"]["val"]
    assert report["reviews"]["alarms"] == 24 and report["shadow"]["frames"] == 2
    confirmed = sum(1 for _, boxes in _frames(24, seed=3) if any(c == "vendor_stall" for c, _ in boxes))
    assert report["reviews"]["confirmed"] == confirmed

    # The detection side: the worker's backend as citywall up wires it (no model configured → None).
    worker = type("Worker", (), {"backend": None})()
    switch = ModelSwitch(registry, None, lambda b: setattr(worker, "backend", b), confidence=0.001)
    assert switch.poll() is False and worker.backend is None
    app = create_app(settings, bus=bus, cases=CaseStore.open(settings.storage.resolved_cases_url()), live=None,
                     evidence_dir=evidence)
    async with wall_client(app) as client:
        base = str(client.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(base_url=base + "/", cookie_jar=aiohttp.CookieJar(unsafe=True)) as admin:
            assert (await signin.login(admin, "admin", PASSWORD)).status == 200
            listing = await (await admin.get("/api/admin/models")).json()
            assert listing["active"] is None and listing["versions"][0]["compare"]["reviews"]["alarms"] == 24
            resp = await admin.post(f"/api/admin/models/{version}/promote", json={})
            assert resp.status == 200, await resp.text()
            assert switch.poll() is True and worker.backend.name == f"site-{version}"
            image = next(iter(_frames(1, seed=5)))[0]
            dets = worker.backend.detect([image])[0]
            assert len(dets) > 0 and set(dets.data["role"]) <= set(class_map().values())
            resp = await admin.post("/api/admin/models/rollback", json={})
            assert resp.status == 200 and (await resp.json())["active"] is None
            assert switch.poll() is True and worker.backend is None
            resp = await admin.post("/api/admin/models/rollback", json={})
            assert resp.status == 409
            async with aiohttp.ClientSession(base_url=base + "/", cookie_jar=aiohttp.CookieJar(unsafe=True)) as m:
                assert (await signin.login(m, "monitor", PASSWORD)).status == 200
                assert (await m.post(f"/api/admin/models/{version}/promote", json={})).status == 403
    # Promotion and 回退 are audited (who, what, when; the monitor's refusal too).
    audit = app[state.CASES]
    done = {a: [(e.actor, e.outcome) for e in audit.search_audit(AuditQuery(action=a))[0]]
            for a in ("model.promote", "model.rollback")}
    assert done["model.promote"] == [("monitor", 403), ("admin", 200)] or \
        sorted(done["model.promote"]) == [("admin", 200), ("monitor", 403)]
    assert sorted(done["model.rollback"]) == [("admin", 200), ("admin", 409)]
    audit.close()
