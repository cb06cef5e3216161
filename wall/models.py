"""Request and response models of the wall API (pydantic), the shared limits, and the one way a handler reads a JSON
body.

A body is validated by its model (:func:`read_body`): unknown fields are refused, types are strict (a ``version``
of ``"2"`` is not 2), free text refuses control characters. The first problem becomes the 400 every client already
knows, ``{"error": "<field>: <reason>"}`` — a nested field as ``extension.unit``. The OpenAPI document
(``wall.openapi``) takes its component schemas from these models (:func:`component_schemas`), so the document and
the handler cannot disagree about a field, an enum or a limit: a limit is a constant here, used by both.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema

from config import Role
from wall.errors import BadRequest, parsed_json

MAX_NOTE = 500
"""A note on a case action, a supervision or a review decision (characters)."""
MAX_USERNAME = 64
MAX_PASSWORD = 1024
MAX_BROADCAST_REPEAT = 3
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
"""Ids a client sends (case, unit, camera …): letters, digits and ``_.:-``, at most 128."""
TARGET_PATTERN = r"^(all|group:[A-Za-z0-9_.-]{1,64}|[A-Za-z0-9_.-]{1,64})$"
"""A broadcast target: a speaker id, ``group:<name>`` or ``all``."""

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def no_control_chars(value: str) -> str:
    """``value``; ValueError naming the first control character in it."""
    bad = _CONTROL_CHARS.search(value)
    if bad:  # PostgreSQL cannot even store NUL; SQLite would cut the text there
        raise ValueError(f"must not contain control characters (found U+{ord(bad.group()):04X})")
    return value


Clean = AfterValidator(no_control_chars)
"""Marks a free-text field: control characters refused."""
Note = Annotated[str, Field(max_length=MAX_NOTE), Clean]
Version = Annotated[int, Field(ge=1)]
Id = Annotated[str, Field(pattern=ID_PATTERN)]


class Body(BaseModel):
    """A request body: a JSON object with exactly these fields (strict types, unknown fields refused)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    SHAPE: ClassVar[str] = ""
    """How the body looks, for the error when it is not even an object, e.g. ``{action, version?, note?}``."""

    @classmethod
    def shape(cls) -> str:
        if cls.SHAPE:
            return cls.SHAPE
        parts = [name if info.is_required() else f"{name}?" for name, info in cls.model_fields.items()]
        return "{" + ", ".join(parts) + "}"


B = TypeVar("B", bound=Body)


_TYPE_TAG = re.compile(r"^([A-Z]\w*|str|int|float|bool|list|dict|none|.*\[.*)$")
"""A location segment pydantic adds for a union's branch (``str``, ``CustomLayout``, ``list[int]``), not a field."""


def _path(loc: tuple[int | str, ...]) -> list[str]:
    """``('layout', 'CustomLayout', 'spans', 0)`` → ``['layout', 'spans[0]']``."""
    out: list[str] = []
    for part in loc:
        if isinstance(part, int) and out:
            out[-1] += f"[{part}]"
        elif not (out and _TYPE_TAG.match(str(part))):
            out.append(str(part))
    return out


def problem(exc: ValidationError, model: type[BaseModel]) -> BadRequest:
    """The first problem of a validation error as the 400 naming the body's field (and, for a nested one, the path
    inside it: ``extension: value: Input should be greater than 0``). Of a union's branches, the one the input's
    type matched is the one reported."""
    errors = exc.errors(include_url=False)
    mismatches = {"string_type", "model_type", "model_attributes_type", "dict_type", "list_type", "int_type",
                  "float_type", "bool_type"}
    branch = [e for e in errors if len(e["loc"]) > 1 and _TYPE_TAG.match(str(e["loc"][1]))]
    if branch and any(e["type"] not in mismatches for e in branch):
        errors = [e for e in errors if e not in branch or e["type"] not in mismatches]
    err = errors[0]
    loc = _path(tuple(err["loc"])) or ["body"]
    kind = err["type"]
    if kind == "missing":
        reason = "required"
    elif kind == "extra_forbidden":
        reason = f"unknown field; allowed: {', '.join(model.model_fields)}" if len(loc) == 1 else "unknown field"
    else:
        reason = str(err["msg"]).removeprefix("Value error, ")
    top = model.model_fields.get(loc[0].split("[")[0])
    if top is not None and top.description and kind != "extra_forbidden":
        reason = f"{reason} ({top.description})"
    return BadRequest(loc[0], ": ".join([*loc[1:], reason]))


def parse(model: type[B], body: Any) -> B:
    """``body`` (parsed JSON) as ``model``; :class:`BadRequest` naming the field otherwise."""
    if not isinstance(body, dict):
        raise BadRequest("body", f"must be a JSON object {model.shape()}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise problem(exc, model) from None


async def read_body(request: web.Request, model: type[B], *, optional: bool = False) -> B:
    """The request's JSON body as ``model`` (``optional``: an empty body is ``{}``); 400 naming the field."""
    if optional and not (await request.read()).strip():
        return parse(model, {})
    try:
        body = await parsed_json(request)
    except ValueError:
        raise BadRequest("body", f"must be a JSON object {model.shape()}") from None
    return parse(model, body)


REF_TEMPLATE = "#/components/schemas/{model}"


def component_schemas(*models: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI component schemas of ``models`` (and of every model they use), named by class, with references
    into ``#/components/schemas``. Request bodies are described as validated, answers as serialised."""
    pairs: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (m, "validation" if issubclass(m, Body) else "serialization") for m in models]
    _, top = models_json_schema(pairs, ref_template=REF_TEMPLATE)
    return dict(top.get("$defs", {}))


def ref(model: type[BaseModel]) -> dict[str, str]:
    """A ``$ref`` to ``model``'s component schema."""
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def json_body(model: type[Body], *, required: bool = True) -> dict[str, Any]:
    """An operation's ``requestBody`` validated by ``model``."""
    return {"required": required, "content": {"application/json": {"schema": ref(model)}}}


def message_schema(message: type, description: str, *, id_text: str, **extra: dict[str, Any]) -> dict[str, Any]:
    """The answer schema of a bus message as the API shows it: the message dataclass's own fields (``messages``),
    plus its stream ``id`` and the ``extra`` properties a view adds (evidence URLs)."""
    schema = TypeAdapter(message).json_schema(mode="serialization", ref_template=REF_TEMPLATE)
    schema["description"] = description
    schema["properties"] = {"id": {"type": "string", "description": id_text}, **schema["properties"], **extra}
    schema["required"] = ["id", *schema.get("required", [])]
    return schema


class Answer(BaseModel):
    """A response body: the handler builds it and sends it with :func:`respond`; the document's component is its
    schema."""

    model_config = ConfigDict(frozen=True)


def respond(answer: Answer, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """``answer`` as the JSON response (fields left None are left out)."""
    return web.json_response(answer.model_dump(mode="json", exclude_none=True), status=status, headers=headers)


class Error(Answer):
    """Every failure an API client sees."""

    error: str = Field(description="what was wrong, naming the field")


class User(Answer):
    """A signed-in user as the API shows it."""

    username: str
    display_name: str
    role: Role


class Session(Answer):
    """``POST /api/login`` and ``GET /api/me``: who is signed in, until when, and the CSRF token."""

    user: User
    expires_at: float = Field(description="unix time")
    csrf_token: str = Field(description="send it in X-CSRF-Token on every state-changing request of this session")
    site_name: str | None = Field(None, description="the centre's name shown on the wall (GET /api/me)")
    timezone: str | None = Field(None, description="IANA timezone of the site, e.g. Asia/Shanghai (GET /api/me)")
