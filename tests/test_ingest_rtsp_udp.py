"""RTP over UDP: servers that answer a TCP-interleaved SETUP with 461 Unsupported Transport (some NVRs and platforms;
GStreamer's server restricted to UDP does the same) stream live frames and into the keyframe sampler; packets are
put back in order within a small window; only the camera's datagrams count; RTCP receiver reports keep the session
alive."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from demo.server import DemoRtspServer
from tests.canned_rtsp import CannedCamera, Reply, Request, rtp
from tests.waiting import eventually
from video_ingest.rtp import Reorder, rtcp_has_bye, rtcp_receiver_report
from video_ingest.rtsp import RtspError, RtspSession
from video_ingest.service import IngestService
from video_ingest.source import SourceOptions

pytestmark = pytest.mark.timeout(90)


def packets(seqs: list[int]) -> list[bytes]:
    return [rtp(s, 0, bytes([1, s & 0xFF]), False) for s in seqs]


def seqs_of(out: list[bytes]) -> list[int]:
    return [(p[2] << 8) | p[3] for p in out]


@pytest.mark.parametrize("arrival,released,late", [
    ([1, 2, 3, 4], [1, 2, 3, 4], 0),
    ([1, 3, 2, 4], [1, 2, 3, 4], 0),  # one swapped pair
    ([1, 4, 3, 2, 5], [1, 2, 3, 4, 5], 0),
    ([1, 2, 2, 3], [1, 2, 3], 1),  # a duplicate
    ([1, 3, 4, 5, 6, 2], [1, 3, 4, 5, 6], 1),  # 2 came after the window gave it up (window 3)
    ([65534, 0, 65535, 1], [65534, 65535, 0, 1], 0),  # across the wrap
    ([10, 9000, 9001], [10, 9000, 9001], 0),  # a jump: the server restarted its sequence
])
def test_reorder_window(arrival: list[int], released: list[int], late: int) -> None:
    r = Reorder(window=3)
    out: list[bytes] = []
    for p in packets(arrival):
        out += r.push(p)
    assert seqs_of(out) == released
    assert r.late == late


def test_reorder_window_is_checked() -> None:
    with pytest.raises(ValueError, match="window"):
        Reorder(window=0)


def test_rtcp_helpers() -> None:
    rr = rtcp_receiver_report(0xDEADBEEF)
    assert rr == bytes([0x80, 201, 0, 1, 0xDE, 0xAD, 0xBE, 0xEF])
    assert not rtcp_has_bye(rr)
    assert rtcp_has_bye(rr + bytes([0x81, 203, 0, 1, 1, 2, 3, 4]))
    assert not rtcp_has_bye(b"\x00\x01\x02")  # garbage ends nothing


async def test_a_udp_only_server_streams_into_the_sampler(demo_media: dict[str, Path]) -> None:
    server = DemoRtspServer({"vending": demo_media["vending"]}, protocols="udp")
    server.start()
    service = IngestService({"auto": server.url("vending"), "tcp": server.url("vending")},
                            options={"tcp": SourceOptions(transport="tcp")}, open_timeout_s=5)
    await service.start()
    try:
        await eventually(lambda: _async(service.latest_frame("auto")), timeout=30, what="a sampled frame")
        status = await eventually(lambda: _async((s := service.status("auto")).fps > 5 and s), timeout=10,
                                  what="frames at the stream's rate")  # fps needs a few frames after the first
        assert status.state == "online" and status.extra["transport"] == "udp", status
        frame = service.latest_frame("auto")
        assert frame is not None and frame.image.shape[:2] == (720, 1280)
        refused = await eventually(lambda: _async(service.status("tcp").error), timeout=10, what="the tcp error")
        assert "SETUP: 461" in refused  # transport: tcp stays tcp, and says why it cannot play
    finally:
        await service.stop()
        server.stop()


async def test_udp_on_request_and_a_tcp_only_server(demo_media: dict[str, Path]) -> None:
    both = DemoRtspServer({"vending": demo_media["vending"]})
    tcp_only = DemoRtspServer({"vending": demo_media["vending"]}, protocols="tcp")
    both.start()
    tcp_only.start()
    try:
        units: list = []
        session = RtspSession(both.url("vending"), units.append, transport="udp")
        try:
            await asyncio.wait_for(session.open(), 10)
            await eventually(lambda: _async(len(units) > 10), timeout=10, what="frames over UDP")
            assert session.transport == "udp"
        finally:
            session.close()
        session = RtspSession(tcp_only.url("vending"), lambda u: None, transport="udp")
        try:
            with pytest.raises(RtspError, match="SETUP: 461"):
                await asyncio.wait_for(session.open(), 10)
        finally:
            session.close()
    finally:
        both.stop()
        tcp_only.stop()


class UdpCamera:
    """A canned camera that refuses TCP (461) and sends RTP over UDP from its own socket, in the order given."""

    def __init__(self) -> None:
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.bind(("127.0.0.1", 0))
        self.rtcp.setblocking(False)
        self.client: tuple[str, int] | None = None
        self.setups: list[str] = []

    def handler(self, request: Request, cam: CannedCamera) -> Reply | None:
        if request.method != "SETUP":
            return None
        transport = request.headers["transport"]
        self.setups.append(transport)
        if "TCP" in transport:
            return Reply(461, "Unsupported Transport")
        ports = transport.split("client_port=")[1].split(";")[0]
        self.client = ("127.0.0.1", int(ports.split("-")[0]))
        server_ports = f"{self.rtp.getsockname()[1]}-{self.rtcp.getsockname()[1]}"
        return Reply(headers={"Transport": f"{transport};server_port={server_ports}", "Session": "abc;timeout=60"})

    def reports(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.rtcp.recv(2048))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


async def test_udp_fallback_reorders_filters_and_reports() -> None:
    udp = UdpCamera()
    try:
        async with CannedCamera(handler=udp.handler) as cam:
            units: list = []
            session = RtspSession(cam.url("/live"), units.append)
            try:
                await asyncio.wait_for(session.open(), 10)
                assert session.transport == "udp" and udp.client is not None
                assert [("TCP" in s) for s in udp.setups] == [True, False]
                client_port = udp.client[1]
                assert client_port % 2 == 0  # RTP even, RTCP odd
                # frames of two packets each (a start fragment and the marked end), sent with pairs swapped
                order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8]
                for seq in order:
                    marker = seq % 2 == 1
                    payload = bytes([0x65, 1, 2, 3]) if not marker else bytes([0x65, 4])
                    udp.rtp.sendto(rtp(seq, (seq // 2) * 3600, payload, marker), udp.client)
                # a stranger sending to our port (another address) is not the camera
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
                    stranger.bind(("127.0.0.2", 0))
                    stranger.sendto(rtp(100, 0, bytes([0x65, 9]), True), udp.client)
                await eventually(lambda: _async(len(units) >= 5 and session.udp_foreign == 1), timeout=5,
                                 what="frames and the stranger's datagram")
                assert [u.timestamp for u in units] == [0, 3600, 7200, 10800, 14400]
                assert session.depacketizer is not None and session.depacketizer.lost_packets == 0
                assert session._reorder.reordered >= 3
                # the receiver report went to the server's RTCP port at once
                reports = await eventually(lambda: _async(udp.reports()), timeout=5, what="an RTCP report")
                assert reports[0][:2] == bytes([0x80, 201])
            finally:
                session.close()
    finally:
        udp.close()


async def _async(value):  # type: ignore[no-untyped-def]
    return value


async def test_udp_that_never_arrives_says_what_to_check() -> None:
    from video_ingest.source import CameraSource

    udp = UdpCamera()  # answers SETUP but sends nothing: as if a NAT or firewall dropped the camera's datagrams
    updates: list = []
    try:
        async with CannedCamera(handler=udp.handler) as cam:
            source = CameraSource("cam", cam.url("/live"), read_timeout_s=1.0, on_status=updates.append)
            source.start()
            try:
                failed = await eventually(lambda: _async(next((u for u in updates if u.error), None)), timeout=10,
                                          what="the timeout")
            finally:
                await source.stop()
        assert "no answer to read within 1 s (RTP over UDP: can the camera reach this host's UDP ports" in failed.error
    finally:
        udp.close()
