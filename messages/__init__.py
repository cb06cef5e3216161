"""Every message that crosses a process boundary on the bus, one dataclass per kind, and the registry from stream to
type. The bottom layer: it imports nothing of the other rooms, and every room imports its messages from here.

| module | types | stream |
|---|---|---|
| ``alarm`` | ``Alarm`` (detectors) | ``alarms`` |
| ``deadline`` | ``CaseDeadlineAlarm`` (cases; ``event`` case_near_deadline / case_overdue) | ``case_deadlines`` |
| ``camera`` | ``CameraStatus`` (ingest) | ``camera_status`` |
| ``case_event`` | ``CaseEvent`` (cases) | ``case_events`` |
| ``review`` | ``AlarmRejected`` (the review desk) | ``alarm_rejections`` |
| ``guidance`` | ``BroadcastRecord``, ``GuidanceOutcome`` (voice guidance) | ``broadcasts``, ``guidance_outcomes`` |
| ``wall`` | ``WallScreenState``, ``WallAction`` (the wall's screens) | ``wall``, ``wall_actions`` |
| ``system`` | ``SystemAlarm`` (recording: disk full, write errors) | ``system_alarms`` |

``CODECS`` maps a stream to the function that turns an entry's JSON back into its message; the bus is given it
(``Bus.connect(..., codecs=CODECS)``) and puts the typed message on each entry it reads (``Entry.message``). Every
stream carries one type. Decoding keeps only the fields a type knows, so a newer writer may add fields without
breaking an older reader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from messages import streams
from messages.alarm import Alarm, AlarmPhase
from messages.camera import CameraState, CameraStatus
from messages.case_event import CaseEvent
from messages.deadline import (
    CASE_DEADLINE_EVENTS,
    CASE_NEAR_DEADLINE,
    CASE_OVERDUE,
    CaseDeadlineAlarm,
    is_legacy_deadline_alarm,
)
from messages.guidance import BroadcastRecord, GuidanceOutcome
from messages.review import AlarmRejected
from messages.system import SystemAlarm
from messages.wall import WallAction, WallScreenState

BusMessage = (Alarm | CaseDeadlineAlarm | CameraStatus | CaseEvent | AlarmRejected | BroadcastRecord | GuidanceOutcome
              | WallScreenState | WallAction | SystemAlarm)


CODECS: Mapping[str, Callable[[dict[str, Any]], BusMessage]] = MappingProxyType({
    streams.ALARMS: Alarm.from_dict,
    streams.CASE_DEADLINES: CaseDeadlineAlarm.from_dict,
    streams.CAMERA_STATUS: CameraStatus.from_dict,
    streams.CASE_EVENTS: CaseEvent.from_dict,
    streams.ALARM_REJECTIONS: AlarmRejected.from_dict,
    streams.BROADCASTS: BroadcastRecord.from_dict,
    streams.GUIDANCE_OUTCOMES: GuidanceOutcome.from_dict,
    streams.WALL: WallScreenState.from_dict,
    streams.WALL_ACTIONS: WallAction.from_dict,
    streams.SYSTEM_ALARMS: SystemAlarm.from_dict,
})
"""Stream name → decoder; every stream in ``streams.ALL`` has one."""


def decode(stream: str, data: dict[str, Any]) -> BusMessage:
    """The message of one entry of ``stream``: KeyError for a stream without a type, TypeError/ValueError for a
    payload that is not one."""
    return CODECS[stream](data)


__all__ = ["CASE_DEADLINE_EVENTS", "CASE_NEAR_DEADLINE", "CASE_OVERDUE", "CODECS", "Alarm", "AlarmPhase",
           "AlarmRejected", "BroadcastRecord", "BusMessage", "CameraState", "CameraStatus", "CaseDeadlineAlarm",
           "CaseEvent", "GuidanceOutcome", "SystemAlarm", "WallAction", "WallScreenState", "decode",
           "is_legacy_deadline_alarm",
           "streams"]
