"""Recording and playback (录像回放) against a real demo RTSP camera, a real SQLite case store and the real wall
server: record, the timeline, seek, 4x, export, the retention planner (pure), kill -9 repair, a full disk (a real
small tmpfs), the access rules and the settings."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import pytest

from cases.audit import AuditQuery
from cases.store import CaseStore
from config import ConfigError, parse_settings
from recording.index import RecordingIndex, spans_and_gaps
from recording.policy import CaseHold, RetentionRules, SegmentFacts, plan_deletions
from recording.recorder import SegmentRow
from recording.segment import parse_segment
from recording.service import RecordingService
from tests import signin
from tests.fixtures.cases import insert_case
from tests.fixtures.wall import PASSWORD, wall_client
from tests.fixtures.wall import PASSWORD_HASH as _HASH
from tests.waiting import eventually
from video_ingest.mp4 import fragment_is_keyframe
from video_ingest.service import IngestService
from wall.app import create_app

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[1]
DAY = 86400.0


def rec_settings(tmp_path: Path, root: Path | None = None, **recording: object):
    return parse_settings({
        "site_name": "测试中心",
        "storage": {"data_dir": str(root or tmp_path / "var")},
        "users": [{"username": u, "display_name": u, "role": r, "password_hash": _HASH}
                  for u, r in (("admin", "admin"), ("duty", "watch_officer"), ("monitor", "monitor"))],
        "cameras": [{"id": "cam-v", "name": "解放路", "url": "rtsp://127.0.0.1:1/v",
                     "position": {"lon": 120.15, "lat": 30.27}}],
        "recording": {"mode": "continuous", "segment_s": 4, **recording},
    })


async def start_recording(settings, cases, url: str) -> tuple[IngestService, RecordingService]:
    ingest = IngestService({"cam-v": url}, sample_keyframes=False, open_timeout_s=10, read_timeout_s=10)
    await ingest.start()
    service = RecordingService(settings, cases, ["cam-v"])
    await service.start(ingest.subscribe_packets)
    return ingest, service


def decode(blob: bytes) -> tuple[int, float | None]:
    """(frames decoded, container duration in s) of MP4 bytes, with PyAV."""
    with av.open(io.BytesIO(blob)) as c:
        stream = c.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else None
        return sum(1 for _ in c.decode(video=0)), duration


# ----------------------------------------------------------------------------------------------- the planner

NOW = 1_800_000_000.0
RULES = RetentionRules(default_retention_s=DAY, retention_s={"cam-long": 7 * DAY}, quota_bytes=None,
                       hold_pre_s=300, hold_post_s=300, keep_after_close_s=2 * DAY)


def seg(camera: str, start: float, length: float = 10, size: int = 100, complete: bool = True) -> SegmentFacts:
    return SegmentFacts(f"{camera}/{start:.0f}.mp4", camera, start, start + length, size, complete)


@pytest.mark.parametrize("segment, holds, deleted", [
    (seg("cam-a", NOW - 2 * DAY), [], True),                                         # past retention
    (seg("cam-a", NOW - 3600), [], False),                                           # within retention
    (seg("cam-long", NOW - 2 * DAY), [], False),                                     # the camera's own retention
    (seg("cam-a", NOW - 2 * DAY), [CaseHold("cam-a", NOW - 2 * DAY + 100)], False),  # an open case there
    (seg("cam-a", NOW - 2 * DAY), [CaseHold("cam-b", NOW - 2 * DAY + 100)], True),   # a case at another camera
    (seg("cam-a", NOW - 2 * DAY), [CaseHold("cam-a", NOW - 2 * DAY + 1000)], True),  # outside the case's window
    (seg("cam-a", NOW - 5 * DAY), [CaseHold("cam-a", NOW - 5 * DAY, NOW - DAY)], False),  # closed 1 day ago: kept
    (seg("cam-a", NOW - 5 * DAY), [CaseHold("cam-a", NOW - 5 * DAY, NOW - 3 * DAY)], True),  # closed 3 days ago
    (seg("cam-a", NOW - 2 * DAY, complete=False), [], False),                        # still being written
])
def test_planner_retention_and_case_holds(segment, holds, deleted):
    plan = plan_deletions([segment], holds, NOW, RULES)
    assert (plan.delete == [segment.path]) is deleted, plan
    assert plan.held == (1 if holds and not deleted and segment.end_at < NOW - DAY else 0)


def test_planner_quota_deletes_oldest_first_across_cameras_and_never_a_held_one():
    segs = [seg("cam-a", NOW - 500), seg("cam-b", NOW - 400), seg("cam-a", NOW - 300), seg("cam-b", NOW - 200),
            seg("cam-a", NOW - 100)]
    rules = RetentionRules(default_retention_s=DAY, quota_bytes=250, hold_pre_s=0, hold_post_s=0)
    plan = plan_deletions(list(reversed(segs)), [], NOW, rules)
    assert plan.delete == [s.path for s in segs[:3]] and plan.quota == 3 and plan.over_quota_bytes == 0
    held = plan_deletions(segs, [CaseHold("cam-a", NOW - 500)], NOW, rules)  # the oldest is evidence
    assert held.delete == [s.path for s in segs[1:4]] and held.held == 1
    only_two = plan_deletions(segs[:2], [], NOW, rules, total_bytes=500)  # candidates only, the store's total given
    assert only_two.delete == [s.path for s in segs[:2]] and only_two.over_quota_bytes == 50
    all_held = plan_deletions(segs, [CaseHold(s.camera_id, s.start_at) for s in segs], NOW, rules)
    assert all_held.delete == [] and all_held.over_quota_bytes == 250 and all_held.held == 5


def test_planner_frees_what_a_full_disk_asks_for():
    segs = [seg("cam-a", NOW - 300, size=100), seg("cam-a", NOW - 200, size=100), seg("cam-a", NOW - 100, size=100),
            seg("cam-a", NOW - 10, size=100, complete=False)]
    plan = plan_deletions(segs, [], NOW, RULES, free_bytes=150)
    assert plan.delete == [segs[0].path, segs[1].path] and plan.disk_full == 2 and plan.short_bytes == 0
    plan = plan_deletions(segs, [], NOW, RULES, free_bytes=10_000)
    assert len(plan.delete) == 3 and plan.short_bytes == 10_000 - 300  # never the segment being written


def test_spans_merge_touching_segments_and_gaps_fill_the_rest():
    rows = [SegmentRow("c", "a", 100, 110, 1, "h264"), SegmentRow("c", "b", 110.2, 120, 1, "h264"),
            SegmentRow("c", "c", 150, 160, 1, "h264")]
    spans, gaps = spans_and_gaps(rows, 90, 200)
    assert spans == [[100, 120], [150, 160]]
    assert gaps == [[90, 100], [120, 150], [160, 200]]


# ----------------------------------------------------------------------------------- segments: H.264 and H.265

@pytest.mark.parametrize("codec, params", [("h264", "bframes=2:b-pyramid=none"), ("hevc", "bframes=2")])
def test_segments_round_trip_with_b_frames_and_a_cut_tail(codec, params):
    from fractions import Fraction

    from recording.playback import init_facts
    from recording.segment import SegmentMuxer
    from tests.test_ingest_h26x_fmp4 import encode
    from video_ingest import fmp4
    from video_ingest.fanout import AccessUnit
    from video_ingest.h26x import length_prefixed

    clip = encode(codec, 320, 240, n=36, params=params, options={"bf": "2"} if codec == "h264" else None)
    mux = SegmentMuxer(codec=codec, width=320, height=240, config=clip.config(), time_base=Fraction(1, 90000))
    parts = [mux.init]
    for au, pts, key in zip(clip.aus, clip.pts, clip.keyframes, strict=False):
        fragment = mux.feed(AccessUnit(length_prefixed(au), pts, key, Fraction(1, 90000)))
        if fragment is not None:
            parts.append(fragment)
    parts.append(mux.flush())
    blob = b"".join(parts)
    seg = parse_segment(blob)
    assert seg.codec == codec and seg.timescale == 90000 and seg.valid_bytes == len(blob)
    assert len(seg.frames) == 36 and seg.frames[0].keyframe and seg.keyframes == 6
    assert any(f.composition_offset for f in seg.frames)  # B-frames: presentation after decode
    assert seg.duration_s == pytest.approx(36 / 25, abs=0.05)
    decoded, _ = decode(blob)
    assert decoded == 36
    # the export path: a plain MP4 from the parsed frames decodes the same
    facts = init_facts(seg.init)
    assert (facts.codec, facts.width, facts.height) == (codec, 320, 240)
    plain = fmp4.mp4_file(codec=codec, width=320, height=240, config=facts.config, samples=[
        fmp4.Sample(seg.sample(blob, f), f.duration, f.keyframe, f.composition_offset) for f in seg.frames])
    assert decode(plain)[0] == 36
    # a file cut inside its last fragment: that fragment is left out, everything before is kept
    cut = parse_segment(blob[:-20])
    assert len(cut.frames) == 35 and cut.valid_bytes == len(blob) - len(parts[-1])


def test_index_on_sqlite_and_postgresql(cases_url, tmp_path):
    """Rows on open and close, the range query, deletion, holds and markers, repair: the same on both stores."""
    cases = CaseStore.open(cases_url)
    try:
        index = RecordingIndex(cases, tmp_path / "rec")
        for i in range(5):
            start = NOW + 10 * i
            row = SegmentRow("cam-a", f"cam-a/d/{int(start * 1000)}.mp4", start, start, 0, "hevc", complete=False)
            index.opened(row)
            index.opened(row)  # twice: kept once
            if i < 4:
                index.closed(SegmentRow("cam-a", row.path, start, start + 10, 1000 + i, "hevc"))
        index.opened(SegmentRow("cam-b", "cam-b/d/1.mp4", NOW, NOW, 0, "h264", complete=False))
        index.closed(SegmentRow("cam-b", "cam-b/d/1.mp4", NOW, NOW, 0, "h264"))  # nothing written: row removed
        rows = index.segments("cam-a", NOW + 15, NOW + 35)
        assert [r.start_at for r in rows] == [NOW + 10, NOW + 20, NOW + 30] and rows[0].bytes == 1001
        assert [r.complete for r in index.segments("cam-a", NOW + 45, NOW + 50)] == [False]
        assert index.total_bytes() == 1000 + 1001 + 1002 + 1003
        assert [r.start_at for r in index.following("cam-a", NOW + 20, limit=2)] == [NOW + 30, NOW + 40]
        assert index.segments("cam-b", 0, NOW + 100) == []
        insert_case(cases, 1, camera="cam-a")
        assert [(h.camera_id, h.closed_at) for h in index.case_holds()] == [("cam-a", None)]
        marks = index.markers("cam-a", 1_773_198_000, 1_773_198_100)
        assert [m["case_no"] for m in marks] == ["CW20260311-0001"]
        assert index.delete([rows[0].path]) == 0  # no file on disk: the row goes all the same
        assert len(index.all_facts()) == 4
        report = index.repair()  # no files at all: every row is stale
        assert report.removed_rows == 4 and index.all_facts() == []
    finally:
        cases.close()


def _units(codec: str = "h264", n: int = 60):
    """(StreamInfo, [(AccessUnit, arrived offset s)]) of a small encoded stream (a keyframe every 6 frames)."""
    from fractions import Fraction

    from tests.test_ingest_h26x_fmp4 import encode
    from video_ingest.fanout import AccessUnit, StreamInfo
    from video_ingest.h26x import length_prefixed

    clip = encode(codec, 320, 240, n=n, params="bframes=0")
    tb = Fraction(1, 90000)
    info = StreamInfo("cam-a", 1, codec, 320, 240, tb, clip.config(), NOW)
    return info, [(AccessUnit(length_prefixed(au), pts, key, tb), pts / 90000)
                  for au, pts, key in zip(clip.aus, clip.pts, clip.keyframes, strict=False)]


def test_recorder_rolls_at_keyframes_and_a_timestamp_jump_is_a_gap(tmp_path, store):  # noqa: F811
    from recording.recorder import CameraPolicy, CameraRecorder, SegmentWriter
    from video_ingest.fanout import AccessUnit

    index = RecordingIndex(store, tmp_path / "rec")
    writer = SegmentWriter(index.root, index)
    writer.start()
    recorder = CameraRecorder("cam-a", writer, CameraPolicy(segment_s=0.5))
    info, units = _units()
    recorder.stream_started(info)
    for unit, offset in units:  # 2.4 s, a keyframe every 0.24 s: rolls at the keyframe at 0.72 s, 1.44 s, 2.16 s
        recorder.packet(unit, NOW + offset)
    for unit, offset in units[:30]:  # the camera's clock jumps 100 s ahead; arrival goes on
        recorder.packet(AccessUnit(unit.data, unit.pts + 9_000_000, unit.is_keyframe, unit.time_base),
                        NOW + 2.4 + offset)
    recorder.stream_ended("test over")
    writer.stop()
    rows = index.segments("cam-a", 0, NOW + 100)
    assert [round(r.start_at - NOW, 2) for r in rows] == [0.0, 0.72, 1.44, 2.16, 2.4, 3.12]
    assert recorder.gaps == 1 and recorder.dropped == 0 and all(r.complete for r in rows)
    spans, _ = spans_and_gaps(rows, NOW, NOW + 3.6)
    assert spans == [[NOW, pytest.approx(NOW + 3.6)]]  # the jump ends a segment; arrival time has no hole
    frames = [parse_segment((index.root / r.path).read_bytes()).frames for r in rows]
    assert [len(f) for f in frames] == [18, 18, 18, 6, 18, 12] and all(f[0].keyframe for f in frames)


def test_a_full_writer_queue_drops_to_the_next_keyframe_and_counts_it(tmp_path, store):  # noqa: F811
    from recording.recorder import CameraPolicy, CameraRecorder, SegmentWriter

    index = RecordingIndex(store, tmp_path / "rec")
    writer = SegmentWriter(index.root, index, queue_size=16)  # not started yet: nothing drains the queue
    recorder = CameraRecorder("cam-a", writer, CameraPolicy(segment_s=60))
    info, units = _units(n=240)
    recorder.stream_started(info)
    for unit, offset in units:
        recorder.packet(unit, NOW + offset)
    assert recorder.dropped > 0 and recorder.gaps >= 1
    writer.start()
    recorder.stream_ended("test over")
    writer.stop()
    for row in index.segments("cam-a", 0, NOW + 100):
        data = (index.root / row.path).read_bytes()
        seg = parse_segment(data)
        assert seg.valid_bytes == len(data) and seg.frames[0].keyframe


def test_alarm_mode_keeps_whole_gops_of_pre_s_and_records_from_them(tmp_path, store):  # noqa: F811
    from recording.recorder import CameraPolicy, CameraRecorder, SegmentWriter

    index = RecordingIndex(store, tmp_path / "rec")
    writer = SegmentWriter(index.root, index)
    writer.start()
    recorder = CameraRecorder("cam-a", writer, CameraPolicy(mode="alarms", pre_s=0.5, post_s=0.3))
    info, units = _units(n=120)  # 4.8 s, a keyframe every 0.24 s
    recorder.stream_started(info)
    for i, (unit, offset) in enumerate(units[:60]):
        recorder.packet(unit, NOW + offset)
        ring = list(recorder._ring)
        assert ring[0][0].is_keyframe and list(recorder._ring_keys) == [e for e in ring[1:] if e[0].is_keyframe]
        if i > 30:  # from the newest keyframe at least pre_s old: 0.5 s ≤ span < 0.5 s + one GOP
            assert 0.5 <= ring[-1][1] - ring[0][1] < 0.74 + 1e-9, i
    recorder.alarm(NOW + 2.4)
    for unit, offset in units[60:]:
        recorder.packet(unit, NOW + offset)
    recorder.stream_ended("test over")
    writer.stop()
    rows = index.segments("cam-a", 0, NOW + 100)
    assert len(rows) == 1 and round(rows[0].start_at - NOW, 2) == 1.68  # the keyframe 0.72 s before the alarm
    frames = parse_segment((index.root / rows[0].path).read_bytes()).frames
    assert frames[0].keyframe and len(frames) == 30  # 1.68 s .. 2.88 s: the GOP after alarm + post_s ends it


def test_a_lasting_write_error_is_logged_once_per_episode_with_its_count(tmp_path, store, caplog):  # noqa: F811
    from datetime import UTC, datetime

    from recording.recorder import CameraPolicy, CameraRecorder, SegmentWriter, segment_path

    index = RecordingIndex(store, tmp_path / "rec")
    writer = SegmentWriter(index.root, index)
    recorder = CameraRecorder("cam-a", writer, CameraPolicy(segment_s=0.2))
    info, units = _units(n=120)  # 4.8 s, a keyframe every 0.24 s: a new segment at every keyframe
    day = index.root / segment_path("cam-a", NOW).rsplit("/", 1)[0]
    assert day.name == datetime.fromtimestamp(NOW, UTC).strftime("%Y-%m-%d")
    day.parent.mkdir(parents=True)
    day.write_bytes(b"not a directory")  # the fault: no segment can be created under the day's directory

    def play(part: list) -> None:
        for unit, offset in part:
            recorder.packet(unit, NOW + offset)
        writer.drain()  # what the writer logs is all in caplog now

    def logged(level: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "citywall.recording" and r.levelname == level]

    caplog.set_level("INFO", logger="citywall.recording")
    writer.start()
    recorder.stream_started(info)
    play(units[:60])
    assert writer.write_errors >= 5 and len(logged("ERROR")) == 1, logged("ERROR")
    assert "cannot create" in logged("ERROR")[0] and logged("WARNING") == []
    failed = writer.write_errors
    day.unlink()  # the fault goes away: the next segment is written and the episode's end is logged with its count
    play(units[60:90])
    assert logged("WARNING") == [f"recording: camera cam-a: writing again after {failed} failed writes"]
    assert index.segments("cam-a", 0, NOW + 100)
    day.rename(day.with_name("moved"))
    day.write_bytes(b"again")  # a second episode: logged once more, and its count when the recorder stops
    play(units[90:])
    recorder.stream_ended("test over")
    writer.stop()
    errors = logged("ERROR")
    assert len(errors) == 3 and "still failing when recording stopped" in errors[2], errors
    assert f"({writer.write_errors - failed} failed writes)" in errors[2]


# ------------------------------------------------------------------------------------------------ the settings

def test_recording_settings_are_validated_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        rec_settings(tmp_path, mode="sometimes")
    assert "recording.mode" in str(err.value)
    with pytest.raises(ConfigError) as err:
        rec_settings(tmp_path, segment_s=600)
    assert "recording.segment_s" in str(err.value)
    with pytest.raises(ConfigError) as err:
        rec_settings(tmp_path, cameras={"nope": {"mode": "off"}})
    assert "recording.cameras: no such camera 'nope'" in str(err.value)
    settings = rec_settings(tmp_path, cameras={"cam-v": {"mode": "alarms", "retention_days": 3}})
    assert settings.recording.cameras["cam-v"].mode == "alarms"


# ---------------------------------------------------------------------------------- record, seek, 4x, export

async def test_record_timeline_seek_fast_forward_and_export(tmp_path, bus, store, evidence_dir, demo_rtsp):  # noqa: F811
    settings = rec_settings(tmp_path)
    ingest, service = await start_recording(settings, store, demo_rtsp.url("vending"))
    try:
        began = time.time()
        await eventually(lambda: _recorded_s(service, began, 15.0), timeout=90, what="15 s recorded")
        app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir,
                         recordings=service.library)
        async with wall_client(app) as client:
            assert (await signin.login(client, "duty", PASSWORD)).status == 200
            resp = await client.get("/api/recordings/cam-v", params={"since": f"{began - 60}"})
            assert resp.status == 200, await resp.text()
            tl = await resp.json()
            assert tl["segments"] >= 4 and tl["recorded_s"] >= 15.0, tl
            assert len(tl["spans"]) == 1, tl  # rolled segments touch: one span, no false gaps
            assert tl["gaps"][0][0] == pytest.approx(began - 60), tl  # before the recording: a gap
            span_start = tl["spans"][0][0]

            # seek to the middle: the first fragment starts at a keyframe at or before the asked time and decodes
            at = span_start + 7.3
            started = time.monotonic()
            async with client.ws_connect("/api/recordings/cam-v/play", params={"at": f"{at}"}) as ws:
                init = await ws.receive_json(timeout=10)
                assert init["type"] == "init" and init["mime"].startswith('video/mp4; codecs="avc1.'), init
                init_segment = await ws.receive_bytes(timeout=10)
                mark = await ws.receive_json(timeout=10)
                first = await ws.receive_bytes(timeout=10)
                seek_s = time.monotonic() - started
                assert mark["type"] == "time" and at - 1.1 <= mark["at"] <= at, (mark, at)  # GOP 1 s
                assert fragment_is_keyframe(first)
                frames = [first]
                while len(frames) < 30:
                    msg = await ws.receive(timeout=10)
                    if isinstance(msg.data, bytes):
                        frames.append(msg.data)
            decoded, _ = decode(init_segment + b"".join(frames))
            assert decoded == 30
            print(f"seek -> first fragment {seek_s * 1000:.0f} ms")

            # 4x: keyframes only, each lasting a quarter of its GOP
            async with client.ws_connect("/api/recordings/cam-v/play", params={"at": f"{span_start}",
                                                                               "speed": "4"}) as ws:
                assert (await ws.receive_json(timeout=10))["type"] == "init"
                await ws.receive_bytes(timeout=10)
                marks, fragments = [], []
                while len(fragments) < 8:
                    msg = await ws.receive(timeout=10)
                    if isinstance(msg.data, bytes):
                        fragments.append(msg.data)
                    else:
                        marks.append(msg.json())
                assert all(fragment_is_keyframe(f) for f in fragments)
                assert all(m["type"] == "time" for m in marks) and len(marks) == 8
                media = [m["media"] for m in marks]
                recorded = [m["at"] for m in marks]
                # a GOP (1 s recorded) plays in ~0.25 s of output
                assert (media[-1] - media[0]) == pytest.approx((recorded[-1] - recorded[0]) / 4, rel=0.1)
                await ws.send_json({"type": "speed", "speed": 3})
                while True:  # fragments already on their way come first
                    msg = await ws.receive(timeout=10)
                    if isinstance(msg.data, str) and msg.json()["type"] == "error":
                        break
                assert msg.json()["error"].startswith("speed: must be one of 1, 2, 4, 8")

            # export: the duty officer may not; the monitor may, and it is audited
            params = {"since": f"{span_start + 2.0}", "until": f"{span_start + 12.0}"}
            resp = await client.get("/api/recordings/cam-v/export", params=params)
            assert resp.status == 403 and "needs admin, leader, monitor" in (await resp.json())["error"]
            # signing out ends a playback socket like a live one (4401)
            async with client.ws_connect("/api/recordings/cam-v/play", params={"at": f"{span_start}"}) as ws:
                assert (await ws.receive_json(timeout=10))["type"] == "init"
                assert (await client.post("/api/logout")).status == 200
                while not ws.closed:
                    await ws.receive(timeout=10)
                assert ws.close_code == 4401
            assert (await signin.login(client, "monitor", PASSWORD)).status == 200
            resp = await client.get("/api/recordings/cam-v/export",
                                    params={"since": params["since"], "until": f"{span_start + 2000}"})
            assert resp.status == 400 and (await resp.json())["error"].startswith("until: an export may span"), \
                await resp.text()
            resp = await client.get("/api/recordings/cam-v/export", params={"since": "yesterday", "until": "1"})
            assert resp.status == 400 and (await resp.json())["error"].startswith("since:")
            resp = await client.get("/api/recordings/cam-v/export", params=params)
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"] == "video/mp4" and "attachment" in resp.headers["Content-Disposition"]
            blob = await resp.read()
            decoded, duration = decode(blob)
            assert duration is not None and 10.0 <= duration <= 11.1, duration  # from the keyframe before since
            assert decoded == round(duration * 25), (decoded, duration)
            def exports():
                found, _ = store.search_audit(AuditQuery(action="recording.export"))
                return found if len(found) >= 4 else None

            # the audit row is written once the download has been sent: the client may have read the body first
            entries = await eventually(exports, what="the export's audit row")
            assert [e.outcome for e in entries] == [200, 400, 400, 403] and entries[0].actor == "monitor"
            assert entries[0].details["frames"] == decoded
    finally:
        await ingest.stop()
        await service.stop()
    # Bytes on disk ≈ the stream's bytes: the fragments' framing adds ~100 bytes a frame.
    parsed = [parse_segment((service.root / r.path).read_bytes()) for r in
              service.index.segments("cam-v", 0, time.time())]
    payload = sum(f.size for p in parsed for f in p.frames)
    assert service.writer.bytes_written <= payload * 1.05 + 2000 * len(parsed)
    assert all(p.frames[0].keyframe for p in parsed)


async def _recorded_s(service: RecordingService, since: float, wanted: float) -> bool:
    rows = await asyncio.to_thread(service.index.segments, "cam-v", since - 60, time.time())
    return sum(r.end_at - r.start_at for r in rows if r.complete) >= wanted


async def test_alarm_mode_records_from_pre_s_before_to_post_s_after_an_alarm(tmp_path, store, demo_rtsp):  # noqa: F811
    settings = rec_settings(tmp_path, mode="alarms", pre_s=3, post_s=3)
    ingest, service = await start_recording(settings, store, demo_rtsp.url("vending"))
    try:
        await eventually(_sync(lambda: ingest.status("cam-v").state == "online"), timeout=30, what="camera online")
        await asyncio.sleep(5.0)  # the ring fills; nothing is written without an alarm
        assert service.writer.segments_written == 0 and service.index.all_facts() == []
        alarm_at = time.time()
        record = service.clip_hook(lambda camera_id, clip_id, at: f"clips/{camera_id}/{clip_id}.mp4")
        assert record("cam-v", "a1", alarm_at) == "clips/cam-v/a1.mp4"  # the clip call goes on as before
        await eventually(_sync(lambda: service.writer.segments_written >= 1), timeout=30, what="the alarm recorded")
        # The segment closes once post_s has passed (the keyframe after it): wait for that, not for a fixed time.
        await eventually(_sync(lambda: (rows := service.index.segments("cam-v", 0, time.time()))
                               and all(r.complete for r in rows)), timeout=30, what="the alarm's segment closed")
        rows = service.index.segments("cam-v", 0, time.time())
        spans, _ = spans_and_gaps(rows, alarm_at - 60, time.time())
        assert len(spans) == 1, spans
        start, end = spans[0]
        # from the keyframe at or before -3 s to the keyframe after +3 s (GOP 1 s); a starved machine delivers
        # packets late and in bursts, so the far bounds are loose
        assert alarm_at - 5.0 <= start <= alarm_at - 2.8, (start - alarm_at)
        assert alarm_at + 2.8 <= end <= alarm_at + 7.0, (end - alarm_at)
    finally:
        await ingest.stop()
        await service.stop()


async def test_unknown_camera_bad_range_and_no_recorder(tmp_path, bus, store, evidence_dir):  # noqa: F811
    settings = rec_settings(tmp_path)
    service = RecordingService(settings, store, ["cam-v"])
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir, recordings=service.library)
    async with wall_client(app) as client:
        assert (await signin.login(client, "admin", PASSWORD)).status == 200
        assert (await client.get("/api/recordings/nope")).status == 404
        resp = await client.get("/api/recordings/cam-v", params={"since": "2026-13-01"})
        assert resp.status == 400 and (await resp.json())["error"].startswith("since:")
        resp = await client.get("/api/recordings/cam-v", params={"since": "200", "until": "100"})
        assert resp.status == 400 and (await resp.json())["error"].startswith("until:")
        resp = await client.get("/api/recordings/cam-v/play", params={"at": "100", "speed": "3"})
        assert resp.status == 400 and (await resp.json())["error"].startswith("speed:")
        resp = await client.get("/api/recordings/cam-v/export", params={"since": "100", "until": "200"})
        assert resp.status == 404
        async with client.ws_connect("/api/recordings/cam-v/play", params={"at": "100"}) as ws:
            msg = await ws.receive_json(timeout=10)
            assert msg["type"] == "error" and "nothing recorded" in msg["error"]
    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=evidence_dir)
    async with wall_client(app) as client:
        assert (await signin.login(client, "admin", PASSWORD)).status == 200
        resp = await client.get("/api/recordings/cam-v")
        assert resp.status == 503 and "recording not available" in (await resp.json())["error"]


# ---------------------------------------------------------------------------------------------- kill -9 repair

_RECORD_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, {repo!r})
    from cases.store import CaseStore
    from config import parse_settings
    from recording.service import RecordingService
    from video_ingest.service import IngestService

    async def main():
        settings = parse_settings({settings!r})
        store = CaseStore.open({url!r})
        ingest = IngestService({{"cam-v": {rtsp!r}}}, sample_keyframes=False)
        await ingest.start()
        service = RecordingService(settings, store, ["cam-v"])
        await service.start(ingest.subscribe_packets)
        while True:
            await asyncio.sleep(0.2)
            if service.writer.segments_written >= 2:
                print("recording", flush=True)

    asyncio.run(main())
""")


async def test_kill_9_leaves_at_most_the_last_segment_to_repair(tmp_path, demo_rtsp):
    data_dir = tmp_path / "var"
    url = f"sqlite:///{tmp_path}/cases.sqlite"
    raw = {"storage": {"data_dir": str(data_dir)},
           "users": [{"username": "admin", "display_name": "a", "role": "admin", "password_hash": _HASH}],
           "cameras": [{"id": "cam-v", "name": "解放路", "url": "rtsp://127.0.0.1:1/v",
                        "position": {"lon": 120.15, "lat": 30.27}}],
           "recording": {"mode": "continuous", "segment_s": 2}}
    script = _RECORD_SCRIPT.format(repo=str(REPO), settings=raw, url=url, rtsp=demo_rtsp.url("vending"))
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once; its output is read in a thread)
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 90)
        assert line.strip() == "recording"
        await asyncio.sleep(1.0)  # into the next segment
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    cases = CaseStore.open(url)
    try:
        index = RecordingIndex(cases, data_dir / "recordings")
        rows = index.segments("cam-v", 0, time.time() + 60)
        assert rows and not rows[-1].complete, rows  # the segment being written when killed
        complete = [r for r in rows if r.complete]
        assert len(complete) >= 2
        # Cut the last whole file mid-fragment too, and lose another file and another row, as a crash might.
        victim = index.root / complete[0].path
        victim_size = victim.stat().st_size
        os.truncate(victim, victim_size - 37)
        (index.root / complete[1].path).unlink()
        with cases.transaction() as tx:
            tx.execute("DELETE FROM recording_segments WHERE path = ?", (complete[0].path,))
        report = index.repair()
        assert report.reindexed == 2 and report.truncated >= 1 and report.removed_rows == 1, report
        after = {r.path: r for r in index.segments("cam-v", 0, time.time() + 60)}
        assert complete[1].path not in after and all(r.complete for r in after.values())
        for row in after.values():
            seg_bytes = (index.root / row.path).read_bytes()
            parsed = parse_segment(seg_bytes)
            assert parsed.valid_bytes == len(seg_bytes) == row.bytes
            assert row.end_at == pytest.approx(row.start_at + parsed.duration_s)
        assert after[complete[0].path].bytes < victim_size
        assert index.repair() == type(report)()  # a second repair finds nothing to do
    finally:
        cases.close()


# ------------------------------------------------------------------------------------------------- disk full

@pytest.fixture
def tiny_disk(tmp_path):
    """A real 6 MiB tmpfs (root only); unmounted afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_disk_full_stops_writing_deletes_by_policy_and_resumes(tmp_path, store, demo_rtsp, tiny_disk):  # noqa: F811
    settings = rec_settings(tmp_path, root=tiny_disk, segment_s=2, janitor_interval_s=1)
    ingest, service = await start_recording(settings, store, demo_rtsp.url("vending"))
    try:
        # 2 Mbit/s fills 6 MiB in ~25 s; the janitor frees room and recording goes on
        await eventually(_sync(lambda: service.writer.disk_full >= 1), timeout=120, what="the disk filling up")
        await eventually(_sync(lambda: service.deleted >= 1 and not service.writer.full), timeout=30,
                         what="old segments deleted and recording resumed")
        written = service.writer.segments_written
        await eventually(_sync(lambda: service.writer.segments_written > written), timeout=30,
                         what="a new segment after the disk was full")
        assert service.recorders["cam-v"].gaps >= 1
    finally:
        await ingest.stop()
        await service.stop()
    for row in service.index.segments("cam-v", 0, time.time() + 60):
        data = (service.root / row.path).read_bytes()
        parsed = parse_segment(data)
        assert parsed.valid_bytes == len(data) and parsed.frames, row  # no half fragment left behind
    assert service.stats()["disk_full"] >= 1


def _sync(fn):
    async def check():
        return fn()
    return check


async def test_case_evidence_is_kept_past_retention(tmp_path, store):  # noqa: F811
    settings = rec_settings(tmp_path, retention_days=1, case_pre_s=60, case_post_s=60, keep_after_close_days=2)
    now = 1_773_198_060.0 + 5 * DAY  # insert_case(1) reports at 1_773_198_060
    service = RecordingService(settings, store, ["cam-a"], clock=lambda: now)
    root = service.root
    for _i, start in enumerate((1_773_198_000.0, 1_773_198_060.0 + 3600, now - 3600)):
        path = f"cam-a/d/{int(start * 1000)}.mp4"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x" * 10)
        service.index.closed(SegmentRow("cam-a", path, start, start + 10, 10, "h264"))
    insert_case(store, 1, camera="cam-a")  # open, reported at 1_773_198_060: the first segment is its evidence
    plan = await service.sweep()
    kept = [r.path for r in service.index.segments("cam-a", 0, now)]
    assert plan.retention == 1 and plan.held == 1 and len(kept) == 2
    assert (root / kept[0]).exists() and kept[0].endswith("1773198000000.mp4")


# ------------------------------------------------------------------------------------------- in the browser

async def test_tile_plays_a_recording_at_speed_pauses_and_the_console_panel_shows_the_timeline(
        tmp_path, bus, store, evidence_dir, demo_rtsp, browser):  # noqa: F811
    from playwright.async_api import async_playwright

    from tests.live_page import login_page, show_tiles, tile_stats

    settings = rec_settings(tmp_path)
    ingest, service = await start_recording(settings, store, demo_rtsp.url("vending"))
    pw = await async_playwright().start()
    try:
        began = time.time()
        await eventually(lambda: _recorded_s(service, began, 12.0), timeout=90, what="12 s recorded")
        rows = service.index.segments("cam-v", began - 60, time.time())
        start = rows[0].start_at
        app = create_app(settings, bus=bus, cases=store, live=ingest.live, evidence_dir=evidence_dir,
                         recordings=service.library)
        async with wall_client(app) as client:
            base = str(client.make_url("")).rstrip("/")
            connected = await pw.chromium.connect_over_cdp(browser.cdp_url)
            context = await connected.new_context(viewport={"width": 1600, "height": 1000})
            page = await login_page(context, base, "duty", PASSWORD)
            await show_tiles(page, ["cam-v"], width=640, height=360, columns=1)
            await page.evaluate("at => document.querySelector('cw-tile').setAttribute('playback-at', String(at))",
                                start + 2.0)

            async def playing():
                s = (await tile_stats(page))[0]
                return s if s["state"] == "live" and s["videoWidth"] == 1280 and s["position"] > 0 else None
            first = await eventually(playing, timeout=30, what="the tile playing the recording")
            assert first["playback"] and start + 1.0 <= first["position"] <= start + 6.0, first
            badge = await page.evaluate("() => document.querySelector('cw-tile').shadowRoot.querySelector('.badge')"
                                        ".textContent")
            assert badge.startswith("回放 1×"), badge

            # 4x: recorded time runs about four times as fast as the clock
            await page.evaluate("() => document.querySelector('cw-tile').setAttribute('speed', '4')")
            await asyncio.sleep(1.0)
            p0, t0 = (await tile_stats(page))[0]["position"], time.monotonic()
            await asyncio.sleep(2.0)
            p1, t1 = (await tile_stats(page))[0]["position"], time.monotonic()
            rate = (p1 - p0) / (t1 - t0)
            assert 2.0 <= rate <= 6.0, (p0, p1, rate)  # a busy 2-core machine: loose bounds around 4

            # pause: the picture holds and the tile does not call it a lost signal
            await page.evaluate("() => document.querySelector('cw-tile').pause()")
            await asyncio.sleep(0.5)
            held = (await tile_stats(page))[0]
            await asyncio.sleep(6.0)
            still = (await tile_stats(page))[0]
            assert still["held"] and still["currentTime"] == pytest.approx(held["currentTime"], abs=0.05), still
            assert still["state"] == "live", still

            # the console: 回放 on a camera opens the panel with the 24 h timeline
            await page.goto(f"{base}/console")
            await page.locator("body[data-ready='1']").wait_for(timeout=30_000)
            await page.locator(".camera[data-camera='cam-v'] .replay").click()
            await page.locator(".pb-view .pb-span").first.wait_for(timeout=15_000)
            timeline = await page.evaluate("() => document.querySelector('.pb-view').timeline")
            assert timeline["spans"] and timeline["recorded_s"] >= 12.0, timeline
            labels = await page.evaluate("() => document.querySelector('.pb-controls').textContent")
            assert "回到直播" in labels and "4×" in labels and "导出" not in labels  # duty may not export
            await context.close()
    finally:
        await pw.stop()
        await ingest.stop()
        await service.stop()
