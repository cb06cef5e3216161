"""The ``recording`` section: continuous or alarm recording per camera, retention, the disk quota, case holds.

Structure and ranges only; ``Settings`` checks that every camera named under ``cameras`` exists. Absent section →
recording off. See ``recording/README.md`` for what each key does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RecordingMode = Literal["continuous", "alarms", "off"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _off(value: object) -> object:
    """YAML reads a bare ``off`` as false: take it as the mode ``off`` it was meant to be."""
    return "off" if value is False else value


class RecordingOverride(_Strict):
    """One camera's own policy; a key left out takes the section's value."""

    mode: RecordingMode | None = None
    segment_s: float | None = Field(default=None, ge=2, le=60)
    retention_days: float | None = Field(default=None, gt=0, le=3650)
    pre_s: float | None = Field(default=None, ge=0, le=120)
    post_s: float | None = Field(default=None, ge=0, le=600)

    _mode = field_validator("mode", mode="before")(_off)


class RecordingSettings(_Strict):
    mode: RecordingMode = Field(default="off", description="continuous | alarms (pre_s before to post_s after "
                                                            "each alarm) | off")
    segment_s: float = Field(default=10.0, ge=2, le=60, description="segment length (rolled at the next keyframe)")
    pre_s: float = Field(default=10.0, ge=0, le=120, description="mode alarms: seconds kept before an alarm")
    post_s: float = Field(default=30.0, ge=0, le=600, description="mode alarms: seconds recorded after an alarm")
    retention_days: float = Field(default=7.0, gt=0, le=3650, description="recordings older than this are deleted")
    quota_gb: float | None = Field(default=None, gt=0, description="the whole store's limit; oldest deleted first")
    keep_after_close_days: float = Field(default=30.0, ge=0, le=3650,
                                         description="a case's recordings are kept this long after it closes")
    case_pre_s: float = Field(default=300.0, ge=0, le=86400, description="held before a case's report time")
    case_post_s: float = Field(default=300.0, ge=0, le=86400, description="held after a case's report time")
    max_export_s: float = Field(default=600.0, gt=0, le=86400, description="longest export")
    janitor_interval_s: float = Field(default=60.0, ge=1, le=3600, description="how often retention runs")
    writer_queue: int = Field(default=4096, ge=64, le=1_000_000, description="fragments waiting for the writer "
                                                                              "thread; beyond: dropped (a gap)")
    cameras: dict[str, RecordingOverride] = Field(default_factory=dict)

    _mode = field_validator("mode", mode="before")(_off)

    def unknown_cameras(self, known: set[str]) -> list[str]:
        return [f"recording.cameras: no such camera {cid!r}" for cid in self.cameras if cid not in known]
