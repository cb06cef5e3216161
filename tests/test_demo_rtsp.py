"""Demo media files and the demo RTSP server, read with PyAV over RTSP/TCP as the ingest side does."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from demo.media import MEDIA_VERSION, is_valid, media_paths
from demo.scenes import SCENE_NAMES, make_scene
from demo.server import DemoRtspServer

OPTS = {"rtsp_transport": "tcp"}
TIMEOUT = (10, 5)


def nal_types(data: bytes) -> list[int]:
    out, i = [], data.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(data):
        out.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return out


def read_packets(url: str, n: int) -> tuple[av.container.InputContainer, list[tuple[float, av.Packet]]]:
    container = av.open(url, options=OPTS, timeout=TIMEOUT)
    stream = container.streams.video[0]
    got = []
    for packet in container.demux(stream):
        if packet.size:
            got.append((time.monotonic(), packet))
            if len(got) >= n:
                break
    return container, got


# --- media files ----------------------------------------------------------------------------------------------


def test_media_files_are_h264_with_one_idr_per_second(demo_media):
    assert set(demo_media) == set(SCENE_NAMES)
    for name, path in demo_media.items():
        assert path.name == f"{name}-7-v{MEDIA_VERSION}.h264"
        meta = json.loads(path.with_suffix(".json").read_text())
        assert (meta["fps"], meta["frames"], meta["width"], meta["height"]) == (25, 2250, 1280, 720)
        assert meta["bytes"] == path.stat().st_size
        assert 1.5e6 < meta["bit_rate"] < 3e6, meta["bit_rate"]
    data = demo_media["vending"].read_bytes()
    with av.open(str(demo_media["vending"]), format="h264") as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.name, ctx.width, ctx.height, ctx.pix_fmt) == ("h264", 1280, 720, "yuv420p")
        assert ctx.profile in ("Main", "Constrained Baseline", "Baseline")
        keys, count = [], 0
        for p in c.demux(video=0):
            if p.size:
                if p.is_keyframe:
                    keys.append(count)
                    assert nal_types(bytes(p))[:3] == [7, 8, 6] or nal_types(bytes(p))[:2] == [7, 8]  # SPS, PPS first
                else:
                    assert 5 not in nal_types(bytes(p)) and 7 not in nal_types(bytes(p))
                count += 1
    assert count == 2250 and keys == list(range(0, 2250, 25))
    assert data.startswith(b"\x00\x00\x00\x01\x67")


def test_decoded_file_matches_the_scene(demo_media):
    scene = make_scene("road_occupation", 7)
    with av.open(str(demo_media["road_occupation"]), format="h264") as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == 1000:  # 40 s: goods on the road
                img = frame.to_ndarray(format="bgr24")
                break
    err = np.abs(img.astype(np.int16) - scene.render(40.0)).mean()
    assert err < 6, f"mean abs error {err:.2f} after encoding"


def test_cache_is_reused_and_partial_files_do_not_count(demo_media, tmp_path):
    from demo.media import ensure_media

    media_dir = demo_media["vending"].parent
    before = {n: p.stat().st_mtime_ns for n, p in demo_media.items()}
    t0 = time.perf_counter()
    assert ensure_media(media_dir, 7) == demo_media
    assert time.perf_counter() - t0 < 2
    assert {n: p.stat().st_mtime_ns for n, p in demo_media.items()} == before
    # A copy whose stream is cut short, or whose sidecar is missing, is not valid (it would be regenerated).
    stream, side = media_paths(tmp_path, "vending", 7)
    shutil.copy(demo_media["vending"], stream)
    shutil.copy(demo_media["vending"].with_suffix(".json"), side)
    assert is_valid(tmp_path, "vending", 7)
    with open(stream, "r+b") as f:
        f.truncate(1_000_000)
    assert not is_valid(tmp_path, "vending", 7)
    shutil.copy(demo_media["vending"], stream)
    side.unlink()
    assert not is_valid(tmp_path, "vending", 7)
    with pytest.raises(ValueError, match="unknown demo scene"):
        ensure_media(tmp_path, 7, ("vending", "market"))


# --- RTSP -----------------------------------------------------------------------------------------------------


def test_stream_is_h264_720p_keyframe_every_25_and_real_time(demo_rtsp):
    container, got = read_packets(demo_rtsp.url("vending"), 110)
    try:
        ctx = container.streams.video[0].codec_context
        assert (ctx.name, ctx.width, ctx.height) == ("h264", 1280, 720)
        keys = [i for i, (_, p) in enumerate(got) if p.is_keyframe]
        assert len(keys) >= 4 and all(b - a == 25 for a, b in zip(keys, keys[1:], strict=False)), keys
        # A new client may get up to a second at once (the server's preroll); after that, real time.
        elapsed = got[105][0] - got[55][0]
        assert 1.7 < elapsed < 2.4, f"50 packets took {elapsed:.2f} s, expected 2.0 s at 25 fps"
        pts = [p.pts for _, p in got if p.pts is not None]
        assert all(b > a for a, b in zip(pts, pts[1:], strict=False))
    finally:
        container.close()


def test_every_scene_is_served_and_decodes_to_its_picture(demo_rtsp):
    for name in SCENE_NAMES:
        with av.open(demo_rtsp.url(name), options=OPTS, timeout=TIMEOUT) as c:
            frame = next(c.decode(video=0))
            img = frame.to_ndarray(format="bgr24")
        scene = make_scene(name, 7)
        # Which second of the loop it is depends on when the media started; it must be one of them.
        errs = [np.abs(img[::4, ::4].astype(np.int16) - scene.render(float(s))[::4, ::4]).mean() for s in range(90)]
        assert min(errs) < 8, (name, min(errs))


def test_unknown_path_is_refused(demo_rtsp):
    with pytest.raises(av.error.FFmpegError):
        av.open(demo_rtsp.url("no-such-scene"), options=OPTS, timeout=TIMEOUT)


def test_two_clients_share_the_stream(demo_rtsp):
    url = demo_rtsp.url("bin_overflow")
    counts = [0, 0]

    def read(i: int) -> None:
        c, got = read_packets(url, 60)
        counts[i] = len(got)
        c.close()

    threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.5)
    for t in threads:
        t.join(20)
    assert counts == [60, 60]


def test_server_cpu_per_stream_is_small(demo_rtsp):
    stop = threading.Event()
    counts = dict.fromkeys(SCENE_NAMES, 0)

    def read(name: str) -> None:
        with av.open(demo_rtsp.url(name), options=OPTS, timeout=TIMEOUT) as c:
            for _p in c.demux(video=0):
                counts[name] += 1
                if stop.is_set():
                    break

    def cpu_s() -> float:
        fields = Path(f"/proc/{demo_rtsp.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    threads = [threading.Thread(target=read, args=(n,)) for n in SCENE_NAMES]
    for t in threads:
        t.start()
    time.sleep(2)
    c0, n0, t0 = cpu_s(), dict(counts), time.monotonic()
    time.sleep(4)
    c1, n1, t1 = cpu_s(), dict(counts), time.monotonic()
    stop.set()
    for t in threads:
        t.join(10)
    per_stream = (c1 - c0) / (t1 - t0) / 4 * 100
    assert per_stream < 5, f"{per_stream:.1f} % of a core per stream"
    for name in SCENE_NAMES:
        rate = (n1[name] - n0[name]) / (t1 - t0)
        assert 20 < rate < 30, (name, rate)


def raw_rtsp_play(port: int, path: str) -> socket.socket:
    """A bare RTSP/TCP-interleaved client: DESCRIBE, SETUP, PLAY; returns the socket (the caller may then
    never read from it, or drop it without TEARDOWN)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    url = f"rtsp://127.0.0.1:{port}/{path}"

    def request(method: str, uri: str, cseq: int, headers: str = "") -> tuple[str, str]:
        sock.sendall(f"{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{headers}\r\n".encode())
        buf = b""
        while True:
            # Interleaved RTP of a stream that already plays ("$", channel, 2-byte length) can come first.
            while buf[:1] == b"$" and len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[2:4], "big"):
                buf = buf[4 + int.from_bytes(buf[2:4], "big"):]
            if buf.startswith(b"RTSP/") and b"\r\n\r\n" in buf:
                break
            buf += sock.recv(4096)
        head, _, body = buf.partition(b"\r\n\r\n")
        m = re.search(rb"Content-Length: (\d+)", head)
        while m and len(body) < int(m.group(1)):
            body += sock.recv(4096)
        assert b" 200 " in head.split(b"\r\n")[0], head
        return head.decode(), body.decode(errors="replace")

    head, sdp = request("DESCRIBE", url, 1, "Accept: application/sdp\r\n")
    control = re.search(r"a=control:(\S+)", sdp.split("m=video", 1)[1]).group(1)
    track = control if control.startswith("rtsp://") else url.rstrip("/") + "/" + control
    head, _ = request("SETUP", track, 2, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
    session = re.search(r"Session: ([^;\r\n]+)", head).group(1)
    request("PLAY", url, 3, f"Session: {session}\r\nRange: npt=0-\r\n")
    return sock


def test_stalled_and_vanished_clients_do_not_disturb_others(demo_media):
    with DemoRtspServer({"quiet_street": demo_media["quiet_street"]}) as server:
        stalled = raw_rtsp_play(server.port, "quiet_street")  # plays, never reads
        vanished = raw_rtsp_play(server.port, "quiet_street")
        vanished.recv(65536)
        vanished.close()  # no TEARDOWN
        try:
            container, got = read_packets(server.url("quiet_street"), 300)
            container.close()
            elapsed = got[299][0] - got[50][0]
            assert abs(elapsed - 249 / 25) < 0.8, f"249 packets took {elapsed:.2f} s beside a stalled client"
        finally:
            stalled.close()
        assert server.running
        container, got = read_packets(server.url("quiet_street"), 3)
        container.close()
        assert len(got) == 3


def test_stop_and_start_on_the_same_port(demo_media):
    server = DemoRtspServer({"vending": demo_media["vending"]})
    with server:
        url = server.url("vending")
        port = server.port
        assert port > 0
        c, got = read_packets(url, 5)
        assert got[0][1].is_keyframe
        server.stop()
        assert not server.running
        # The connected client sees the stream end (or an error), not a hang.
        t0 = time.monotonic()
        try:
            for _ in c.demux(video=0):
                pass
        except av.error.FFmpegError:
            pass
        assert time.monotonic() - t0 < 10
        c.close()
        with pytest.raises(av.error.FFmpegError):
            av.open(url, options=OPTS, timeout=(3, 3))
        server.start()
        assert server.port == port and server.url("vending") == url
        c, got = read_packets(url, 30)
        c.close()
        assert got[0][1].is_keyframe and len(got) == 30
    assert not server.running


def test_start_failures_are_reported_with_the_servers_stderr(demo_media, tmp_path):
    bogus = tmp_path / "bogus.h264"
    bogus.write_bytes(b"not h264 at all" * 100)
    with pytest.raises(RuntimeError, match="not an H.264 Annex-B stream"):
        DemoRtspServer({"bogus": bogus}).start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = DemoRtspServer({"vending": demo_media["vending"]}, port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="cannot listen"):
            server.start()
    with pytest.raises(ValueError, match="does not exist"):
        DemoRtspServer({"x": tmp_path / "missing.h264"})


def test_rtsp_server_script_imports_nothing_from_the_venv():
    # It must run under Debian's python with no project or venv packages on the path.
    script = Path(__file__).resolve().parents[1] / "demo" / "rtsp_server.py"
    out = subprocess.run(["/usr/bin/python3", "-I", str(script), "--help"], capture_output=True, text=True,
                         timeout=20, cwd="/")
    assert out.returncode == 0, out.stderr
    assert "--media" in out.stdout


def test_loop_restarts_seamlessly_with_monotonic_timestamps(demo_media, tmp_path):
    # A two-second clip (50 frames, two GOPs) cut from a scene: 130 packets span more than two loops.
    clip = tmp_path / "clip.h264"
    with av.open(str(demo_media["vending"]), format="h264") as c, open(clip, "wb") as out:
        for i, p in enumerate(p for p in c.demux(video=0) if p.size):
            if i == 50:
                break
            out.write(bytes(p))
    with DemoRtspServer({"clip": clip}) as server:
        container, got = read_packets(server.url("clip"), 130)
        container.close()
    keys = [i for i, (_, p) in enumerate(got) if p.is_keyframe]
    assert keys[:6] == [0, 25, 50, 75, 100, 125]
    steps = {b.pts - a.pts for (_, a), (_, b) in zip(got[1:], got[2:], strict=False)}
    assert steps == {3600}, steps  # 90 kHz clock / 25 fps, across the loop boundaries too
    elapsed = got[129][0] - got[40][0]
    assert abs(elapsed - 89 / 25) < 0.5, elapsed


def test_server_dies_with_a_killed_parent(demo_media, tmp_path):
    """kill -9 of the process that started the RTSP server must not leave the server running (no orphans)."""
    import signal as _signal
    import subprocess as _subprocess
    import sys as _sys
    import time as _time

    script = tmp_path / "parent.py"
    media = {name: str(path) for name, path in demo_media.items()}
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from demo.server import DemoRtspServer\n"
        f"s = DemoRtspServer({{k: Path(v) for k, v in {media!r}.items()}})\n"
        "s.start()\n"
        "print(s._proc.pid, flush=True)\n"
        "time.sleep(60)\n",
        encoding="utf-8",
    )
    parent = _subprocess.Popen([_sys.executable, str(script)], stdout=_subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(_signal.SIGKILL)
    parent.wait()
    deadline = _time.monotonic() + 5
    while _time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state == "Z":
            break
        _time.sleep(0.1)
    else:
        _subprocess.run(["kill", "-9", str(child)])
        raise AssertionError("the RTSP server outlived its killed parent")
