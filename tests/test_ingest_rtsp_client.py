"""Our RTSP client (video_ingest.rtsp) against real servers: the demo camera server with Digest and Basic
authentication as IP cameras ask for it, and an HTTP server that is not a camera at all."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from demo.server import DemoRtspServer
from video_ingest import h26x
from video_ingest.rtp import RtpAccessUnit
from video_ingest.rtsp import RtspError, RtspSession, split_credentials
from video_ingest.service import IngestService

PASSWORD = "p@ss:w0rd"
URL_PASSWORD = "p%40ss%3Aw0rd"


@pytest.fixture(scope="module", params=["digest", "basic"])
def camera_with_login(request: pytest.FixtureRequest, demo_media: dict[str, Path]):  # type: ignore[no-untyped-def]
    server = DemoRtspServer({"vending": demo_media["vending"]}, auth=f"{request.param}:admin:{PASSWORD}")
    server.start()
    yield server
    server.stop()


def with_login(server: DemoRtspServer, user: str, password: str) -> str:
    scheme, rest = server.url("vending").split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


async def first_keyframe(url: str) -> tuple[RtspSession, RtpAccessUnit]:
    got: asyncio.Future[RtpAccessUnit] = asyncio.get_running_loop().create_future()

    def on_unit(unit: RtpAccessUnit) -> None:
        if unit.keyframe and not got.done():
            got.set_result(unit)

    session = RtspSession(url, on_unit)
    try:
        await asyncio.wait_for(session.open(), 10)
        return session, await asyncio.wait_for(got, 10)
    except BaseException:
        session.close()
        raise


async def test_credentials_in_the_url_open_the_stream(camera_with_login: DemoRtspServer) -> None:
    session, unit = await first_keyframe(with_login(camera_with_login, "admin", URL_PASSWORD))
    try:
        assert session.track is not None and session.track.codec == "h264"
        sps = next(n for n in unit.nals if h26x.h264_nal_type(n) == h26x.H264_NAL_SPS)
        info = h26x.parse_h264_sps(sps)
        assert (info.width, info.height) == (1280, 720)
        assert "p@ss" not in session.url and "admin" not in session.url  # requests carry no user info
    finally:
        session.close()


async def test_wrong_or_missing_credentials_say_so(camera_with_login: DemoRtspServer) -> None:
    with pytest.raises(RtspError, match=r"401 Unauthorized \(credentials were refused"):
        await first_keyframe(with_login(camera_with_login, "admin", "nope"))
    with pytest.raises(RtspError, match=r"401 Unauthorized \(the camera needs credentials"):
        await first_keyframe(camera_with_login.url("vending"))


async def test_a_refused_login_shows_on_the_camera_status_without_the_password(
        camera_with_login: DemoRtspServer) -> None:
    service = IngestService({"cam": with_login(camera_with_login, "admin", "s3cret-wrong")}, open_timeout_s=3,
                            sample_keyframes=False)
    await service.start()
    try:
        for _ in range(200):
            status = service.status("cam")
            if status.error:
                break
            await asyncio.sleep(0.05)
        assert status.error and "401 Unauthorized" in status.error, status
        assert "s3cret" not in repr(status)
    finally:
        await service.stop()


async def test_an_http_server_is_not_a_camera() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with pytest.raises(RtspError, match="does not speak RTSP"):
            await first_keyframe(f"rtsp://127.0.0.1:{port}/x")
    finally:
        await runner.cleanup()


async def test_binary_garbage_from_the_server_is_a_clear_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(bytes(range(256)) * 4)
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(RtspError, match="neither RTSP nor interleaved RTP"):
            await first_keyframe(f"rtsp://127.0.0.1:{port}/x")
    finally:
        server.close()
        await server.wait_closed()


def test_urls_are_checked_and_credentials_split_off() -> None:
    assert split_credentials("rtsp://a%40b:p%3Aw@10.0.0.5:8554/Streaming/101?x=1") == \
        ("rtsp://10.0.0.5:8554/Streaming/101?x=1", "a@b", "p:w")
    assert split_credentials("rtsp://cam/") == ("rtsp://cam/", None, None)
    assert split_credentials("rtsps://u:p@cam/x")[0] == "rtsps://cam/x"
    with pytest.raises(RtspError, match="only rtsp:// and rtsps:// URLs"):
        split_credentials("http://cam/")
    with pytest.raises(RtspError, match="no host"):
        split_credentials("rtsp:///x")


async def test_a_closed_port_is_named_in_the_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RtspError, match=f"cannot connect to 127.0.0.1:{port}: Connection refused"):
        await first_keyframe(f"rtsp://127.0.0.1:{port}/x")


async def test_rtsps_camera_over_tls(demo_media: dict[str, Path], tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=camera.local"], check=True, capture_output=True)
    pem = tmp_path / "camera.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    server = DemoRtspServer({"vending": demo_media["vending"]}, auth=f"digest:admin:{PASSWORD}", tls_pem=pem)
    server.start()
    try:
        url = with_login(server, "admin", URL_PASSWORD)
        assert url.startswith("rtsps://")
        session, unit = await first_keyframe(url)
        session.close()
        assert unit.keyframe
        with pytest.raises(RtspError):  # plain RTSP to a TLS port is no camera stream
            await first_keyframe(url.replace("rtsps://", "rtsp://"))
    finally:
        server.stop()


async def test_the_session_is_kept_alive_within_the_server_timeout(demo_media: dict[str, Path]) -> None:
    server = DemoRtspServer({"vending": demo_media["vending"]}, session_timeout_s=2)
    server.start()
    frames = 0

    def count(unit: RtpAccessUnit) -> None:
        nonlocal frames
        frames += 1

    session = RtspSession(server.url("vending"), count)
    try:
        await asyncio.wait_for(session.open(), 10)
        await asyncio.sleep(4.5)  # past twice the timeout: one keepalive a second
        assert session.keepalives >= 3 and not session.done
        before = frames
        await asyncio.sleep(0.5)
        assert frames > before  # still streaming
    finally:
        session.close()
        server.stop()
