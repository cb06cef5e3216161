"""The live clock camera: its frames carry the time they were made, readable after H.264 / H.265 over RTSP."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest

from demo.clock import BITS, ClockRtspServer, decode_band, latency_ms
from video_ingest.transcode import fit_within

pytestmark = pytest.mark.timeout(60)


def test_latency_is_wrap_safe() -> None:
    assert latency_ms(1000, 1250) == 250
    assert latency_ms((2**32) - 100, 2**32 + 50) == 150  # the encoded value wrapped, the clock did not
    assert latency_ms(500, 400) == -100  # a clock step backwards shows as negative, not as 49 days


def test_a_blank_or_garbled_band_does_not_decode() -> None:
    assert decode_band(np.zeros((720, 1280), np.uint8)) is None
    assert decode_band(np.full((720, 1280), 255, np.uint8)) is None


def test_fit_within_keeps_aspect_and_never_scales_up() -> None:
    assert fit_within(1280, 720) == (640, 360)
    assert fit_within(1920, 1080) == (640, 360)
    assert fit_within(704, 576) == (440, 360)
    assert fit_within(320, 240) == (320, 240)
    with pytest.raises(ValueError, match="bad source size"):
        fit_within(0, 720)


@pytest.mark.parametrize("codec,decoder", [("h264", "h264"), ("h265", "hevc")])
def test_clock_camera_frames_decode_to_the_time_they_were_made(codec: str, decoder: str) -> None:
    server = ClockRtspServer(("clock",), width=640, height=360, codec=codec)
    server.start()
    try:
        with av.open(server.url("clock"), options={"rtsp_transport": "tcp"}, timeout=(10, 10)) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == decoder
            got = []
            for frame in c.decode(stream):
                value = decode_band(frame.to_ndarray(format="gray"))
                if value is not None:
                    got.append(latency_ms(value, int(time.time() * 1000)))
                if len(got) >= 10:
                    break
        assert len(got) == 10
        assert all(0 <= lat < 3000 for lat in got), got  # made moments ago, on this machine's clock
        assert 640 // BITS >= 16  # blocks wide enough to survive compression at this size
    finally:
        server.stop()
