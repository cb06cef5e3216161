"""“测试连接”: open a camera URL with our RTSP client and say what it sends, or exactly why not, in Chinese.

``probe_camera(url)`` runs DESCRIBE/SETUP/PLAY like ingest does (same client, same transport choice), reads
frames for up to ``watch_s`` seconds and reports codec, resolution, frame rate, the transport used and a JPEG
snapshot of the first keyframe. A failure becomes :class:`ProbeResult` ``ok=False`` with ``error`` (Chinese,
then the client's English detail) and ``kind`` (``auth``, ``refused``, ``timeout``, ``no_video``,
``transport``, ``not_found``, ``protocol``, ``bad_url``). Credentials never appear in the result.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import asdict, dataclass
from typing import Any

import av
import cv2

from config.settings import redact_url, url_problem
from video_ingest.frames import to_bgr
from video_ingest.rtp import RtpAccessUnit, SdpError
from video_ingest.rtsp import RtspAuthError, RtspError, RtspSession
from video_ingest.sampler import video_decoder

START_CODE = b"\x00\x00\x00\x01"


@dataclass
class ProbeResult:
    ok: bool
    url: str
    """The URL tried, password masked."""
    kind: str = ""
    error: str = ""
    codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    transport: str = ""
    frames: int = 0
    snapshot_jpeg: str = ""
    """``data:image/jpeg;base64,…`` of the first keyframe, empty when it could not be decoded."""
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify(exc: BaseException) -> tuple[str, str]:
    """``(kind, message)`` for a failure to open a stream: the Chinese reason first, then the client's detail."""
    detail = redact_url(str(exc))
    if isinstance(exc, RtspAuthError):
        return "auth", f"用户名或密码错误（摄像机拒绝登录 401/403）: {detail}"
    if isinstance(exc, SdpError):
        return "no_video", f"码流中没有可用的视频轨（只支持 H.264/H.265）: {detail}"
    if isinstance(exc, TimeoutError):
        return "timeout", "连接超时：摄像机在规定时间内没有应答（地址、端口或网络不通？）"
    if isinstance(exc, RtspError):
        status = exc.status
        if status == 461:
            return "transport", f"摄像机不支持所选的传输方式（461 Unsupported transport），请改用“自动”或 UDP: {detail}"
        if status == 404:
            return "not_found", f"路径不存在（404）：检查 URL 的路径/通道号: {detail}"
        if "cannot connect" in str(exc):
            why = "连接被拒绝（端口上没有 RTSP 服务）" if "refused" in str(exc).lower() else "无法连接"
            return "refused", f"{why}: {detail}"
        return "protocol", f"RTSP 交互失败: {detail}"
    return "protocol", f"打开码流失败: {detail}"


def _snapshot(codec: str, unit: RtpAccessUnit, parameter_sets: tuple[bytes, ...]) -> tuple[int, int, str]:
    """Decode one keyframe: its size and a JPEG data URL (empty when it does not decode)."""
    ctx = video_decoder(codec)
    data = b"".join(START_CODE + n for n in (*parameter_sets, *unit.nals))
    frames = []
    for packet in ctx.parse(data) or [av.Packet(data)]:
        frames += ctx.decode(packet)
    frames += ctx.decode(None)
    if not frames:
        return 0, 0, ""
    picture = frames[0]
    image = to_bgr(picture)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    shown = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode() if ok else ""
    return picture.width, picture.height, shown


async def probe_camera(url: str, *, transport: str = "auto", open_timeout_s: float = 8.0,
                       watch_s: float = 2.0) -> ProbeResult:
    """Open ``url`` and watch it for ``watch_s`` seconds (after the first keyframe); never raises."""
    started = time.monotonic()
    shown = redact_url(url)
    problem = url_problem(url)
    if problem or not url.lower().startswith(("rtsp://", "rtsps://")):
        reason = problem or "只能测试 rtsp:// 或 rtsps:// 地址"
        return ProbeResult(False, shown, kind="bad_url", error=f"地址无效: {reason}")
    units: list[tuple[float, RtpAccessUnit]] = []
    first_key = asyncio.Event()

    def on_unit(unit: RtpAccessUnit) -> None:
        if len(units) < 2000:
            units.append((time.monotonic(), unit))
        if unit.keyframe:
            first_key.set()

    session = RtspSession(url, on_unit, transport=transport)
    try:
        track = await asyncio.wait_for(session.open(), open_timeout_s)
        try:
            await asyncio.wait_for(first_key.wait(), max(open_timeout_s, 10.0))
        except TimeoutError:
            return ProbeResult(False, shown, kind="timeout", error="连接成功但 10 秒内没有收到关键帧（摄像机不出图？）",
                               codec=track.codec, transport=session.transport or "", frames=len(units),
                               elapsed_s=round(time.monotonic() - started, 2))
        await asyncio.sleep(watch_s)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the answer, with its reason
        kind, message = classify(exc)
        return ProbeResult(False, shown, kind=kind, error=message, elapsed_s=round(time.monotonic() - started, 2))
    finally:
        session.close()
    key_at = next(i for i, (_, u) in enumerate(units) if u.keyframe)
    seen = units[key_at:]
    span = seen[-1][0] - seen[0][0] if len(seen) > 1 else 0.0
    stamps = [u.timestamp for _, u in seen]
    ticks = (stamps[-1] - stamps[0]) % (1 << 32) if len(stamps) > 1 else 0
    fps = (len(seen) - 1) * track.clock_rate / ticks if ticks else ((len(seen) - 1) / span if span else 0.0)
    try:
        width, height, jpeg = await asyncio.to_thread(_snapshot, track.codec, seen[0][1], track.parameter_sets)
    except Exception:  # noqa: BLE001 - a picture that does not decode leaves the facts without a snapshot
        width, height, jpeg = 0, 0, ""
    return ProbeResult(True, shown, codec=track.codec, width=width, height=height, fps=round(fps, 1),
                       transport=session.transport or "", frames=len(units), snapshot_jpeg=jpeg,
                       elapsed_s=round(time.monotonic() - started, 2))
