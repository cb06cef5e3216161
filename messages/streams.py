"""Bus stream names, defined once: every publisher and reader names a stream through these constants (a message
type's ``STREAM`` is one of them)."""

from __future__ import annotations

ALARMS = "alarms"
"""Detector alarms (``Alarm``): filed as cases, answered by voice guidance, shown on the wall."""
CASE_DEADLINES = "case_deadlines"
"""The case room's deadline alarms (``CaseDeadlineAlarm``): for the wall only (a card, the overdue pop-up)."""
CAMERA_STATUS = "camera_status"
CASE_EVENTS = "case_events"
ALARM_REJECTIONS = "alarm_rejections"
BROADCASTS = "broadcasts"
GUIDANCE_OUTCOMES = "guidance_outcomes"
WALL = "wall"
"""Screen states (``WallScreenState``), followed by every browser showing the screen."""
WALL_ACTIONS = "wall_actions"
SYSTEM_ALARMS = "system_alarms"
"""Faults of citywall itself (``SystemAlarm``: the recorder cannot write), shown on the wall until cleared."""

ALL = (ALARMS, CASE_DEADLINES, CAMERA_STATUS, CASE_EVENTS, ALARM_REJECTIONS, BROADCASTS, GUIDANCE_OUTCOMES, WALL,
       WALL_ACTIONS, SYSTEM_ALARMS)
