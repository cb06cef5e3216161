"""The bridge role: the bus's alarms, case events and statuses published to MQTT topics (``broker.mqtt_bridge``).

``citywall up`` runs it beside everything else; ``citywall bridge`` runs it in one process of a pool at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from broker.bus import Bus
from broker.mqtt_bridge import MqttBridge
from citywall.builders import Loop
from config import Settings


def bridge_loop(settings: Settings, bus: Bus, mqtt_url: str) -> Loop:
    """The bridge as a loop: a fresh connection to ``mqtt_url`` per run (a restart after a crash, or a takeover)."""

    def run(stop: asyncio.Event) -> Awaitable[None]:
        return MqttBridge(bus, mqtt_url, prefix=settings.brokers.topic_prefix).run(stop)

    return run
