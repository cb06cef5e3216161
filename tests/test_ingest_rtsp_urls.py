"""SETUP and PLAY URLs from real cameras' DESCRIBE answers (RFC 2326 C.1.1, as FFmpeg and live555 build them).

Canned SDPs in the shapes Hikvision, Dahua and Uniview cameras send (session-level ``a=control``, absolute track
controls with the camera's own address and a query, relative ``trackID=`` controls under a query-string URL,
``*``), then the same exchanges over a real socket against a scripted camera that answers only the URL a real one
accepts (live555 answers anything else ``404 Stream Not Found``).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.canned_rtsp import CannedCamera, Reply, Request
from video_ingest.rtp import control_url, parse_sdp
from video_ingest.rtsp import RtspError, RtspSession, content_base

pytestmark = pytest.mark.timeout(60)

HIKVISION_SDP = """v=0
o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64
s=Media Presentation
e=NONE
b=AS:5050
t=0 0
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast
m=video 0 RTP/AVP 96
b=AS:5000
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKp2oHgCJ+WbgICAoAAADAAgAAAMBlCA=,aO48gA==
a=Media_header:MEDIAINFO=494D4B48010100000400000100000000000000000000000000000000000000000000000000000000;
a=appversion:1.0
"""  # noqa: E501 (a camera's SDP as it sent it)

DAHUA_SDP = """v=0
o=- 2251938202 2251938202 IN IP4 0.0.0.0
s=Media Server
c=IN IP4 0.0.0.0
t=0 0
a=control:*
a=packetization-supported:DH
a=rtppayload-supported:DH
a=range:npt=now-
m=video 0 RTP/AVP 96
a=control:trackID=0
a=framerate:25.000000
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1;profile-level-id=4D001F;sprop-parameter-sets=Z00AH5WoFAFuQA==,aO48gA==
a=recvonly
m=audio 0 RTP/AVP 8
a=control:trackID=1
a=rtpmap:8 PCMA/8000
a=recvonly
"""

UNIVIEW_SDP = """v=0
o=- 1001 1 IN IP4 192.168.1.13
s=VCP IPC Realtime stream
t=0 0
a=control:rtsp://192.168.1.13/media/video1
m=video 0 RTP/AVP 105
c=IN IP4 192.168.1.13
a=rtpmap:105 H265/90000
a=fmtp:105 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwBdlZgJ;sprop-sps=QgEBAWAAAAMAkAAAAwAAAwBdoAKAgC0WWVmkkyvAQAAAAwBAAAAGQg==;sprop-pps=RAHBcrRiQA==
a=control:rtsp://192.168.1.13/media/video1/video
m=application 0 RTP/AVP 107
a=control:rtsp://192.168.1.13/media/video1/metadata
a=rtpmap:107 vnd.onvif.metadata/90000
"""  # noqa: E501 (a camera's SDP as it sent it)


@pytest.mark.parametrize("base,control,expected", [
    # relative controls are appended with one '/', whatever the base ends with (FFmpeg, live555, GStreamer)
    ("rtsp://cam/ch1", "trackID=1", "rtsp://cam/ch1/trackID=1"),
    ("rtsp://cam/ch1/", "trackID=1", "rtsp://cam/ch1/trackID=1"),
    # a query stays where it is: the track goes after it (what FFmpeg sends and Dahua/live555 accept)
    ("rtsp://cam/cam/realmonitor?channel=1&subtype=0", "trackID=0",
     "rtsp://cam/cam/realmonitor?channel=1&subtype=0/trackID=0"),
    ("rtsp://cam/cam/realmonitor?channel=1&subtype=0/", "trackID=0",
     "rtsp://cam/cam/realmonitor?channel=1&subtype=0/trackID=0"),
    # absolute controls are kept as they are (Hikvision: with the camera's address and a query)
    ("rtsp://10.0.0.5/Streaming/Channels/101", "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?x=1",
     "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?x=1"),
    ("rtsp://cam/a", "RTSP://other/b", "RTSP://other/b"),
    # '*' and nothing: the aggregate (the base itself)
    ("rtsp://cam/live?x=1", "*", "rtsp://cam/live?x=1"),
    ("rtsp://cam/live", "", "rtsp://cam/live"),
    # an absolute path replaces the base's path and query
    ("rtsp://cam:8554/a/b?q=1", "/video/track1", "rtsp://cam:8554/video/track1"),
])
def test_control_urls(base: str, control: str, expected: str) -> None:
    assert control_url(base, control) == expected


@pytest.mark.parametrize("headers,expected", [
    ({"content-base": "rtsp://cam/base/"}, "rtsp://cam/base/"),
    ({"content-base": "rtsp://admin:secret@cam/base/"}, "rtsp://cam/base/"),  # user info never kept
    ({"content-location": "rtsp://cam/loc/"}, "rtsp://cam/loc/"),
    ({"content-base": "rtsp://cam/base/", "content-location": "rtsp://cam/loc/"}, "rtsp://cam/base/"),
    ({"content-location": "other/"}, "rtsp://cam/live/other/"),  # relative: against the request URL
    ({"content-base": ""}, "rtsp://cam/live/x?y=1"),
    ({}, "rtsp://cam/live/x?y=1"),
    ({"content-base": "http://cam/"}, "rtsp://cam/live/x?y=1"),  # not an RTSP URL: ignored
])
def test_the_base_url_of_a_describe_answer(headers: dict[str, str], expected: str) -> None:
    assert content_base("rtsp://cam/live/x?y=1", headers) == expected


def test_hikvision_style_sdp_keeps_absolute_controls() -> None:
    track = parse_sdp(HIKVISION_SDP, "rtsp://10.1.2.3/Streaming/Channels/101/")
    assert track.codec == "h264" and track.payload_type == 96
    assert track.control == "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast"
    assert track.aggregate == "rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast"
    assert len(track.parameter_sets) == 2


@pytest.mark.parametrize("base", ["rtsp://10.1.2.5/cam/realmonitor?channel=1&subtype=0",
                                  "rtsp://10.1.2.5/cam/realmonitor?channel=1&subtype=0/"])
def test_dahua_style_sdp_under_a_query_string_url(base: str) -> None:
    track = parse_sdp(DAHUA_SDP, base)
    assert track.control == "rtsp://10.1.2.5/cam/realmonitor?channel=1&subtype=0/trackID=0"
    assert track.aggregate == base  # session control '*': PLAY goes to the base
    assert track.codec == "h264"


def test_uniview_style_hevc_sdp_with_a_metadata_track() -> None:
    track = parse_sdp(UNIVIEW_SDP, "rtsp://192.168.1.13/media/video1")
    assert track.codec == "hevc" and track.payload_type == 105
    assert track.control == "rtsp://192.168.1.13/media/video1/video"
    assert track.aggregate == "rtsp://192.168.1.13/media/video1"
    assert len(track.parameter_sets) == 3


DAHUA_PATH = "/cam/realmonitor?channel=1&subtype=0"


def strict_dahua(request: Request, camera: CannedCamera) -> Reply | None:
    """Answers SETUP only for the track URL a Dahua camera knows, like live555: 404 Stream Not Found otherwise."""
    if request.method == "SETUP" and request.url != camera.url(DAHUA_PATH + "/trackID=0"):
        return Reply(404, "Stream Not Found")
    return None


@pytest.mark.parametrize("content_base", [None, "{url}/"])
async def test_a_dahua_query_string_url_plays_over_a_real_socket(content_base: str | None) -> None:
    async with CannedCamera(DAHUA_SDP, handler=strict_dahua, content_base=content_base) as cam:
        units = []
        session = RtspSession(cam.url(DAHUA_PATH), units.append)
        try:
            await asyncio.wait_for(session.open(), 10)
            for _ in range(100):
                if units:
                    break
                await asyncio.sleep(0.05)
        finally:
            session.close()
        assert units, "no frame arrived"
        setup = next(r for r in cam.requests if r.method == "SETUP")
        play = next(r for r in cam.requests if r.method == "PLAY")
        assert setup.url == cam.url(DAHUA_PATH + "/trackID=0")
        assert play.url == cam.url(DAHUA_PATH) + ("/" if content_base else "")


async def test_a_setup_refused_names_the_step_and_status() -> None:
    async with CannedCamera(DAHUA_SDP, handler=lambda r, c: Reply(404, "Stream Not Found")
                            if r.method == "SETUP" else None) as cam:
        session = RtspSession(cam.url(DAHUA_PATH), lambda u: None)
        try:
            with pytest.raises(RtspError, match="SETUP: 404 Stream Not Found") as err:
                await asyncio.wait_for(session.open(), 10)
            assert err.value.status == 404
        finally:
            session.close()


async def test_a_query_string_url_against_the_real_gstreamer_server(demo_media) -> None:  # type: ignore[no-untyped-def]
    """A Dahua-style URL with a query against a real server: GStreamer maps the path to its mount, ignores the
    query, and answers DESCRIBE with a Content-Base without it — which, as RFC 2326 says, is the base we use."""
    from demo.server import DemoRtspServer

    server = DemoRtspServer({"vending": demo_media["vending"]}, aliases={"/cam/realmonitor": "vending"})
    server.start()
    units: list = []
    session = RtspSession(server.url("cam/realmonitor?channel=1&subtype=0"), units.append)
    try:
        track = await asyncio.wait_for(session.open(), 10)
        assert track.control == server.url("cam/realmonitor/stream=0")  # Content-Base wins over the request URL
        for _ in range(200):
            if len(units) >= 10:
                break
            await asyncio.sleep(0.05)
        assert len(units) >= 10 and any(u.keyframe for u in units)
    finally:
        session.close()
        server.stop()
