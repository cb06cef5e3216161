"""DetectionWorker: frames in through the latest-frame callable, alarms out through ``publish`` (the real bus),
evidence on disk, counters; a crashing camera or a failing publish never stops the worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import pytest

from config import load_settings
from config.settings import Detection
from detectors.worker import DetectionWorker
from messages.alarm import Alarm
from tests.fixtures.scenes import T0, SceneFeed, cams

CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
FAST = Detection(interval_s=0.01)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def settings():
    return load_settings(CONFIG)


@pytest.mark.slow
async def test_alarms_reach_the_bus_with_evidence(settings, bus, tmp_path):
    stop = asyncio.Event()
    feed = SceneFeed({"cam-vending": "vending", "cam-street": "quiet_street"}, 80, stop, repeat=2)
    worker = DetectionWorker(cams(settings, "cam-vending", "cam-street"), FAST, tmp_path, feed,
                             timezone=settings.timezone)
    await asyncio.wait_for(worker.run(bus.publish, stop), 50)

    entries = list(reversed(await bus.history("alarms", count=10)))
    alarms = [Alarm.from_dict(e.data) for e in entries]
    assert [(a.camera_id, a.phase, a.event, a.zone_id) for a in alarms] == [
        ("cam-vending", "raised", "vending", "pavement"), ("cam-vending", "cleared", "vending", "pavement")]
    raised, cleared = alarms
    assert raised.alarm_id == cleared.alarm_id
    assert raised.camera_name == "解放路人行道" and raised.zone_name == "人行道禁止摆摊区"
    # The stall stands still from ~11 s; dwell 10 s.
    assert raised.detector == "stationary-bg/1" and raised.at == T0 + 21
    assert raised.snapshot == f"2024-06-03/cam-vending/{raised.alarm_id}.jpg"
    assert raised.snapshot_clean == f"2024-06-03/cam-vending/{raised.alarm_id}-clean.jpg"
    assert cleared.snapshot == f"2024-06-03/cam-vending/{raised.alarm_id}-cleared.jpg"
    for rel in (raised.snapshot, raised.snapshot_clean, cleared.snapshot, cleared.snapshot_clean):
        img = cv2.imread(str(tmp_path / rel))
        assert img is not None and img.shape == (720, 1280, 3)

    stats = worker.stats()
    assert stats["frames_analysed"] == 160 and stats["errors"] == 0
    assert stats["frames_skipped"] >= 160  # every frame was offered twice
    assert stats["alarms_raised"] == 1 and stats["alarms_cleared"] == 1 and stats["published"] == 2
    assert stats["cameras"]["cam-street"]["alarms_raised"] == 0
    assert 0 < stats["analysis_ms_avg"] < 100


async def test_a_crashing_camera_is_counted_and_the_others_go_on(settings, tmp_path):
    stop = asyncio.Event()
    feed = SceneFeed({"cam-vending": "vending", "cam-road": "road_occupation"}, 30, stop)
    worker = DetectionWorker(cams(settings, "cam-vending", "cam-road"), FAST, tmp_path, feed)

    def broken(image, now):
        raise RuntimeError("simulated analyzer bug")

    worker.analyzers["cam-vending"].observe = broken  # type: ignore[method-assign]  # the first half of a step
    published: list[Alarm] = []

    async def publish(alarm: Alarm) -> None:
        published.append(alarm)

    await asyncio.wait_for(worker.run(publish, stop), 40)
    stats = worker.stats()
    assert stats["cameras"]["cam-vending"]["errors"] == 30
    assert stats["cameras"]["cam-road"]["errors"] == 0 and stats["cameras"]["cam-road"]["frames_analysed"] == 30
    assert [(a.camera_id, a.phase) for a in published] == [("cam-road", "raised")]


async def test_failed_publishes_are_retried_in_order(settings, tmp_path):
    stop = asyncio.Event()
    feed = SceneFeed({"cam-bin": "bin_overflow"}, 80, stop)
    worker = DetectionWorker(cams(settings, "cam-bin"), FAST, tmp_path, feed)
    delivered: list[tuple[str, str]] = []
    failures = {"left": 3}

    async def flaky(alarm: Alarm) -> None:
        if alarm.phase == "cleared" and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("redis down")
        delivered.append((alarm.alarm_id, alarm.phase))

    await asyncio.wait_for(worker.run(flaky, stop), 40)
    assert [p for _, p in delivered] == ["raised", "cleared"] and delivered[0][0] == delivered[1][0]
    stats = worker.stats()
    assert stats["publish_errors"] == 3 and stats["outbox"] == 0 and stats["outbox_dropped"] == 0


async def test_outbox_is_bounded(settings, tmp_path):
    stop = asyncio.Event()
    feed = SceneFeed({"cam-bin": "bin_overflow"}, 80, stop)
    worker = DetectionWorker(cams(settings, "cam-bin"), FAST, tmp_path, feed, outbox_size=1)

    async def down(alarm: Alarm) -> None:
        raise ConnectionError("redis down")

    await asyncio.wait_for(worker.run(down, stop), 40)
    stats = worker.stats()
    assert stats["outbox"] == 1 and stats["outbox_dropped"] == 1 and stats["published"] == 0


async def test_a_failing_frame_source_is_counted(settings, tmp_path):
    stop = asyncio.Event()
    worker = DetectionWorker(cams(settings, "cam-road"), FAST, tmp_path, lambda cam: 1 / 0)

    async def publish(alarm: Alarm) -> None:
        raise AssertionError("nothing to publish")

    async def stopper() -> None:
        while worker.stats()["ticks"] < 5:
            await asyncio.sleep(0.01)
        stop.set()

    await asyncio.wait_for(asyncio.gather(worker.run(publish, stop), stopper()), 10)
    assert worker.stats()["cameras"]["cam-road"]["errors"] >= 5


def _collector(into: list[Alarm]):
    async def publish(alarm: Alarm) -> None:
        into.append(alarm)

    return publish


@pytest.mark.timeout(180)
async def test_analysis_threads_decide_the_same_alarms_as_one_thread(settings, tmp_path):
    # The cameras of a round are analysed on several threads (each camera's analyzer on one at a time): the
    # alarms must be exactly those of a single thread, and the threads must really have been used.
    import threading

    scenes = {"cam-vending": "vending", "cam-street": "quiet_street"}
    outcomes = {}
    for threads in (1, 2):
        stop = asyncio.Event()
        feed = SceneFeed(scenes, 30, stop)
        worker = DetectionWorker(cams(settings, *scenes), Detection(interval_s=0.01, analysis_threads=threads),
                                 tmp_path / str(threads), feed, timezone=settings.timezone)
        used: set[str] = set()
        for analyzer in worker.analyzers.values():
            observe = analyzer.observe
            analyzer.observe = lambda *a, _o=observe, _used=used, **k: (
                _used.add(threading.current_thread().name), _o(*a, **k))[1]
        published: list[Alarm] = []

        await asyncio.wait_for(worker.run(_collector(published), stop), 150)
        outcomes[threads] = sorted((a.camera_id, a.phase, a.event, a.zone_id, a.at) for a in published)
        assert worker.stats()["frames_analysed"] == 2 * 30
        pooled = {name for name in used if name.startswith("analysis")}
        assert len(pooled) == (0 if threads == 1 else threads), used
    assert outcomes[1] == outcomes[2] and outcomes[1], outcomes
async def test_cameras_join_and_leave_one_worker_and_share_its_ticks(settings, tmp_path):
    """A cluster worker's one DetectionWorker: cameras acquired later join the same tick (one batched model call),
    a released camera is no longer asked for frames."""
    stop = asyncio.Event()
    feed = SceneFeed({"cam-vending": "vending", "cam-street": "quiet_street"}, 5, stop)
    asked: list[str] = []

    def frames(camera_id: str):
        asked.append(camera_id)
        return feed(camera_id)

    worker = DetectionWorker([], FAST, tmp_path, frames, timezone=settings.timezone)
    assert await worker.tick() == [] and asked == []
    for cam in cams(settings, "cam-vending", "cam-street"):
        worker.add_camera(cam)
    await worker.tick()
    assert sorted(asked) == ["cam-street", "cam-vending"] and worker.stats()["frames_analysed"] == 2
    worker.remove_camera("cam-street")
    asked.clear()
    await worker.tick()
    assert asked == ["cam-vending"] and set(worker.stats()["cameras"]) == {"cam-vending"}
