"""Shared fixtures: real services (Redis, Mosquitto, RTSP, Chromium) started on 127.0.0.1 with ephemeral ports.

Also the fast/slow split of ``make test-fast``: a test is ``slow`` when it is marked so by hand (runs > ~3 s, starts
the whole stack, times itself) or when it asks for a part that is slow to start — Chromium, the demo media and RTSP
server, PostgreSQL (the ``postgresql`` half of ``cases_url``/``store`` included), the fuzzing target, the broadcast
API with its speaker simulators — or for one of the expensive fixtures its module lists in ``SLOW_FIXTURES``.
Marking by fixture keeps new tests honest without anyone remembering the rule.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.brokers",
    "tests.fixtures.rtsp",
    "tests.fixtures.browser",
    "tests.fixtures.postgres",
    "tests.fixtures.cases",
    "tests.fixtures.wall",
    "tests.fixtures.guidance",
    "tests.fixtures.fuzz",
]

SLOW_FIXTURES = frozenset({"browser", "page", "fmp4_clip", "demo_media", "demo_rtsp", "postgres_server",
                           "postgres_url", "fuzz_target", "broadcast_api"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        local = getattr(getattr(item, "module", None), "SLOW_FIXTURES", frozenset())
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (names & (SLOW_FIXTURES | local) or "postgresql" in (params.get("cases_url"), params.get("store"))
                or item.get_closest_marker("e2e") is not None):
            item.add_marker(pytest.mark.slow)
