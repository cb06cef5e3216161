"""Reading the shipped case config files (YAML / GeoJSON) into pydantic models, with errors that name the file
and the key path.

Every failure becomes :class:`config.ConfigError` (``source`` is the file, each problem is ``key.path: reason``),
the same shape the settings loader uses, so ``citywall check-config`` reports all files alike.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from config import ConfigError

M = TypeVar("M", bound=BaseModel)


def key_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("rules", 3, "unit")`` → ``rules[3].unit``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def read_data(path: Path) -> Any:
    """Parse a YAML or (Geo)JSON file; a missing or unparsable file is a :class:`ConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [("(file)", "no such file")]) from None
    except OSError as exc:
        raise ConfigError(str(path), [("(file)", exc.strerror or str(exc))]) from None
    if Path(path).suffix.lower() in (".json", ".geojson"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            raise ConfigError(str(path), [(where, f"not valid JSON: {exc.msg}")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


def validate(model: type[M], data: Any, source: str) -> M:
    """``model.model_validate(data)`` with every pydantic error turned into a ``key.path: reason`` problem."""
    if not isinstance(data, dict):
        raise ConfigError(source, [("(top level)", "expected a mapping")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_problem(err) for err in exc.errors()]) from None


_NESTED = re.compile(r"^([A-Za-z_][\w]*(?:\[[^\]]+\]|\.[\w]+)*): (.+)$", re.S)


def _problem(err: Any) -> tuple[str, str]:
    """A cross-field check raised at a model level says where in its message (``rules[3].unit: ...``); lift that
    into the key path so every problem reads ``file: key.path: reason``."""
    path, reason = key_path(err["loc"]), _reason(err)
    m = _NESTED.match(reason)
    if m:
        loc, inner = tuple(err["loc"]), m.group(1)
        if loc and re.match(rf"{re.escape(str(loc[-1]))}\b", inner):
            loc = loc[:-1]  # the message already starts at this field
        path = f"{key_path(loc)}.{inner}" if loc else inner
        reason = m.group(2)
    return path, reason


def _reason(err: dict[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    # YAML 1.1 reads an unquoted 0501 as the octal number 321: say how to fix it.
    if err.get("type") == "string_type" and isinstance(err.get("input"), int):
        msg += f" (got the number {err['input']}; quote codes in YAML, e.g. \"0501\")"
    return msg


def load(model: type[M], path: Path) -> M:
    """Read and validate one file."""
    return validate(model, read_data(path), str(path))
