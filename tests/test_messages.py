"""The message package: every stream has a type, each type survives its own wire format, deadline alarms are on
their own stream (``alarms`` carries detector alarms only), newer fields are ignored by older readers, and a bus given
the codecs hands back typed messages (counting entries that are JSON but not a message)."""

from __future__ import annotations

import pytest

from messages import (
    CODECS,
    Alarm,
    AlarmRejected,
    BroadcastRecord,
    CameraStatus,
    CaseDeadlineAlarm,
    CaseEvent,
    GuidanceOutcome,
    SystemAlarm,
    WallAction,
    WallScreenState,
    decode,
    streams,
)

ALARM = Alarm(alarm_id="a-1", phase="raised", camera_id="cam-a", zone_id="pavement", event="vending",
              started_at=100.0, at=110.0, dwell_s=10.0, confidence=0.9, boxes=[(0.1, 0.2, 0.3, 0.4)],
              snapshot="cam-a/a-1.jpg", camera_name="解放路", zone_name="人行道", extra={"clip": "cam-a/a-1.mp4"})
DEADLINE = CaseDeadlineAlarm(
    alarm_id="case-c1-overdue-200", stage="overdue", event="case_overdue", phase="raised",
    at=201.0, started_at=200.0, case_id="c1", case_no="CW20260311-0001", title="无照经营游商", unit_id="u1",
    unit_name="湖滨中队", deadline_at=200.0, deadline_iso="2026-03-11T15:00:00+08:00", camera_id="cam-a",
    camera_name="解放路", zone_id="pavement", address="解放路88号", label="案件超期 CW20260311-0001")
EXAMPLES = [
    ALARM,
    DEADLINE,
    CameraStatus(camera_id="cam-a", state="online", at=1.0, fps=25.0, width=1280, height=720, codec="h264"),
    CaseEvent(case_id="c1", case_no="CW20260311-0001", action="filed", state="dispatched", at=2.0, actor="system",
              case={"id": "c1"}, note="自动立案"),
    AlarmRejected.of(ALARM, "monitor", "误报：光影/遮挡", 3.0),
    BroadcastRecord(at=4.0, source="manual", requested_by="leader", text="请勿摆摊", target="spk-1", status="played",
                    results=[{"speaker_id": "spk-1", "acked": True}], broadcast_id="b1"),
    GuidanceOutcome(alarm_id="a-1", camera_id="cam-a", event="vending", outcome="not_resolved", decided_at=5.0,
                    recheck_after_s=60.0, alarm=ALARM.to_dict()),
    WallScreenState(screen_id="main", version=3, at=6.0, screen={"layout": "2x2"}, origin="wall-1"),
    WallAction(at=7.0, username="duty", role="watch_officer", action="layout", screens=["main"], detail={"to": "3x3"}),
    SystemAlarm(alarm_id="recording_disk_full@up", kind="recording_disk_full", phase="raised", at=8.0, node="up",
                label="录像磁盘已满", detail="No space left on device", cameras=["cam-a"]),
]


def test_every_stream_has_one_decoder_and_every_type_names_a_known_stream() -> None:
    assert set(CODECS) == set(streams.ALL)
    assert {type(m).STREAM for m in EXAMPLES} == set(streams.ALL)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_each_message_survives_its_wire_format(message) -> None:
    assert decode(type(message).STREAM, message.to_dict()) == message


def test_deadline_alarms_have_their_own_stream_and_are_no_detector_alarm() -> None:
    assert DEADLINE.STREAM == streams.CASE_DEADLINES != ALARM.STREAM
    assert type(decode(streams.CASE_DEADLINES, DEADLINE.to_dict())) is CaseDeadlineAlarm
    with pytest.raises(TypeError, match="dwell_s"):   # never mistaken for a detection
        decode(streams.ALARMS, DEADLINE.to_dict())


def test_fields_a_reader_does_not_know_are_ignored() -> None:
    newer = {**ALARM.to_dict(), "track_id": 7, "model": {"name": "next"}}
    assert decode(streams.ALARMS, newer) == ALARM


@pytest.mark.parametrize("stream, data", [
    (streams.ALARMS, {"alarm_id": "a-1", "phase": "raised"}),        # required fields missing
    (streams.CASE_EVENTS, {"case_id": "c1"}),
    (streams.WALL, ["not", "an", "object"]),
    (streams.SYSTEM_ALARMS, {**EXAMPLES[-1].to_dict(), "kind": "coffee_empty"}),
    (streams.SYSTEM_ALARMS, {**EXAMPLES[-1].to_dict(), "phase": "maybe"}),
])
def test_a_payload_that_is_not_the_streams_message_is_refused(stream, data) -> None:
    with pytest.raises((TypeError, ValueError), match=r"\w"):
        decode(stream, data)


def test_a_stream_without_a_type_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="no_such_stream"):
        decode("no_such_stream", {})


async def test_a_bus_with_the_codecs_reads_typed_messages_and_counts_the_undecodable(bus) -> None:
    await bus.publish(ALARM)
    await bus.publish(DEADLINE)
    await bus.publish_raw(streams.ALARMS, {"alarm_id": "forged"})       # JSON, but no alarm
    newest_first = await bus.history(streams.ALARMS, count=10)
    assert [e.message for e in newest_first] == [None, ALARM]
    assert [e.message for e in await bus.history(streams.CASE_DEADLINES)] == [DEADLINE]
    assert newest_first[0].data == {"alarm_id": "forged"}               # kept for the reader to judge
    assert bus.stats()["undecodable"] == 1 and bus.stats()["malformed"] == 0
