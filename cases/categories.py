"""Case categories (部件/事件 大类+小类 codes per GB/T 30428.2 / CJ/T 214), their time limits per urgency, and
which detector event files into which category.

A category is identified by its ``ref`` ``"<kind>/<code>"`` (e.g. ``事件/0501``): the same four digits mean
different things for 部件 and 事件 (部件 0102 is a sewer cover, 事件 0102 is exposed rubbish).
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config import EventType

Kind = Literal["部件", "事件"]
Urgency = Literal["一般", "紧急"]
URGENCIES: tuple[Urgency, ...] = ("一般", "紧急")


class LimitUnit(str, Enum):
    """How a time limit is counted: on the work calendar (工作时/工作日) or in natural hours (自然时)."""

    WORK_HOURS = "work_hours"
    WORK_DAYS = "work_days"
    HOURS = "hours"

    @property
    def label(self) -> str:
        return {"work_hours": "工作时", "work_days": "工作日", "hours": "小时"}[self.value]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeLimit(_Strict):
    """处置时限: ``value`` units from dispatch to the deadline."""

    value: float = Field(gt=0, le=10_000)
    unit: LimitUnit

    def describe(self) -> str:
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{value} {self.unit.label}"


class Category(_Strict):
    """One filable category."""

    kind: Kind
    code: Annotated[str, Field(pattern=r"^\d{4}$", description="大类 (2 digits) + 小类 (2 digits)")]
    major: str = Field(min_length=1, description="大类 name, e.g. 街面秩序")
    name: str = Field(min_length=1, description="小类 name shown on cases, e.g. 无照经营游商")
    name_en: str = Field(min_length=1)
    default_urgency: Urgency = "一般"
    time_limits: dict[Urgency, TimeLimit]
    detector_events: list[EventType] = Field(default_factory=list, description="detector events filed here")

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.code}"

    @model_validator(mode="after")
    def _limits(self) -> Category:
        missing = [u for u in URGENCIES if u not in self.time_limits]
        if missing:
            raise ValueError(f"time_limits needs every urgency; missing: {', '.join(missing)}")
        return self

    def limit(self, urgency: Urgency | None = None) -> TimeLimit:
        return self.time_limits[urgency or self.default_urgency]


class CategoryCatalog(_Strict):
    """The categories file: every category, and a detector-event → category map that must be total."""

    standard: str = ""
    categories: list[Category] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CategoryCatalog:
        seen: dict[str, int] = {}
        owner: dict[EventType, str] = {}
        for i, cat in enumerate(self.categories):
            if cat.ref in seen:
                raise ValueError(f"categories[{i}]: {cat.ref} is already defined at categories[{seen[cat.ref]}]")
            seen[cat.ref] = i
            for event in cat.detector_events:
                if event in owner:
                    raise ValueError(
                        f"categories[{i}]: detector event {event.value!r} already files into {owner[event]}; "
                        "each event maps to exactly one category"
                    )
                owner[event] = cat.ref
        unmapped = [e.value for e in EventType if e not in owner]
        if unmapped:
            raise ValueError(f"detector events with no category (alarms could not be filed): {', '.join(unmapped)}")
        return self

    def get(self, ref: str) -> Category:
        """The category ``"<kind>/<code>"``; ``KeyError`` naming the known refs otherwise."""
        for cat in self.categories:
            if cat.ref == ref:
                return cat
        raise KeyError(f"unknown category {ref!r}; known: {', '.join(self.refs())}")

    def refs(self) -> list[str]:
        return [c.ref for c in self.categories]

    def for_event(self, event: str | EventType) -> Category:
        """The category a detector event files into; ``KeyError`` for an event nobody maps."""
        value = event.value if isinstance(event, EventType) else str(event)
        for cat in self.categories:
            if any(e.value == value for e in cat.detector_events):
                return cat
        raise KeyError(f"no category for detector event {value!r}")
