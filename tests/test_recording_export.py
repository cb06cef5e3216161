"""Exports written to a file on disk (bounded memory whatever the length) and the export of a case's cameras as one
ZIP, against two real recorded demo cameras, a real SQLite case store and the real wall server."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
import tracemalloc
import zipfile

import pytest

from cases.audit import AuditQuery
from recording.recorder import SegmentRow, segment_path
from recording.service import RecordingService
from tests import signin
from tests.fixtures.cases import insert_case
from tests.fixtures.wall import PASSWORD, wall_client
from tests.test_recording import decode, rec_settings
from tests.waiting import eventually
from video_ingest.service import IngestService
from wall.app import create_app

pytestmark = pytest.mark.timeout(240)
SCENES = {"cam-v": "vending", "cam-b": "bin_overflow"}


def two_camera_settings(tmp_path):
    base = rec_settings(tmp_path)
    cams = [base.cameras[0].model_copy(update={"id": cid, "name": f"{scene} 路口"}) for cid, scene in SCENES.items()]
    return base.model_copy(update={"cameras": cams})


def _case_at(store, reported_at: float) -> str:
    """A case at cam-v reported at ``reported_at`` (the fixture's case, moved in time)."""
    case_id = insert_case(store, 1, camera="cam-v")
    with store.transaction() as tx:
        data = json.loads(tx.execute("SELECT data FROM cases WHERE id = ?", (case_id,)).fetchone()[0])
        data["reported_at"] = reported_at
        tx.execute("UPDATE cases SET reported_at = ?, data = ? WHERE id = ?",
                   (reported_at, json.dumps(data, ensure_ascii=False), case_id))
    return case_id


async def test_exports_stream_from_disk_and_a_case_exports_its_cameras_as_one_zip(
        tmp_path, bus, store, evidence_dir, demo_rtsp):  # noqa: F811
    settings = two_camera_settings(tmp_path)
    ingest = IngestService({cid: demo_rtsp.url(scene) for cid, scene in SCENES.items()}, sample_keyframes=False,
                           open_timeout_s=10, read_timeout_s=10)
    await ingest.start()
    service = RecordingService(settings, store, list(SCENES))
    await service.start(ingest.subscribe_packets)
    try:
        began = time.time()

        async def recorded():
            rows = [await asyncio.to_thread(service.index.segments, cid, began - 60, time.time()) for cid in SCENES]
            return all(sum(r.end_at - r.start_at for r in rs if r.complete) >= 12.0 for rs in rows)
        await eventually(recorded, timeout=120, what="12 s recorded on both cameras")
        start = max(service.index.segments(cid, began - 60, time.time())[0].start_at for cid in SCENES)
        case_id = _case_at(store, start + 5)
        app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir,
                         recordings=service.library)
        async with wall_client(app) as client:
            url = f"/api/cases/{case_id}/recordings"
            assert (await signin.login(client, "duty", PASSWORD)).status == 200
            assert (await client.get(url)).status == 403
            assert (await signin.login(client, "monitor", PASSWORD)).status == 200
            resp = await client.get(url, params={"cameras": "cam-b,cam-nowhere"})
            assert resp.status == 400 and (await resp.json())["error"].startswith("cameras: unknown camera")
            assert (await client.get("/api/cases/case-none/recordings")).status == 404

            # the case's camera and a neighbour, around the report (case_pre_s before to case_post_s after)
            resp = await client.get(url, params={"cameras": "cam-b"})
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"] == "application/zip"
            assert resp.headers["X-Recording-Cameras"] == "cam-v,cam-b"
            blob = await resp.read()
            assert int(resp.headers["Content-Length"]) == len(blob)
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                names = sorted(zf.namelist())
                assert names == ["CW20260311-0001-cam-b.mp4", "CW20260311-0001-cam-v.mp4", "manifest.json"]
                manifest = json.loads(zf.read("manifest.json"))
                assert manifest["case_no"] == "CW20260311-0001" and manifest["since"] == pytest.approx(start - 295)
                for cam in manifest["cameras"]:
                    frames, duration = decode(zf.read(cam["file"]))
                    assert frames == cam["frames"] and frames >= 12 * 25, cam
                    assert duration == pytest.approx(cam["seconds"], abs=0.05)
            entries, _ = store.search_audit(AuditQuery(action="recording.export_case"))
            assert [e.outcome for e in entries] == [200, 404, 400, 403]
            assert entries[0].details["cameras"] == ["cam-v", "cam-b"]

            # one camera's export, streamed from its file: the same frames as the recording
            resp = await client.get("/api/recordings/cam-b/export",
                                    params={"since": f"{start + 1}", "until": f"{start + 9}"})
            assert resp.status == 200 and int(resp.headers["Content-Length"]) > 100_000
            frames, duration = decode(await resp.read())
            assert 8.0 <= duration <= 9.1 and frames == round(duration * 25)
            assert list(service.library.export_dir.iterdir()) == []  # nameless files, gone when sent
    finally:
        await ingest.stop()
        await service.stop()

    # Bounded memory: two minutes (the segments copied forward) exported through Python allocations far smaller
    # than the file.
    index = service.index
    done = [r for r in index.segments("cam-v", 0, time.time() + 60) if r.complete]
    t = done[-1].end_at
    first = done[0].start_at
    while t < first + 120:
        for r in done:
            path = segment_path("cam-v", t)
            shutil.copyfile(index.root / r.path, index.root / path)
            index.closed(SegmentRow("cam-v", path, t, t + (r.end_at - r.start_at), r.bytes, r.codec))
            t += r.end_at - r.start_at
    service.library.max_export_s = 200
    tracemalloc.start()
    try:
        plan, file = service.library.export_file("cam-v", first, first + 120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with file:
        data = file.read()
    assert plan.size == len(data) > 20_000_000
    assert peak < 6_000_000 < plan.size / 4, (peak, plan.size)  # one segment's bytes at a time, not the file
    frames, duration = decode(data)
    assert frames == plan.frames and duration == pytest.approx(plan.seconds, abs=0.05)


async def test_the_case_page_downloads_the_case_evidence_zip(
        page, tmp_path, bus, store, evidence_dir, demo_rtsp):  # noqa: F811
    """Chromium: 下载案件证据包 (ZIP) on the case page for a role that may export (monitor), none for the watch
    officer; the downloaded file is the case's ZIP."""
    settings = rec_settings(tmp_path)
    ingest = IngestService({"cam-v": demo_rtsp.url("vending")}, sample_keyframes=False, open_timeout_s=10,
                           read_timeout_s=10)
    await ingest.start()
    service = RecordingService(settings, store, ["cam-v"])
    await service.start(ingest.subscribe_packets)
    try:
        began = time.time()

        async def recorded():
            rows = await asyncio.to_thread(service.index.segments, "cam-v", began - 60, time.time())
            return sum(r.end_at - r.start_at for r in rows if r.complete) >= 8.0
        await eventually(recorded, timeout=120, what="8 s recorded")
        start = service.index.segments("cam-v", began - 60, time.time())[0].start_at
        case_id = _case_at(store, start + 4)
        app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir,
                         recordings=service.library)
        async with wall_client(app) as client:
            base = str(client.make_url("")).rstrip("/")
            await signin.sign_in_page(page, base, f"/cases/{case_id}", "duty", PASSWORD)
            await page.locator("body[data-ready='1']").wait_for(timeout=20_000)
            assert await page.locator("#export-zip").is_hidden()        # a watch officer may not export
            await page.context.clear_cookies()
            await signin.sign_in_page(page, base, f"/cases/{case_id}", "monitor", PASSWORD)
            button = page.locator("#export-zip:not([hidden])")
            await button.wait_for(timeout=20_000)
            assert "下载案件证据包 (ZIP)" in await button.text_content()
            async with page.expect_download(timeout=60_000) as info:
                await button.click()
            download = await info.value
            assert download.suggested_filename == "CW20260311-0001-recordings.zip"
            saved = tmp_path / "saved.zip"
            await download.save_as(saved)
            with zipfile.ZipFile(saved) as zf:
                assert sorted(zf.namelist()) == ["CW20260311-0001-cam-v.mp4", "manifest.json"]
                frames, _ = decode(zf.read("CW20260311-0001-cam-v.mp4"))
                assert frames >= 8 * 25
            await page.wait_for_function(
                "document.getElementById('message').textContent.startsWith('已下载案件证据包')", timeout=10_000)
    finally:
        await ingest.stop()
        await service.stop()
