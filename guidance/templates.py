"""Guidance message templates per event type, with named variables (``{place}``), checked when loaded.

A template names its variables with ``str.format`` fields; only plain names are allowed (no ``{a.b}``/``{a[0]}``,
no format specs), so a template from config cannot reach into objects. Rendering with a missing or unknown
variable is an error that names the template and the variable, never a half-filled message on a loudspeaker.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TEMPLATES: dict[str, str] = {
    "vending": "您好，此处为{place}，禁止占道经营，请立即离开。",
    "road_occupation": "您好，此处为{place}，禁止占用道路堆放物品，请立即清理。",
    "bin_overflow": "您好，此处为{place}，垃圾桶已满，请勿继续投放，环卫人员正在处理。",
    "shop_front": "您好，此处为{place}，禁止店外经营，请将商品收回店内。",
    "bike_parking": "您好，此处为{place}，禁止停放非机动车，请停放到指定区域。",
    "exposed_rubbish": "您好，此处为{place}，请勿随意丢弃垃圾，请投入垃圾箱。",
}


class TemplateError(ValueError):
    """A template is malformed, or was rendered with a missing, unknown or empty variable."""


@dataclass(frozen=True)
class Template:
    """One message template: ``event`` it is for, ``text`` with ``{name}`` fields, and those ``variables``."""

    event: str
    text: str
    variables: frozenset[str]

    @classmethod
    def parse(cls, event: str, text: str) -> Template:
        """Check ``text`` and collect its variables; TemplateError naming the event for a bad field."""
        if not text.strip():
            raise TemplateError(f"template {event!r}: text is empty")
        names: set[str] = set()
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise TemplateError(f"template {event!r}: {exc}") from exc
        for _, field, spec, conversion in parsed:
            if field is None:
                continue
            if not field.isidentifier():
                raise TemplateError(f"template {event!r}: field {{{field}}} must be a plain variable name")
            if spec or conversion:
                raise TemplateError(f"template {event!r}: field {{{field}}} may not have a format spec or conversion")
            names.add(field)
        return cls(event, text, frozenset(names))

    def render(self, variables: Mapping[str, object]) -> str:
        """Fill the template; TemplateError for a missing, unknown or empty variable."""
        unknown = sorted(set(variables) - self.variables)
        if unknown:
            raise TemplateError(f"template {self.event!r}: unknown variable {unknown[0]!r} "
                                f"(known: {', '.join(sorted(self.variables)) or 'none'})")
        missing = sorted(self.variables - set(variables))
        if missing:
            raise TemplateError(f"template {self.event!r}: missing variable {missing[0]!r}")
        for name in self.variables:
            if not str(variables[name]).strip():
                raise TemplateError(f"template {self.event!r}: variable {name!r} is empty")
        return self.text.format(**{k: str(v).strip() for k, v in variables.items()})


class TemplateBook:
    """The templates by event type (defaults overridable from config), all parsed up front."""

    def __init__(self, templates: Mapping[str, str] | None = None) -> None:
        source = dict(DEFAULT_TEMPLATES)
        if templates:
            source.update(templates)
        self.templates: dict[str, Template] = {event: Template.parse(event, text) for event, text in source.items()}

    def render(self, event: str, **variables: object) -> str:
        """The message for ``event`` with ``variables`` filled in; TemplateError for an unknown event."""
        template = self.templates.get(event)
        if template is None:
            raise TemplateError(f"no template for event {event!r} (known: {', '.join(sorted(self.templates))})")
        return template.render(variables)

    def all_texts(self, variables_by_event: Mapping[str, Mapping[str, object]]) -> list[str]:
        """Render each event's template with its variables (for pre-rendering clips at start-up)."""
        return [self.render(event, **dict(v)) for event, v in variables_by_event.items()]
