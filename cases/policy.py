"""The AI filing policy: which raised alarms become cases at once and which wait for a reviewer.

Pure: :func:`filing_decision` looks only at the alarm's event, confidence and dwell and at ``cases.auto_file``
(global thresholds with per-event overrides). At or above both thresholds the case worker files the alarm; below
either it is *held*: nothing is filed, the case worker keeps the alarm in the case store and it stays in the
review queue (``/review``) until a reviewer decides it; a confirm files it (``ReviewDesk.decide``, idempotent by
alarm id). The same function marks the queue's items, so the console and the worker never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from config import AutoFile


@dataclass(frozen=True)
class FilingDecision:
    """Whether one raised alarm is filed at once (``auto``) and why, with the thresholds that applied."""

    auto: bool
    min_confidence: float
    min_dwell_s: float
    reason: str
    """Chinese, shown to reviewers: what fell short, or that both thresholds were met."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def filing_decision(policy: AutoFile, event: str, confidence: float, dwell_s: float) -> FilingDecision:
    """Decide for an alarm of ``event`` seen with ``confidence`` (0..1) after ``dwell_s`` seconds."""
    min_confidence, min_dwell_s = policy.thresholds(event)
    short = []
    if confidence < min_confidence:
        short.append(f"置信度 {confidence:.2f} 低于 {min_confidence:.2f}")
    if dwell_s < min_dwell_s:
        short.append(f"持续 {dwell_s:.0f} 秒少于 {min_dwell_s:.0f} 秒")
    if short:
        return FilingDecision(False, min_confidence, min_dwell_s, "，".join(short) + "：待人工复核后立案")
    return FilingDecision(True, min_confidence, min_dwell_s, "达到自动立案阈值")


__all__ = ["FilingDecision", "filing_decision"]
