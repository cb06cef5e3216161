"""Every way a camera's stream can stall or end leads to a prompt, logged reconnect — and a refused login does not.

Real servers (the GStreamer demo server: killed, or ending a non-looping stream with RTCP BYE; with a login that
our wrong password does not pass) and a scripted camera for what GStreamer does not do on request (a TEARDOWN or
ANNOUNCE of the server's own, 454 on the keepalive, silence, an abrupt close, RTCP on channel 1 and data on
channels nobody set up, lower-case headers, Digest variants).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from demo.server import DemoRtspServer
from messages.camera import CameraStatus
from tests.canned_rtsp import RTCP_BYE, RTCP_SR, CannedCamera, Reply, Request, interleaved
from tests.waiting import eventually
from video_ingest.health import LoginPolicy
from video_ingest.rtp import RtpAccessUnit
from video_ingest.rtsp import DigestAuth, RtspAuthError, RtspError, RtspSession, RtspStreamEnded
from video_ingest.source import AUTH_ERROR, CameraSource, SourceOptions

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of 320x240 H.264 at 25 fps (keyframe every second), for a server that plays it once and ends."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, 25), Fraction(25, 1)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency",
                   "x264-params": "keyint=25:min-keyint=25:scenecut=0:bframes=0:repeat-headers=1"}
    data = b""
    for i in range(50):
        img = np.full((240, 320, 3), 90, np.uint8)
        img[:, (i * 7) % 320] = 250
        frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        data += b"".join(bytes(p) for p in ctx.encode(frame))
    data += b"".join(bytes(p) for p in ctx.encode(None))
    path = tmp_path_factory.mktemp("ends") / "short.h264"
    path.write_bytes(data)
    return path


class Watched:
    """A CameraSource with its status updates recorded."""

    def __init__(self, url: str, **kwargs: object) -> None:
        self.updates: list[CameraStatus] = []
        self.source = CameraSource("cam", url, on_status=self.updates.append, **kwargs)  # type: ignore[arg-type]

    def first(self, predicate, after: int = 0) -> CameraStatus | None:  # type: ignore[no-untyped-def]
        return next((u for u in self.updates[after:] if predicate(u)), None)


async def play_until_end(url: str, transport: str = "auto",
                         timeout: float = 15) -> tuple[RtspSession, list, BaseException]:
    units: list[RtpAccessUnit] = []
    session = RtspSession(url, units.append, transport=transport)
    try:
        await asyncio.wait_for(session.open(), 10)
        with pytest.raises(RtspError) as ended:
            await asyncio.wait_for(session.wait_closed(), timeout)
    finally:
        session.close()
    return session, units, ended.value


# -- real servers ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_rtcp_bye_at_the_end_of_a_stream_ends_it_at_once(short_clip: Path, transport: str) -> None:
    server = DemoRtspServer({"cam": short_clip}, once=True)
    server.start()
    try:
        started = time.monotonic()
        session, units, ended = await play_until_end(server.url("cam"), transport)
        took = time.monotonic() - started
    finally:
        server.stop()
    assert isinstance(ended, RtspStreamEnded) and "RTCP BYE" in str(ended)
    assert session.ended_by == "RTCP BYE" and session.transport == transport
    assert len(units) >= 45  # the whole clip (50 frames) came first
    assert took < 4.5  # 2 s of video: the end is seen at once, not after a read timeout


async def test_a_stream_that_ends_is_reconnected_promptly_and_logged(short_clip: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    server = DemoRtspServer({"cam": short_clip}, once=True)
    server.start()
    cam = Watched(server.url("cam"), read_timeout_s=5.0)
    caplog.set_level(logging.INFO, logger="citywall.ingest.source")
    cam.source.start()
    try:
        await eventually(lambda: _async(cam.first(lambda u: u.state == "online")), timeout=15, what="online")
        online_at = time.monotonic()
        ended = await eventually(lambda: _async(cam.first(lambda u: u.error and "RTCP BYE" in u.error)),
                                 timeout=15, what="the end of the stream")
        seen_after = time.monotonic() - online_at
        assert ended.state == "reconnecting" and ended.retry_at is not None and ended.retry_at - ended.at <= 1.5
        assert seen_after < 4.5  # a 2 s clip; the 5 s read timeout played no part
        # ...and it is pulled again: the next run of the clip comes online with a reconnect counted
        back = await eventually(lambda: _async(cam.first(lambda u: u.state == "online" and u.reconnects >= 1)),
                                timeout=15, what="online again")
        assert back.reconnects >= 1
        assert any("RTCP BYE" in r.getMessage() and "retrying in" in r.getMessage() for r in caplog.records)
    finally:
        await cam.source.stop()
        server.stop()


async def test_a_killed_server_is_noticed_at_once(demo_media: dict[str, Path]) -> None:
    server = DemoRtspServer({"vending": demo_media["vending"]})
    server.start()
    cam = Watched(server.url("vending"), read_timeout_s=10.0)  # long: the end must not wait for it
    cam.source.start()
    try:
        await eventually(lambda: _async(cam.first(lambda u: u.state == "online")), timeout=20, what="online")
        n = len(cam.updates)
        killed = time.monotonic()
        server.stop()
        down = await eventually(lambda: _async(cam.first(lambda u: u.state != "online", n)), timeout=10,
                                what="the outage")
        assert time.monotonic() - killed < 5.0  # stop() itself waits for the process to exit
        assert "closed the connection" in (down.error or "") or "connection lost" in (down.error or ""), down
        assert down.state == "reconnecting" and down.retry_at is not None
    finally:
        await cam.source.stop()
        server.stop()


async def test_a_wrong_password_is_tried_rarely_and_shows_on_the_status(demo_media: dict[str, Path]) -> None:
    server = DemoRtspServer({"vending": demo_media["vending"]}, auth="digest:admin:right-one")
    server.start()
    policy = LoginPolicy(backoff_s=(0.6, 1.2), max_attempts=2, window_s=3.0)
    scheme, rest = server.url("vending").split("://", 1)
    cam = Watched(f"{scheme}://admin:Wr0ng-pass@{rest}", options=SourceOptions(login=policy))
    cam.source.start()
    try:
        started = time.monotonic()
        await asyncio.sleep(4.2)
        refused = [u for u in cam.updates if u.auth_failed]
        assert refused, cam.updates
        last = refused[-1]
        assert last.state == "offline" and last.error and last.error.startswith(AUTH_ERROR)
        assert "401 Unauthorized" in last.error and "Wr0ng" not in repr(cam.updates)
        assert last.retry_at is not None and last.retry_at > last.at + 0.5
        # t=0 refused; t≈0.6 refused; the third waits for the 3 s window: t≈3.0 — never more than 2 in 3 s
        attempts = cam.source.login.attempts_refused
        assert 2 <= attempts <= 3, attempts
        assert time.monotonic() - started < 6
        assert cam.source.status().auth_failed
    finally:
        await cam.source.stop()
        server.stop()


# -- canned exchanges ------------------------------------------------------------------------------------------

async def opened(cam: CannedCamera, path: str = "/live", **kwargs: object) -> tuple[RtspSession, list]:
    units: list[RtpAccessUnit] = []
    session = RtspSession(cam.url(path, **kwargs), units.append)  # type: ignore[arg-type]
    await asyncio.wait_for(session.open(), 10)
    await eventually(lambda: _async(len(units) >= 3), timeout=10, what="frames")
    return session, units


@pytest.mark.parametrize("method", ["TEARDOWN", "ANNOUNCE", "REDIRECT"])
async def test_a_server_request_that_ends_the_stream(method: str) -> None:
    async with CannedCamera() as cam:
        session, units = await opened(cam)
        try:
            cam.request_to_client(method, cam.url("/live"), cseq=7)
            with pytest.raises(RtspStreamEnded, match=f"the server sent {method} mid-stream"):
                await asyncio.wait_for(session.wait_closed(), 3)
            assert session.ended_by == method and session.server_requests == 1
            await eventually(lambda: _async(cam.answers), timeout=3, what="the answer")
            assert cam.answers == [("RTSP/1.0 200 OK", "7")]
        finally:
            session.close()


async def test_server_requests_that_do_not_end_the_stream_are_answered() -> None:
    async with CannedCamera() as cam:
        session, units = await opened(cam)
        try:
            cam.request_to_client("GET_PARAMETER", cam.url("/live"), cseq=3)
            cam.request_to_client("SET_PARAMETER", cam.url("/live"), cseq=4)
            cam.request_to_client("FROBNICATE", cam.url("/live"), cseq=5)
            cam.request_to_client("PLAY_NOTIFY", cam.url("/live"), cseq=6, headers={"Notify-Reason": "scale-change"})
            n = len(units)
            await eventually(lambda: _async(session.server_requests == 4 and len(units) > n + 5), timeout=5,
                             what="the stream to go on")
            assert not session.done
            assert sorted(cam.answers) == [("RTSP/1.0 200 OK", "3"), ("RTSP/1.0 200 OK", "4"),
                                           ("RTSP/1.0 200 OK", "6"), ("RTSP/1.0 501 Not Implemented", "5")]
            cam.request_to_client("PLAY_NOTIFY", cam.url("/live"), cseq=8,
                                  headers={"notify-reason": "end-of-stream"})
            with pytest.raises(RtspStreamEnded, match="end-of-stream"):
                await asyncio.wait_for(session.wait_closed(), 3)
        finally:
            session.close()


async def test_rtcp_and_unknown_channels_are_read_past_and_bye_ends() -> None:
    async with CannedCamera() as cam:
        session, units = await opened(cam)
        try:
            cam.send(interleaved(1, RTCP_SR) + interleaved(5, b"metadata nobody set up") + interleaved(2, RTCP_BYE))
            n = len(units)
            await eventually(lambda: _async(len(units) > n + 3), timeout=5, what="frames after RTCP")
            assert not session.done  # an SR, a BYE on a channel that is not our RTCP, unknown data: no end
            cam.send(interleaved(1, RTCP_SR + RTCP_BYE))  # compound: SR then BYE
            with pytest.raises(RtspStreamEnded, match="RTCP BYE"):
                await asyncio.wait_for(session.wait_closed(), 3)
        finally:
            session.close()


async def test_454_on_the_keepalive_ends_the_stream() -> None:
    def handler(request: Request, cam: CannedCamera) -> Reply | None:
        if request.method == "SETUP":
            return Reply(headers={"transport": request.headers["transport"], "session": "77;timeout=2"})
        if request.method == "GET_PARAMETER":
            return Reply(454, "Session Not Found")
        return None

    async with CannedCamera(handler=handler) as cam:
        session, _ = await opened(cam)
        try:
            started = time.monotonic()
            with pytest.raises(RtspStreamEnded, match="454 Session Not Found"):
                await asyncio.wait_for(session.wait_closed(), 5)
            assert time.monotonic() - started < 2.5  # the keepalive runs at half the 2 s session timeout
        finally:
            session.close()


async def test_an_abrupt_close_and_silence_each_reconnect() -> None:
    async with CannedCamera() as cam:
        session, _ = await opened(cam)
        try:
            assert cam.writer is not None
            cam.writer.transport.abort()
            with pytest.raises(RtspError, match="closed the connection|connection lost"):
                await asyncio.wait_for(session.wait_closed(), 3)
        finally:
            session.close()
        # silence: the source's read timeout ends it (no usable stream here, so watch the error text)
        cam.streaming = False
        src = Watched(cam.url("/live"), read_timeout_s=1.0, open_timeout_s=5.0)
        src.source.start()
        try:
            timed_out = await eventually(lambda: _async(src.first(lambda u: u.error and "timed out" in u.error)),
                                         timeout=10, what="the read timeout")
            assert "no answer to read within 1 s" in (timed_out.error or "")
            await eventually(lambda: _async(cam.connections >= 3), timeout=10, what="reconnects")
        finally:
            await src.source.stop()


# -- logins on canned exchanges -------------------------------------------------------------------------------

def digest_camera(*, stale_once: bool = False, qop: str = 'qop="auth"', algorithm: str = "", password: str = "pw"):
    """A handler that wants Digest (realm "cam", nonce n1; n2 after a stale one) and checks the response."""
    state = {"stale_sent": False}

    def handler(request: Request, cam: CannedCamera) -> Reply | None:
        nonce = "n2" if state["stale_sent"] else "n1"
        challenge = f'Digest realm="cam", nonce="{nonce}", {qop}{algorithm}'
        auth = request.headers.get("authorization")
        if not auth:
            return Reply(401, "Unauthorized", {"WWW-Authenticate": challenge})
        fields = dict(part.strip().split("=", 1) for part in auth[7:].split(","))
        fields = {k: v.strip('"') for k, v in fields.items()}
        if stale_once and not state["stale_sent"]:
            state["stale_sent"] = True
            return Reply(401, "Unauthorized", {"www-authenticate": challenge.replace("n1", "n2") + ", stale=TRUE"})
        ha1 = hashlib.md5(f"admin:cam:{password}".encode()).hexdigest()
        if fields.get("algorithm", "").upper() == "MD5-SESS":
            ha1 = hashlib.md5(f"{ha1}:{fields['nonce']}:{fields['cnonce']}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{request.method}:{fields['uri']}".encode()).hexdigest()
        if "qop" in fields:
            expected = hashlib.md5(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}".encode())
        else:
            expected = hashlib.md5(f"{ha1}:{fields['nonce']}:{ha2}".encode())
        if fields["response"] != expected.hexdigest() or fields["nonce"] != nonce:
            return Reply(401, "Unauthorized", {"WWW-Authenticate": challenge})
        return None

    return handler


@pytest.mark.parametrize("qop,algorithm", [('qop="auth"', ""), ("qop=auth", ""), ('qop="auth,auth-int"', ""),
                                           ("", ""), ('qop="auth"', ", algorithm=MD5"),
                                           ('qop="auth"', ", algorithm=MD5-sess"), ("", ", algorithm=md5")])
async def test_digest_variants_log_in(qop: str, algorithm: str) -> None:
    async with CannedCamera(handler=digest_camera(qop=qop, algorithm=algorithm)) as cam:
        session, units = await opened(cam, user="admin", password="pw")
        session.close()
        assert units


async def test_a_stale_nonce_is_answered_again_but_refused_credentials_never_are() -> None:
    async with CannedCamera(handler=digest_camera(stale_once=True)) as cam:
        session, _ = await opened(cam, user="admin", password="pw")
        session.close()
    async with CannedCamera(handler=digest_camera(password="other")) as cam:
        session = RtspSession(cam.url("/live", "admin", "pw"), lambda u: None)
        try:
            with pytest.raises(RtspAuthError, match=r"OPTIONS: 401 Unauthorized \(credentials were refused\)"):
                await asyncio.wait_for(session.open(), 10)
        finally:
            session.close()
        # one request without credentials (to get the challenge), one with them: a single refused login
        assert [bool(r.headers.get("authorization")) for r in cam.requests] == [False, True]


async def test_403_is_an_authentication_error() -> None:
    async with CannedCamera(handler=lambda r, c: Reply(403, "Forbidden") if r.method == "DESCRIBE" else None) as cam:
        session = RtspSession(cam.url("/live", "admin", "pw"), lambda u: None)
        try:
            with pytest.raises(RtspAuthError, match="DESCRIBE: 403 Forbidden") as err:
                await asyncio.wait_for(session.open(), 10)
            assert err.value.status == 403
        finally:
            session.close()


def test_digest_header_is_computed_as_rfc_2617_says() -> None:
    # RFC 2617 3.5's example, with the method and URI of an RTSP DESCRIBE
    auth = DigestAuth("Mufasa", "Circle Of Life", cnonce=lambda: "0a4f113b")
    assert auth.challenge(['Basic realm="x"', 'Digest realm="testrealm@host.com", qop="auth,auth-int", '
                           'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'])
    header = auth.header("GET", "/dir/index.html")
    assert header is not None and 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert not DigestAuth(None, None).challenge(['Digest realm="a", nonce="b"'])  # no user: nothing to answer
    sha_only = DigestAuth("u", "p")
    assert not sha_only.challenge(['Digest realm="a", nonce="b", algorithm=SHA-256'])
    assert DigestAuth.is_stale(['Digest realm="a", nonce="c", stale=true'])
    assert not DigestAuth.is_stale(['Digest realm="a", nonce="c"'])


async def _async(value):  # type: ignore[no-untyped-def]
    return value


@pytest.mark.slow
async def test_a_nonce_that_expires_mid_session_is_renewed_on_the_keepalive() -> None:
    seen: list[str] = []

    def handler(request: Request, cam: CannedCamera) -> Reply | None:
        auth = request.headers.get("authorization", "")
        if request.method == "SETUP":
            return Reply(headers={"transport": request.headers["transport"], "session": "5;timeout=2"})
        if request.method == "GET_PARAMETER":
            seen.append(auth)
            if 'nonce="n1"' in auth:  # the camera's nonce lifetime ran out
                return Reply(401, "Unauthorized", {"WWW-Authenticate": 'Digest realm="cam", nonce="n2", stale=true'})
            return Reply() if 'nonce="n2"' in auth else Reply(454, "Session Not Found")
        if not auth:
            return Reply(401, "Unauthorized", {"WWW-Authenticate": 'Digest realm="cam", nonce="n1"'})
        return None

    async with CannedCamera(handler=handler) as cam:
        session, _ = await opened(cam, user="admin", password="pw")
        try:
            await eventually(lambda: _async(len(seen) >= 3), timeout=10, what="three keepalives")
            assert 'nonce="n1"' in seen[0] and all('nonce="n2"' in s for s in seen[1:])
            assert not session.done
        finally:
            session.close()
