"""The wall API's body models (wall.models): a bad body is the 400 naming the field — nested fields, list items and
a union's matching branch included — and the OpenAPI document's request bodies are the models' own schemas, limits
included (pure: no server)."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from wall.case_api import PEOPLE_ACTIONS, CaseActionBody
from wall.errors import BadRequest
from wall.models import MAX_NOTE, Body, Clean, parse
from wall.openapi import build_document
from wall.screens_api import LayoutBody, TourStartBody


class Sample(Body):
    name: str = Field(min_length=1)
    note: Annotated[str, Clean] = ""
    tiles: list[int] | None = None


@pytest.mark.parametrize("model, body, error", [
    (Sample, ["x"], "body: must be a JSON object {name, note?, tiles?}"),
    (Sample, {}, "name: required"),
    (Sample, {"name": ""}, "name: String should have at least 1 character"),
    (Sample, {"name": "a", "colour": 1}, "colour: unknown field; allowed: name, note, tiles"),
    (Sample, {"name": "a", "note": "a\x00b"}, "note: must not contain control characters (found U+0000)"),
    (Sample, {"name": "a", "tiles": [0, "1"]}, "tiles[1]: Input should be a valid integer"),
    (CaseActionBody, {"action": "extend", "version": "2"}, "version: Input should be a valid integer"),
    (CaseActionBody, {"action": "extend", "extension": {"value": -1, "unit": "work_days"}},
     "extension: value: Input should be greater than 0"),
    (LayoutBody, {"layout": {"rows": 0, "cols": 2}}, "layout: rows: Input should be greater than or equal to 1"),
    (LayoutBody, {"layout": {"rows": 2, "cols": 2, "spans": [[0]]}}, "layout: spans[0]: List should have at least 4"),
    (TourStartBody, {"tour": "t", "dwell_s": 1}, "dwell_s: Input should be greater than or equal to 3"),
])
def test_a_bad_body_is_the_400_naming_the_field(model, body, error):
    with pytest.raises(BadRequest) as caught:
        parse(model, body)
    assert str(caught.value).startswith(error), str(caught.value)


def test_a_good_body_is_the_model_with_its_defaults():
    body = parse(CaseActionBody, {"action": "dispatch", "unit_id": "u1", "urgency": "紧急"})
    assert (body.action, body.unit_id, body.urgency, body.note, body.version) == ("dispatch", "u1", "紧急", "", None)
    assert parse(LayoutBody, {"layout": "2x2"}).layout == "2x2"


def test_the_documented_bodies_are_the_models_schemas_with_the_same_limits():
    doc = build_document("测试站")
    schemas = doc["components"]["schemas"]
    op = doc["paths"]["/api/cases/{id}/actions"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CaseActionBody"}
    action = schemas["CaseActionBody"]
    assert action["properties"]["action"]["enum"] == list(PEOPLE_ACTIONS) and "report" not in PEOPLE_ACTIONS
    assert action["properties"]["note"]["maxLength"] == MAX_NOTE and action["additionalProperties"] is False
    assert schemas["TimeLimit"]["properties"]["unit"] == {"$ref": "#/components/schemas/LimitUnit"}
    for name in ("LoginBody", "BroadcastBody", "LayoutBody", "CustomLayout", "NewUserBody", "DecisionBody"):
        assert schemas[name]["type"] == "object", name
    photo = doc["paths"]["/api/cases/{id}/photos"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert photo["schema"]["properties"]["note"]["maxLength"] == MAX_NOTE


def test_every_role_a_session_can_have_is_in_the_documented_user():
    from config import Role

    schemas = build_document("测试站")["components"]["schemas"]
    assert schemas["User"]["properties"]["role"] == {"$ref": "#/components/schemas/Role"}
    assert schemas["Role"]["enum"] == [r.value for r in Role]   # the unit role included (it was missing by hand)
