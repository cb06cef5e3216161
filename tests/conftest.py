"""Shared fixtures: real services (Redis, Mosquitto, RTSP, Chromium) started on 127.0.0.1 with ephemeral ports."""

pytest_plugins = [
    "tests.fixtures.brokers",
    "tests.fixtures.rtsp",
    "tests.fixtures.browser",
    "tests.fixtures.postgres",
]
