"""The RTSP client's I/O-free core on canned bytes: real cameras' quirks, fed whole and one byte at a time."""

from __future__ import annotations

import pytest

from tests.canned_rtsp import RTCP_BYE, RTCP_SR, interleaved, rtp
from video_ingest.rtsp_core import Response, RtspCore, RtspError, ServerRequest, parse_message


class Recorder:
    def __init__(self) -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.messages: list[Response | ServerRequest] = []
        self.core = RtspCore(self.rtp.append, self.rtcp.append, self.messages.append)


def feed(data: bytes, *, one_byte_at_a_time: bool, rtp_channel: int = 0) -> Recorder:
    r = Recorder()
    r.core.rtp_channel = rtp_channel
    if one_byte_at_a_time:
        for i in range(len(data)):
            r.core.receive(data[i:i + 1])
    else:
        r.core.receive(data)
    return r


P1, P2, P3 = (rtp(i, i * 3600, bytes([0x65, i]), True) for i in range(3))

# A camera mid-stream: RTP, an answer with lower-case headers and a body, RTCP SR on channel 1, audio on channel 2
# nobody set up, the server's own GET_PARAMETER (with a body), a 454 to our keepalive, more RTP.
STREAM = (
    interleaved(0, P1)
    + b"RTSP/1.0 200 OK\r\ncseq: 5\r\ncontent-type: text/parameters\r\ncontent-length: 12\r\n\r\nposition: 1\n"
    + interleaved(1, RTCP_SR)
    + interleaved(2, b"\x80\x08audio")
    + interleaved(0, P2)
    + b"GET_PARAMETER rtsp://10.0.0.5/live RTSP/1.0\r\nCSeq: 41\r\nSession: 9;timeout=60\r\nContent-Length: 0\r\n\r\n"
    + b"RTSP/1.0 454 Session Not Found\r\nCSeq: 6\r\n\r\n"
    + interleaved(0, P3)
)


@pytest.mark.parametrize("one_byte_at_a_time", [False, True])
def test_a_stream_with_every_kind_of_frame_and_message(one_byte_at_a_time: bool) -> None:
    r = feed(STREAM, one_byte_at_a_time=one_byte_at_a_time)
    assert r.rtp == [P1, P2, P3]
    assert r.rtcp == [RTCP_SR]
    assert r.core.skipped == 1
    ok, request, gone = r.messages
    assert isinstance(ok, Response) and (ok.status, ok.cseq, ok.body) == (200, 5, b"position: 1\n")
    assert ok.headers["content-type"] == "text/parameters"
    assert isinstance(request, ServerRequest)
    assert (request.method, request.url, request.cseq, request.headers["session"]) == (
        "GET_PARAMETER", "rtsp://10.0.0.5/live", 41, "9;timeout=60")
    assert isinstance(gone, Response) and (gone.status, gone.reason, gone.cseq) == (454, "Session Not Found", 6)


def test_rtp_on_the_channel_the_setup_answer_named() -> None:
    # interleaved=2-3 (a second track set up first by an NVR): RTP on 2, RTCP on 3, channel 0 is someone else's
    r = feed(interleaved(0, P1) + interleaved(2, P2) + interleaved(3, RTCP_BYE), one_byte_at_a_time=False,
             rtp_channel=2)
    assert (r.rtp, r.rtcp, r.core.skipped) == ([P2], [RTCP_BYE], 1)


def test_a_callback_can_stop_the_rest_of_a_chunk() -> None:
    r = Recorder()

    def bye(packet: bytes) -> None:
        r.rtcp.append(packet)
        r.core.stopped = True

    r.core.on_rtcp = bye
    r.core.receive(interleaved(0, P1) + interleaved(1, RTCP_BYE) + interleaved(0, P2))
    assert r.rtp == [P1] and r.rtcp == [RTCP_BYE]
    r.core.receive(interleaved(0, P3))
    assert r.rtp == [P1]  # a stopped core takes nothing more


@pytest.mark.parametrize("data,match", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "does not speak RTSP"),
    (bytes(range(256)), "neither RTSP nor interleaved RTP"),
    (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: lots\r\n\r\n", "bad Content-Length"),
    (b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n", "out of range"),
    (b"RTSP/1.0 OK fine\r\nCSeq: 1\r\n\r\n", "bad status line"),
])
def test_what_is_not_rtsp_is_named(data: bytes, match: str) -> None:
    with pytest.raises(RtspError, match=match):
        Recorder().core.receive(data)


def test_requests_and_answers_are_encoded() -> None:
    core = Recorder().core
    first = core.request("OPTIONS", "rtsp://cam/live")
    assert first == b"OPTIONS rtsp://cam/live RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: citywall\r\n\r\n"
    second = core.request("PLAY", "rtsp://cam/live/", {"Range": "npt=0.000-"}, authorization="Basic YTpi",
                          session="9")
    assert core.cseq == 2
    assert second == (b"PLAY rtsp://cam/live/ RTSP/1.0\r\nCSeq: 2\r\nUser-Agent: citywall\r\n"
                      b"Authorization: Basic YTpi\r\nSession: 9\r\nRange: npt=0.000-\r\n\r\n")
    assert RtspCore.answer(41, 200, "OK", "9") == b"RTSP/1.0 200 OK\r\nCSeq: 41\r\nSession: 9\r\n\r\n"
    assert RtspCore.answer(None, 501, "Not Implemented") == b"RTSP/1.0 501 Not Implemented\r\nCSeq: 0\r\n\r\n"


def test_challenges_are_collected_from_every_www_authenticate_header() -> None:
    head = ('RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nwww-authenticate: Digest realm="IP Camera(C1234)", '
            'nonce="a1b2", stale="FALSE"\r\nWWW-Authenticate: Basic realm="IP Camera(C1234)"')
    message = parse_message(head, b"")
    assert isinstance(message, Response) and message.status == 401
    assert [c.split(" ", 1)[0] for c in message.challenges] == ["Digest", "Basic"]
