"""MqttBridge: republishes bus streams on MQTT for field devices and third-party systems.

``alarms`` → ``{prefix}/alarms/{camera_id}``; ``camera_status`` → ``{prefix}/cameras/{camera_id}/status`` (retained,
so a late subscriber learns every camera's state at once); ``case_events`` → ``{prefix}/cases/{case_id}``;
``case_deadlines`` → ``{prefix}/cases/{case_id}/deadline`` (即将超期 / 案件超期). All QoS 1, JSON payloads: the entry
data plus ``"id"`` (the stream id). :meth:`MqttBridge.publish_json` is there for other senders (speaker commands).

paho-mqtt runs its network loop in its own thread and reconnects by itself. While the broker is away, messages
wait in a bounded outbox (oldest dropped and counted when full) and go out on reconnect. The bridge remembers the
last stream id it forwarded (state table ``mqtt_bridge``, saved at most once a second and on stop) and resumes from
there after a restart, skipping entries older than ``max_replay_s`` — a speaker should not shout about an alarm from
yesterday. Delivery is at-least-once: a crash (no clean stop) may send up to a second's worth again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import re
import ssl
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from broker.bus import Bus, Entry
from config import redact_url
from guidance.speakers import set_nodelay

log = logging.getLogger("citywall.broker.mqtt")

STREAMS = ("alarms", "camera_status", "case_events", "case_deadlines")
STATE_TABLE = "mqtt_bridge"
_TOPIC_UNSAFE = re.compile(r"[/+#\x00\s]")


@dataclass
class BridgeStats:
    """Counters: handed to paho (``sent``), acknowledged by the broker (``published``), dropped from the full
    outbox (``dropped``), entries without the id their topic needs (``skipped``), waiting in the outbox (``queued``)."""

    sent: int = 0
    published: int = 0
    dropped: int = 0
    skipped: int = 0
    queued: int = 0
    connected: bool = False


@dataclass(frozen=True)
class _Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def topic_segment(value: Any) -> str:
    """A value made safe as one MQTT topic level (no '/', '+', '#', NUL or whitespace)."""
    return _TOPIC_UNSAFE.sub("_", str(value)) or "_"


def route(prefix: str, entry: Entry) -> tuple[str, int, bool] | None:
    """(topic, qos, retain) for a bus entry, or None when the entry lacks the id its topic is built from."""
    data = entry.data
    if entry.stream == "alarms" and data.get("camera_id"):
        return f"{prefix}/alarms/{topic_segment(data['camera_id'])}", 1, False
    if entry.stream == "camera_status" and data.get("camera_id"):
        return f"{prefix}/cameras/{topic_segment(data['camera_id'])}/status", 1, True
    if entry.stream == "case_events" and data.get("case_id"):
        return f"{prefix}/cases/{topic_segment(data['case_id'])}", 1, False
    if entry.stream == "case_deadlines" and data.get("case_id"):
        return f"{prefix}/cases/{topic_segment(data['case_id'])}/deadline", 1, False
    return None


_ID = re.compile(r"^\d+-\d+$")


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class MqttBridge:
    """Forwards alarms, camera status, case events and deadline alarms to MQTT; see the module docstring."""

    def __init__(self, bus: Bus, mqtt_url: str, prefix: str = "citywall", *, client_id: str | None = None,
                 outbox_size: int = 1000, max_replay_s: float = 300.0, streams: tuple[str, ...] = STREAMS,
                 block_ms: int = 1000) -> None:
        parts = urlsplit(mqtt_url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"mqtt_url {redact_url(mqtt_url)!r} must look like mqtt://host:port or mqtts://host:port")
        if not prefix or _TOPIC_UNSAFE.search(prefix):
            raise ValueError(f"prefix {prefix!r} must be one non-empty MQTT topic level")
        self.bus = bus
        self.url = mqtt_url
        self.prefix = prefix
        self.streams = streams
        self.max_replay_s = max_replay_s
        self.block_ms = block_ms
        self.client_id = client_id or f"{prefix}-bridge-{uuid.uuid4().hex[:8]}"
        self._host = parts.hostname
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._outbox: collections.deque[_Outgoing] = collections.deque()
        self._outbox_size = outbox_size
        self._lock = threading.Lock()  # outbox + connected flag, shared with paho's network thread
        self._stats = BridgeStats()
        self._acked = 0
        self._cursor: dict[str, str] = {}
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password is not None else None
        self._tls = parts.scheme == "mqtts"
        self._client: mqtt.Client | None = None

    # ------------------------------------------------------------------------------------------------ MQTT side
    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set_context(ssl.create_default_context())
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.max_queued_messages_set(self._outbox_size)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def start(self) -> None:
        """Start a paho client and its network thread (connects, and keeps reconnecting, in the background).
        Idempotent; after :meth:`close` a fresh client is made (a stopped paho client does not restart cleanly)."""
        with self._lock:
            if self._client is not None:
                return
            self._client = self._new_client()
            client = self._client
        client.connect_async(self._host, self._port, keepalive=30)
        client.loop_start()

    def close(self) -> None:
        """Disconnect and join paho's thread (blocks briefly; call through ``asyncio.to_thread`` from a loop).
        Messages still in the outbox stay there for the next :meth:`start`."""
        with self._lock:
            client, self._client = self._client, None
            self._stats.connected = False  # also: no "lost the broker" warning for our own disconnect
        if client is not None:
            with contextlib.suppress(Exception):
                client.disconnect()
            client.loop_stop()

    @property
    def connected(self) -> bool:
        """True while the MQTT session is up."""
        with self._lock:
            return self._stats.connected

    def stats(self) -> dict[str, Any]:
        """Counters (see BridgeStats) plus the current outbox length."""
        with self._lock:
            self._stats.queued = len(self._outbox)
            self._stats.published = self._acked
            return asdict(self._stats)

    def publish_json(self, topic: str, payload: dict[str, Any], qos: int = 1, retain: bool = False) -> None:
        """Send a JSON object on ``topic``; held in the bounded outbox while the broker is away. Thread-safe."""
        if qos not in (0, 1, 2):
            raise ValueError(f"qos {qos!r} must be 0, 1 or 2")
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"topic {topic!r} is not a publishable MQTT topic")
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        with self._lock:
            if len(self._outbox) >= self._outbox_size:
                self._outbox.popleft()
                self._stats.dropped += 1
            self._outbox.append(_Outgoing(topic, body, qos, retain))
            self._flush_locked()

    def flush(self) -> None:
        """Hand whatever waits in the outbox to paho, if connected (also done on every send and on reconnect)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        # Never called from a paho callback that holds paho's message mutex (on_publish does): lock order is always
        # self._lock → paho's locks.
        while self._outbox and self._stats.connected and self._client is not None:
            out = self._outbox[0]
            rc = self._client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain).rc
            # NO_CONN for QoS ≥ 1 means paho has queued it for its reconnect; QoS 0 would be lost, so it stays here.
            if rc != mqtt.MQTT_ERR_SUCCESS and not (rc == mqtt.MQTT_ERR_NO_CONN and out.qos > 0):
                return  # paho's own queue is full or the link just dropped: retry on the next flush
            self._outbox.popleft()
            self._stats.sent += 1

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused the bridge: %s", redact_url(self.url), reason)
            return
        log.info("MQTT bridge connected to %s as %s", redact_url(self.url), self.client_id)
        set_nodelay(client)  # QoS 1: without it each publish waits ~40 ms on Nagle + delayed ACK
        with self._lock:
            if client is not self._client:
                return  # a client being closed
            self._stats.connected = True
            self._flush_locked()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            if client is not self._client:
                return
            was, self._stats.connected = self._stats.connected, False
        if was:
            log.warning("MQTT bridge lost %s (%s); paho reconnects", redact_url(self.url), reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # Runs under paho's message mutex: taking self._lock here could deadlock with _flush_locked. This thread is
        # the counter's only writer.
        self._acked += 1

    # ------------------------------------------------------------------------------------------------ bus side
    def forward(self, entry: Entry) -> bool:
        """Publish one bus entry on its topic; False (counted as skipped) if the entry has no routable id."""
        routed = route(self.prefix, entry)
        if routed is None:
            with self._lock:
                self._stats.skipped += 1
            log.warning("%s entry %s has no id to route on; not bridged", entry.stream, entry.id)
            return False
        topic, qos, retain = routed
        self.publish_json(topic, {**entry.data, "id": entry.id}, qos=qos, retain=retain)
        return True

    async def _resume_ids(self) -> dict[str, str]:
        """Where the previous run stopped, but never further back than ``max_replay_s``."""
        saved = await self.bus.get_state(STATE_TABLE)
        oldest = f"{int((time.time() - self.max_replay_s) * 1000)}-0"
        ids = {}
        for stream in self.streams:
            last = saved.get(f"{self.prefix}/{stream}", {}).get("id")
            if isinstance(last, str) and _ID.match(last):
                ids[stream] = max(last, oldest, key=_id_key)
        return ids

    async def _save_cursor(self) -> None:
        cursor, self._cursor = self._cursor, {}
        for stream, entry_id in cursor.items():
            await self.bus.put_state(STATE_TABLE, f"{self.prefix}/{stream}", {"id": entry_id, "at": time.time()})

    async def _pump(self) -> None:
        last_save = time.monotonic()
        async for entry in self.bus.tail(list(self.streams), await self._resume_ids() or None,
                                         block_ms=self.block_ms):
            self.forward(entry)
            self._cursor[entry.stream] = entry.id
            if time.monotonic() - last_save >= 1.0:
                await self._save_cursor()
                last_save = time.monotonic()

    async def _flusher(self, stop: asyncio.Event) -> None:
        """Retries the outbox when paho's own queue was full (nothing else would until the next send)."""
        while not stop.is_set():
            await asyncio.sleep(0.5)
            self.flush()

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set. Bus errors propagate (the supervisor restarts the bridge)."""
        self.start()
        tasks = [asyncio.create_task(self._pump(), name="mqtt-bridge-pump"),
                 asyncio.create_task(self._flusher(stop), name="mqtt-bridge-flush"),
                 asyncio.create_task(stop.wait())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what broke the pump
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await asyncio.wait_for(self._save_cursor(), 2.0)
            except Exception as exc:  # the bus may be what failed; the next run replays a little more
                log.warning("MQTT bridge could not save its position: %r", exc)
            await asyncio.to_thread(self.close)


__all__ = ["STREAMS", "BridgeStats", "MqttBridge", "route", "topic_segment"]
