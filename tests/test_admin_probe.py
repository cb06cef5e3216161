"""测试连接 against real servers: the exact reason in Chinese for a refused login (401), a server that only offers
RTP over UDP asked for TCP (461, and "auto" then plays it over UDP), a stream with no video track, a server that
never answers (timeout); credentials never in the answer."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from admin.probe import probe_camera
from demo.server import DemoRtspServer
from tests.canned_rtsp import CannedCamera

pytestmark = pytest.mark.timeout(120)
AUDIO_ONLY = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=canned\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\n"
              "a=rtpmap:8 PCMA/8000\r\na=control:trackID=0\r\n")


def _with_login(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


async def test_a_refused_login_says_wrong_user_or_password(demo_media: dict[str, Path]) -> None:
    server = DemoRtspServer({"vending": demo_media["vending"]}, auth="digest:admin:right-pass-1")
    server.start()
    try:
        result = await probe_camera(_with_login(server.url("vending"), "admin", "wrong-secret-9"))
        assert not result.ok and result.kind == "auth" and result.error.startswith("用户名或密码错误"), result
        assert "401" in result.error and "wrong-secret-9" not in str(result.to_dict())
        result = await probe_camera(_with_login(server.url("vending"), "admin", "right-pass-1"))
        assert result.ok and result.transport == "tcp"
    finally:
        server.stop()


async def test_a_udp_only_server_refuses_tcp_with_461_and_auto_plays_it_over_udp(demo_media) -> None:
    server = DemoRtspServer({"vending": demo_media["vending"]}, protocols="udp")
    server.start()
    try:
        result = await probe_camera(server.url("vending"), transport="auto")
        assert result.ok and result.transport == "udp" and (result.width, result.height) == (1280, 720), result
        # (in this order: GStreamer's server answers 503 for a while after a refused SETUP on its shared media)
        result = await probe_camera(server.url("vending"), transport="tcp")
        assert not result.ok and result.kind == "transport" and "461" in result.error, result
        assert "不支持所选的传输方式" in result.error
    finally:
        server.stop()


async def test_a_stream_without_video_says_so() -> None:
    async with CannedCamera(AUDIO_ONLY) as cam:
        result = await probe_camera(cam.url("/live"))
    assert not result.ok and result.kind == "no_video" and "没有可用的视频轨" in result.error, result


async def test_a_server_that_never_answers_times_out() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection (kernel backlog) and never says a word
    try:
        port = silent.getsockname()[1]
        started = asyncio.get_running_loop().time()
        result = await probe_camera(f"rtsp://127.0.0.1:{port}/x", open_timeout_s=2)
        assert not result.ok and result.kind == "timeout" and "超时" in result.error, result
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        silent.close()
