"""Decoding helpers shared by the message types: keep the fields a type knows (newer writers may add fields; an
older reader ignores them, so wire formats can grow)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that are fields of dataclass ``cls``; TypeError when ``data`` is not a dict."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
