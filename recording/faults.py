"""Recording faults as wall alarms (pure): what the writer reports failing now, against what was last published,
becomes ``SystemAlarm`` messages — raised when a kind of fault starts (disk full / a write error), cleared when no
camera has it any more. The service publishes them on the bus (``system_alarms``); the wall shows them until
cleared."""

from __future__ import annotations

from collections.abc import Mapping

from messages.system import RECORDING_DISK_FULL, RECORDING_WRITE_ERROR, SystemAlarm

KINDS = {"disk_full": RECORDING_DISK_FULL, "write_error": RECORDING_WRITE_ERROR}
LABELS = {
    RECORDING_DISK_FULL: "录像磁盘已满，录像已停止，正在按保留策略删除旧录像 (Recording disk full: recording stopped)",
    RECORDING_WRITE_ERROR: "录像写入失败 (Recording cannot be written)",
}


def fault_alarms(published: Mapping[str, SystemAlarm], failing: Mapping[str, tuple[str, str]], *, node: str,
                 now: float) -> list[SystemAlarm]:
    """The messages to publish: ``published`` maps a message kind to its last raised alarm (kinds cleared are
    absent); ``failing`` is :meth:`recording.recorder.SegmentWriter.failing` (camera → (writer kind, what))."""
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for camera, (kind, what) in sorted(failing.items()):
        by_kind.setdefault(KINDS[kind], []).append((camera, what))
    out: list[SystemAlarm] = []
    for kind, items in by_kind.items():
        cameras = [c for c, _ in items]
        before = published.get(kind)
        if before is None or before.cameras != cameras:
            camera_text = "、".join(cameras[:8]) + (f" 等 {len(cameras)} 路" if len(cameras) > 8 else "")
            out.append(SystemAlarm(alarm_id=f"{kind}@{node}", kind=kind, phase="raised",
                                   at=before.at if before is not None else now, node=node,
                                   label=f"{LABELS[kind]} — {camera_text}", detail=items[0][1], cameras=cameras))
    for kind, before in published.items():
        if kind not in by_kind:
            out.append(SystemAlarm(alarm_id=before.alarm_id, kind=kind, phase="cleared", at=now, node=node,
                                   label=f"已恢复：{LABELS[kind]}", detail=before.detail, cameras=before.cameras))
    return out
