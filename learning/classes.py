"""The label classes a reviewer gives an object, in one fixed order: the dataset's class index is the position here.

Each class has a key in the review console (1–8), a Chinese and an English label, and the role it plays in the
detectors' class map (``config.settings.ObjectRole``), so a model trained on these labels plugs into the judgement
through the existing class map (``class_map()``). ``other`` has no role: it is labelled (the reviewer says "not one
of these") but a model's ``other`` boxes are ignored by the rules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LabelClass:
    id: str
    """Stable name, the trained model's class name."""
    zh: str
    en: str
    role: str | None
    """``ObjectRole`` value the detectors give this class (None: ignored by the rules)."""


CLASSES: tuple[LabelClass, ...] = (
    LabelClass("vendor_stall", "摊位", "Vendor stall", "stall"),
    LabelClass("goods", "货物", "Goods", "goods"),
    LabelClass("person", "行人", "Person", "person"),
    LabelClass("bike", "非机动车", "Bicycle / e-bike", "bike"),
    LabelClass("vehicle", "机动车", "Vehicle", "vehicle"),
    LabelClass("rubbish", "垃圾", "Rubbish", "garbage"),
    LabelClass("bin", "垃圾桶", "Bin", "bin"),
    LabelClass("other", "其他", "Other", None),
)
CLASS_IDS: tuple[str, ...] = tuple(c.id for c in CLASSES)
INDEX: dict[str, int] = {c.id: i for i, c in enumerate(CLASSES)}

JUDGEMENT_CLASS: dict[str, str] = {
    "person": "person", "bike": "bike", "vehicle": "vehicle", "goods": "goods", "stall": "vendor_stall",
    "rubbish": "rubbish",
}
"""The detectors' judgement kind (``detectors.judgement.Kind``) → the class a label starts from."""


def class_map(names: list[str] | tuple[str, ...] = CLASS_IDS) -> dict[str, str]:
    """The detectors' ``class_map`` for a model trained on ``names`` (model class name → role)."""
    roles = {c.id: c.role for c in CLASSES}
    return {n: roles[n] for n in names if roles.get(n)}  # type: ignore[misc]


def public() -> list[dict[str, object]]:
    """The classes as the review console shows them (key = position + 1)."""
    return [{"id": c.id, "zh": c.zh, "en": c.en, "key": str(i + 1)} for i, c in enumerate(CLASSES)]
