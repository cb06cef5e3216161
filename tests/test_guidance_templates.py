"""Guidance templates: defaults per event, variable checks, malformed templates."""

from __future__ import annotations

import pytest

from guidance.templates import DEFAULT_TEMPLATES, Template, TemplateBook, TemplateError


@pytest.mark.parametrize(("event", "expected"), [
    ("vending", "您好，此处为人民路口，禁止占道经营，请立即离开。"),
    ("road_occupation", "您好，此处为人民路口，禁止占用道路堆放物品，请立即清理。"),
    ("bin_overflow", "您好，此处为人民路口，垃圾桶已满，请勿继续投放，环卫人员正在处理。"),
])
def test_default_templates_per_event(event: str, expected: str) -> None:
    assert TemplateBook().render(event, place="人民路口") == expected


def test_every_config_event_type_has_a_template() -> None:
    from config.settings import EventType

    assert set(DEFAULT_TEMPLATES) == {e.value for e in EventType}


@pytest.mark.parametrize(("event", "variables", "message"), [
    ("vending", {"plaec": "人民路"}, "unknown variable 'plaec'"),
    ("vending", {}, "missing variable 'place'"),
    ("vending", {"place": "  "}, "variable 'place' is empty"),
    ("parking", {"place": "人民路"}, "no template for event 'parking'"),
])
def test_render_errors_name_the_problem(event: str, variables: dict[str, str], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        TemplateBook().render(event, **variables)


@pytest.mark.parametrize(("text", "message"), [
    ("此处为{place.name}", "must be a plain variable name"),
    ("此处为{0}", "must be a plain variable name"),
    ("此处为{place!r}", "format spec or conversion"),
    ("此处为{place:>10}", "format spec or conversion"),
    ("此处为{place", "vending"),
    ("   ", "text is empty"),
])
def test_malformed_templates_are_refused_at_load(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        TemplateBook({"vending": text})


def test_override_and_extra_templates() -> None:
    book = TemplateBook({"vending": "{street}{place}禁止摆摊。", "notice": "今晚{time}停水。"})
    assert book.render("vending", street="解放路", place="东口") == "解放路东口禁止摆摊。"
    assert book.render("notice", time="22点") == "今晚22点停水。"
    assert book.templates["bin_overflow"].variables == frozenset({"place"})
    assert Template.parse("x", "无变量").render({}) == "无变量"
