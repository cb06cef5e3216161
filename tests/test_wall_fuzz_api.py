"""Schemathesis fuzzing of the REST API from its own OpenAPI document (``/api/openapi.json``), against a real wall
server: real Redis bus, real SQLite case store, voice guidance on real Mosquitto, logged in as admin so every route
is reachable. Each operation gets schema-valid and schema-invalid requests, with generated path ids and with the
ids of real seeded records (a case, an alarm, a screen, a plan), so the handlers behind the 404 are reached too.

Checked for every response: no 5xx, a status code the document lists, the documented content type, and a body that
matches the documented schema. Bounded for CI: a fixed seed (``derandomize``), a few examples per operation, no
shrinking; a failure prints the request that caused it.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures.fuzz import FuzzTarget, login_session

MAX_EXAMPLES = 25
"""Per operation, per generation mode, per id variant: enough to reach every branch the schema describes, small
enough that the whole run stays well under two minutes on a 2-core CI machine."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
NOT_FUZZED = {("post", "/api/admin/cameras/test"): "opens an RTSP connection to whatever URL it is given (the test "
              "may only reach loopback); tests/test_admin_api.py covers it"}
WEBSOCKET_PATHS = ("/api/ws", "/api/live/{camera_id}", "/api/recordings/{camera_id}/play")
"""Fuzzed by tests/test_wall_fuzz_ws.py with a WebSocket client; here only their plain-GET refusal is checked."""


def _variants(path: str, known: dict[str, dict[str, str]]) -> list[dict[str, str] | None]:
    """Generated path parameters, and (when the path names a seeded record) the real ids."""
    ids = next((ids for prefix, ids in known.items() if path.startswith(prefix)), {})
    fixed = {name: value for name, value in ids.items() if f"{{{name}}}" in path}
    return [None, fixed] if fixed else [None]


def fuzz_operations(target: FuzzTarget, max_examples: int = MAX_EXAMPLES) -> tuple[list[str], Counter[str]]:
    """Run every operation of the served document; returns one line per failing operation/mode/variant, and how
    many requests got each status code."""
    doc = requests.get(f"{target.base_url}/api/openapi.json", timeout=10).json()
    config = schemathesis.Config()
    # The session cookie comes from the logged-in session, not from generation (ignored_auth is a separate test).
    config.projects.default.generation.update(with_security_parameters=False)
    schema = schemathesis.openapi.from_dict(doc, config=config)
    admin = login_session(target.base_url)
    failures: list[str] = []
    statuses: Counter[str] = Counter()
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.lower(), op.path) in NOT_FUZZED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for fixed in _variants(op.path, target.known_ids):
                failure = _fuzz_one(op, mode, fixed, target.base_url, admin, max_examples, statuses)
                if failure:
                    failures.append(f"{op.method.upper()} {op.path} [{mode.value}, ids={fixed}]: {failure}")
    return failures, statuses


def _fuzz_one(op: Any, mode: GenerationMode, fixed: dict[str, str] | None, base_url: str,
              admin: requests.Session, max_examples: int, statuses: Counter[str]) -> str | None:
    def session_for(case: schemathesis.Case) -> requests.Session:
        # Logging out (or logging in as someone else) would end the shared admin session.
        return login_session(base_url) if case.path in ("/api/logout", "/api/login") else admin

    @given(case=op.as_strategy(generation_mode=mode, path_parameters=fixed))
    @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, session=session_for(case), timeout=15)
        statuses[str(response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # no way to make this operation's request invalid (no parameters, no body)
        return None
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported with the operation it belongs to
        return f"{type(exc).__name__}: {str(exc)[:1500]}"
    return None


async def test_rest_api_survives_schema_driven_fuzzing(fuzz_target: FuzzTarget) -> None:
    failures, statuses = await asyncio.to_thread(fuzz_operations, fuzz_target)
    print(f"fuzzed: {sum(statuses.values())} requests, by status {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)
    # The run reached past validation and lookups: successes, refusals and conflicts all occurred.
    assert sum(statuses.values()) >= 1000 and statuses["200"] >= 100 and statuses["400"] >= 100, statuses


async def test_every_operation_that_declares_a_session_refuses_requests_without_one(fuzz_target: FuzzTarget) -> None:
    refused = await asyncio.to_thread(_without_session, fuzz_target)
    assert refused


def _without_session(target: FuzzTarget) -> int:
    """Each operation with ``security`` once with no cookie (real ids, an empty JSON body): 401 JSON, nothing else."""
    doc = requests.get(f"{target.base_url}/api/openapi.json", timeout=10).json()
    anonymous = requests.Session()
    refused = 0
    for path, ops in doc["paths"].items():
        ids = next((ids for prefix, ids in target.known_ids.items() if path.startswith(prefix)), {})
        url = target.base_url + re.sub(r"\{(\w+)\}", lambda m, ids=ids: ids.get(m.group(1), "x"), path)
        for method, op in ops.items():
            if op.get("security") == []:
                continue
            resp = anonymous.request(method.upper(), url, json={}, timeout=10)
            error = resp.json()["error"]
            # 401, or a 403 for the missing CSRF token where that check comes first: never served.
            assert resp.status_code == 401 and error == "login required" or (
                resp.status_code == 403 and "csrf" in error.lower()), (method, path, resp.status_code, error)
            refused += 1
    return refused
