"""Ingest parts on a local H.264 file (no network): fMP4 remux, fan-out, keyframe sampler, live relay and viewers.

The file is encoded here with libx264 (GOP 25, no B-frames, like the demo cameras); packets are fed through a
real ``PacketFanout`` from the test, so the relay's GOP cache and per-viewer drops are checked exactly.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from video_ingest.fanout import PacketFanout, StreamInfo
from video_ingest.frames import Frame
from video_ingest.live import LiveEnded, LiveHub, LiveRelay, LiveUnavailable
from video_ingest.mp4 import fragment_is_keyframe, iter_boxes
from video_ingest.remux import Fragment, FragmentMuxer, InitSegment, UnsupportedCodec
from video_ingest.sampler import KeyframeSampler
from video_ingest.slot import LatestFrameSlot

W, H, N, GOP = 320, 240, 100, 25


def encode(path: Path, codec: str, n: int = N, pts0: int = 50) -> Path:
    out = av.open(str(path), "w")
    opts = {"g": str(GOP), "bf": "0", "preset": "ultrafast"}
    if codec == "libx265":
        opts["x265-params"] = f"keyint={GOP}:min-keyint={GOP}:bframes=0:log-level=error"
    stream = out.add_stream(codec, rate=25, options=opts)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    for i in range(n):
        img = np.full((H, W, 3), 40, np.uint8)
        img[:, (i * 3) % W] = 255  # a moving bar, so frames differ
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = pts0 + i, Fraction(1, 25)  # the stream does not start at 0
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


@pytest.fixture(scope="module")
def h264_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode(tmp_path_factory.mktemp("ingest") / "clip.mp4", "libx264")


@pytest.fixture(scope="module")
def hevc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode(tmp_path_factory.mktemp("ingest") / "clip-hevc.mp4", "libx265", n=30)


class Clip:
    """An open input: its video stream and all its packets (in decode order)."""

    def __init__(self, path: Path) -> None:
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.packets = [p for p in self.container.demux(self.stream) if p.dts is not None]

    def info(self, session: int = 1) -> StreamInfo:
        ctx = self.stream.codec_context
        return StreamInfo(camera_id="cam", session=session, codec=ctx.name, width=ctx.width,
                          height=ctx.height, time_base=Fraction(self.stream.time_base),
                          extradata=bytes(ctx.extradata) if ctx.extradata else None, started_at=time.time())


@pytest.fixture
def clip(h264_file: Path) -> Iterator[Clip]:
    c = Clip(h264_file)
    yield c
    c.container.close()


def decode_all(blob: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(blob)) as container:
        return list(container.decode(video=0))


# -- remux ---------------------------------------------------------------------------------------------------------
def test_remux_gives_init_then_one_fragment_per_frame_that_decodes_from_zero(clip: Clip) -> None:
    muxer = FragmentMuxer(clip.info())
    segments = [s for p in clip.packets for s in muxer.feed(p)]
    init, fragments = segments[0], segments[1:]
    assert isinstance(init, InitSegment)
    assert [t for t, _, _ in iter_boxes(init.data)] == ["ftyp", "moov"]
    assert init.mime.startswith('video/mp4; codecs="avc1.') and len(init.mime) == len('video/mp4; codecs="avc1.640016"')
    assert all(isinstance(f, Fragment) for f in fragments)
    assert len(fragments) == N - 1  # the last frame waits for its duration (the next packet)
    for f in fragments:
        assert [t for t, _, _ in iter_boxes(f.data)] == ["moof", "mdat"]
        assert f.keyframe == fragment_is_keyframe(f.data)
    assert [i for i, f in enumerate(fragments) if f.keyframe] == [0, 25, 50, 75]
    frames = decode_all(init.data + b"".join(f.data for f in fragments))
    assert len(frames) == N - 1
    assert frames[0].pts == 0 and frames[0].time == 0.0  # rebased although the input starts at 2 s
    assert frames[10].time == pytest.approx(0.4)
    muxer.close()
    assert muxer.feed(clip.packets[0]) == []


def test_remux_starts_at_the_first_keyframe_and_leaves_packets_untouched(clip: Clip) -> None:
    muxer = FragmentMuxer(clip.info())
    before = [(p.pts, p.dts, bytes(p)) for p in clip.packets[5:40]]
    segments = [s for p in clip.packets[5:40] for s in muxer.feed(p)]
    assert muxer.skipped == 20  # packets 5..24 come before the keyframe at 25
    assert isinstance(segments[0], InitSegment)
    assert segments[1].keyframe
    assert [(p.pts, p.dts, bytes(p)) for p in clip.packets[5:40]] == before  # shared with other sinks


def test_remux_skips_a_packet_whose_dts_does_not_increase(clip: Clip) -> None:
    muxer = FragmentMuxer(clip.info())
    out = [s for p in clip.packets[:10] for s in muxer.feed(p)]
    assert muxer.feed(clip.packets[5]) == [] and muxer.skipped == 1
    out += [s for p in clip.packets[10:20] for s in muxer.feed(p)]
    frames = decode_all(b"".join(s.data for s in out))
    assert len(frames) == 19


def test_remux_refuses_hevc(hevc_file: Path) -> None:
    hevc = Clip(hevc_file)
    try:
        with pytest.raises(UnsupportedCodec, match="camera sends HEVC; a remux needs H.264"):
            FragmentMuxer(hevc.info())
    finally:
        hevc.container.close()


# -- fan-out --------------------------------------------------------------------------------------------------------
class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[str] = []
        self.fail = fail

    def stream_started(self, info: StreamInfo) -> None:
        self.events.append(f"start {info.session}")

    def packet(self, packet: av.Packet, arrived_at: float) -> None:
        if self.fail:
            raise RuntimeError("sink bug")
        self.events.append("packet")

    def stream_ended(self, reason: str) -> None:
        self.events.append(f"end {reason}")


def test_fanout_sessions_late_subscribers_and_failing_sinks(clip: Clip) -> None:
    fanout = PacketFanout("cam")
    early, bad, late = Recorder(), Recorder(fail=True), Recorder()
    fanout.subscribe(early)
    fanout.subscribe(bad)
    fanout.subscribe(early)  # twice is once
    fanout.start_session(clip.info(1))
    fanout.publish(clip.packets[0], 1.0)
    fanout.subscribe(late)  # mid-session: told about the session at once
    fanout.publish(clip.packets[1], 1.04)
    fanout.unsubscribe(bad)
    fanout.publish(clip.packets[2], 1.08)
    fanout.end_session("gone")
    fanout.end_session("gone again")
    assert early.events == ["start 1", "packet", "packet", "packet", "end gone"]
    assert late.events == ["start 1", "packet", "packet", "end gone"]
    assert fanout.sink_errors == 2 and fanout.packets == 3 and fanout.sink_count == 2
    assert fanout.info is None


def test_fanout_replays_the_packets_since_the_newest_keyframe(clip: Clip) -> None:
    fanout = PacketFanout("cam")
    fanout.start_session(clip.info(1))
    feed(fanout, clip.packets[:30])
    assert fanout.gop_packets == 5  # 25..29
    late = Recorder()
    fanout.subscribe(late)  # no replay asked
    replayed = Recorder()
    fanout.subscribe(replayed, replay_gop=True)
    feed(fanout, clip.packets[30:31])
    assert late.events == ["start 1", "packet"]
    assert replayed.events == ["start 1"] + ["packet"] * 6
    fanout.end_session("gone")
    assert fanout.gop_packets == 0
    fanout.start_session(clip.info(2))
    feed(fanout, clip.packets[1:20])  # no keyframe yet in this session: nothing to replay
    assert fanout.gop_packets == 0
    off = PacketFanout("cam", keep_gop=False)
    off.start_session(clip.info(1))
    feed(off, clip.packets[:30])
    assert off.gop_packets == 0


# -- sampler and slot -----------------------------------------------------------------------------------------------
def test_slot_keeps_the_newest_and_counts_unread_overwrites() -> None:
    slot = LatestFrameSlot()
    assert slot.get() is None
    frames = [Frame("cam", np.zeros((2, 2, 3), np.uint8), captured_at=i, pts_s=i, seq=i) for i in range(1, 5)]
    slot.put(frames[0])
    slot.put(frames[1])  # frame 1 was never read
    assert slot.get() is frames[1] and slot.get() is frames[1]
    slot.put(frames[2])  # frame 2 had been read: not an overwrite
    slot.put(frames[3])
    assert (slot.overwritten, slot.puts) == (2, 4)
    slot.clear()
    assert slot.get() is None


def test_sampler_decodes_only_keyframes_off_the_caller_thread(clip: Clip) -> None:
    slot = LatestFrameSlot()
    sampler = KeyframeSampler("cam", slot, queue_size=8)
    sampler.start()
    fanout = PacketFanout("cam")
    fanout.subscribe(sampler)
    try:
        fanout.publish(clip.packets[0], 1.0)  # before any session: ignored
        fanout.start_session(clip.info())
        t0 = time.monotonic()
        for i, packet in enumerate(clip.packets):
            fanout.publish(packet, 1000.0 + i)
        publish_s = time.monotonic() - t0
        deadline = time.monotonic() + 10
        while sampler.decoded < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        frame = slot.get()
        assert sampler.decoded == 4 and sampler.decode_errors == 0  # keyframes 0, 25, 50, 75 only
        assert frame is not None and frame.image.shape == (H, W, 3) and frame.keyframe
        assert (frame.seq, frame.captured_at, frame.pts_s) == (4, 1075.0, pytest.approx(2 + 75 / 25))
        assert publish_s < 0.5  # the fan-out only copied four packets; decoding happened elsewhere
        bar_col = (75 * 3) % W
        assert frame.image[:, bar_col].mean() > 200 and frame.image[:, bar_col + 20].mean() < 80
    finally:
        assert sampler.stop()


def test_sampler_queue_keeps_the_newest_keyframes(clip: Clip) -> None:
    sampler = KeyframeSampler("cam", LatestFrameSlot(), queue_size=1)  # worker not started: nothing drains
    sampler.stream_started(clip.info())
    for p in clip.packets:
        sampler.packet(p, 1.0)
    assert sampler.dropped == 3 and len(sampler._jobs) == 1
    assert sampler._jobs[0].packet.pts == clip.packets[75].pts
    assert sampler.stop()


# -- live relay ------------------------------------------------------------------------------------------------------
async def settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def feed(fanout: PacketFanout, packets: list[av.Packet]) -> None:
    for p in packets:
        fanout.publish(p, time.time())


async def drain(viewer, n: int | None = None) -> list[bytes]:  # type: ignore[no-untyped-def]
    out = []
    while viewer.queued and (n is None or len(out) < n):
        out.append(await viewer.next_fragment())
    return out


async def test_first_viewer_starts_the_relay_and_gets_a_keyframe_first(clip: Clip) -> None:
    fanout = PacketFanout("cam")
    hub = LiveHub({"cam": fanout})
    assert hub.has_camera("cam") and not hub.has_camera("nope")
    relay = hub.relays["cam"]
    assert fanout.sink_count == 0  # nobody watching: not subscribed
    fanout.start_session(clip.info())
    feed(fanout, clip.packets[:10])
    opening = asyncio.create_task(hub.open("cam", queue_size=300))
    await settle()
    assert fanout.sink_count == 1 and relay.running
    viewer = await asyncio.wait_for(opening, 2)  # packets 0..9 were replayed from the keyframe at 0
    feed(fanout, clip.packets[10:60])
    assert viewer.mime.startswith('video/mp4; codecs="avc1.')
    assert viewer.init_segment[4:8] == b"ftyp" and b"moov" in viewer.init_segment
    await settle()
    fragments = await drain(viewer)
    assert len(fragments) == 59  # packets 0..58 are complete; 59 waits for its successor
    assert [i for i, f in enumerate(fragments) if fragment_is_keyframe(f)] == [0, 25, 50]
    assert len(decode_all(viewer.init_segment + b"".join(fragments))) == 59
    viewer.close()
    assert fanout.sink_count == 0 and not relay.running  # the last viewer left
    with pytest.raises(LiveEnded):
        await viewer.next_fragment()
    with pytest.raises(KeyError, match="unknown camera 'nope'"):
        await hub.open("nope")


async def test_a_second_viewer_starts_at_once_from_the_gop_cache(clip: Clip) -> None:
    fanout = PacketFanout("cam")
    relay = LiveRelay("cam", fanout)
    fanout.start_session(clip.info())
    opening = asyncio.create_task(relay.open())
    await settle()
    feed(fanout, clip.packets[:40])
    first = await asyncio.wait_for(opening, 2)
    t0 = time.monotonic()
    second = await relay.open()  # mid-GOP: replay from the keyframe at 25
    assert time.monotonic() - t0 < 0.05
    assert second.init_segment == first.init_segment and fanout.sink_count == 1
    got = await drain(second)
    assert len(got) == 14 and fragment_is_keyframe(got[0])
    assert got == (await drain(first))[-14:]
    feed(fanout, clip.packets[40:45])
    await settle()
    assert len(await drain(second)) == 5
    first.close()
    assert relay.running  # one viewer is left
    second.close()
    assert not relay.running and fanout.sink_count == 0


async def test_a_stalled_viewer_drops_until_a_keyframe_and_never_holds_back_others(clip: Clip) -> None:
    fanout = PacketFanout("cam")
    relay = LiveRelay("cam", fanout)
    fanout.start_session(clip.info())
    opening = [asyncio.create_task(relay.open(queue_size=q)) for q in (300, 10)]
    await settle()
    feed(fanout, clip.packets[:26])
    healthy, stalled = [await asyncio.wait_for(t, 2) for t in opening]
    got = []
    for p in clip.packets[26:]:
        feed(fanout, [p])
        await settle()
        got += await drain(healthy)  # this one keeps up; the stalled one never reads
    assert len(got) == N - 1 and healthy.dropped == 0
    # stalled: 10 fragments from the first keyframe, then dropped up to the keyframe at 50 (which still found
    # its queue full), and everything after
    assert stalled.queued == 10 and stalled.dropped == N - 1 - 10
    kept = await drain(stalled)
    assert len(decode_all(stalled.init_segment + b"".join(kept))) == 10
    healthy.close()
    stalled.close()


async def test_stalled_viewer_resumes_at_the_next_keyframe(clip: Clip) -> None:
    fanout = PacketFanout("cam")
    relay = LiveRelay("cam", fanout)
    fanout.start_session(clip.info())
    opening = asyncio.create_task(relay.open(queue_size=5))
    await settle()
    feed(fanout, clip.packets[:32])  # fragments 0..30 complete: 0..4 queued, 5..30 dropped
    viewer = await asyncio.wait_for(opening, 2)
    await settle()
    assert viewer.dropped == 26
    first = await drain(viewer)
    feed(fanout, clip.packets[32:60])  # nothing more until the keyframe at 50
    await settle()
    resumed = await drain(viewer)
    assert fragment_is_keyframe(resumed[0]) and len(resumed) == 5  # fragments 50..54; 55..58 overflowed again
    assert viewer.dropped == 26 + (49 - 30) + 4
    assert len(decode_all(viewer.init_segment + b"".join(first + resumed))) == len(first) + len(resumed)
    viewer.close()


async def test_no_keyframe_in_time_is_live_unavailable_and_stops_the_relay() -> None:
    fanout = PacketFanout("cam")
    relay = LiveRelay("cam", fanout, keyframe_timeout_s=0.2)
    with pytest.raises(LiveUnavailable, match="no keyframe within 0.2 s"):
        await relay.open()
    assert not relay.running and fanout.sink_count == 0


async def test_camera_disconnect_ends_viewers_after_what_they_have(clip: Clip) -> None:
    fanout = PacketFanout("cam")
    relay = LiveRelay("cam", fanout)
    fanout.start_session(clip.info())
    opening = asyncio.create_task(relay.open())
    await settle()
    feed(fanout, clip.packets[:30])
    viewer = await asyncio.wait_for(opening, 2)
    fanout.end_session("stream ended")
    await settle()
    assert not relay.running and fanout.sink_count == 0
    assert len(await drain(viewer, 4)) == 4
    with pytest.raises(LiveEnded, match="stream ended"):
        while True:
            await viewer.next_fragment()
    # a waiting reader is woken too
    fanout.start_session(clip.info(2))
    opening = asyncio.create_task(relay.open())
    await settle()
    feed(fanout, clip.packets[:27])
    viewer = await asyncio.wait_for(opening, 2)
    await drain(viewer)
    reader = asyncio.create_task(viewer.next_fragment())
    await settle()
    fanout.end_session("server killed")
    with pytest.raises(LiveEnded, match="server killed"):
        await asyncio.wait_for(reader, 2)


async def test_hevc_camera_is_transcoded_to_h264_for_every_viewer(hevc_file: Path) -> None:
    hevc = Clip(hevc_file)
    try:
        fanout = PacketFanout("cam")
        fanout.start_session(hevc.info())
        relay = LiveRelay("cam", fanout)
        opening = asyncio.create_task(relay.open())
        await settle()
        feed(fanout, hevc.packets[:12])
        viewer = await asyncio.wait_for(opening, 5)
        second = await asyncio.wait_for(relay.open(), 5)  # shares the one transcoder (GOP cache prefill)
        assert viewer.mime.startswith('video/mp4; codecs="avc1.') and viewer.mime.endswith('"'), viewer.mime
        assert viewer.transcoded_from == "hevc"
        assert second.mime == viewer.mime and second.init_segment == viewer.init_segment
        feed(fanout, hevc.packets[12:])
        transcoder = relay._muxer
        assert transcoder is not None and transcoder.dropped == 0  # on its own thread, off the event loop
        for _ in range(200):
            if transcoder.idle:
                break
            await asyncio.sleep(0.02)
        await settle()  # its last segments come back through the loop
        frags = await drain(viewer)
        assert frags, "no transcoded fragments"
        container = av.open(io.BytesIO(viewer.init_segment + b"".join(frags)))
        stream = container.streams.video[0]
        ctx = stream.codec_context
        assert ctx.name == "h264" and (ctx.width, ctx.height) == (W, H)
        assert len(list(container.decode(stream))) >= len(hevc.packets) - 5  # the encoder holds none back
        container.close()
        viewer.close()
        second.close()
        await settle()
        assert not relay.running and fanout.sink_count == 0  # the transcoder stops with the last viewer
    finally:
        hevc.container.close()


async def test_hub_close_ends_every_viewer(clip: Clip) -> None:
    fanout = PacketFanout("cam")
    hub = LiveHub({"cam": fanout})
    fanout.start_session(clip.info())
    opening = asyncio.create_task(hub.open("cam"))
    await settle()
    feed(fanout, clip.packets[:27])
    viewer = await asyncio.wait_for(opening, 2)
    hub.close("ingest stopped")
    assert fanout.sink_count == 0
    await drain(viewer)
    with pytest.raises(LiveEnded, match="ingest stopped"):
        await viewer.next_fragment()
    assert hub.stats()["cam"]["starts"] == 1
