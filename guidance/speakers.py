"""Speakers at camera sites: the registry (config model + dataclasses), play commands, acks, and the MQTT adapter.

A ``SpeakerAdapter`` is one way to make a speaker play a clip (IP-speaker MQTT, vendor HTTP "play this URL",
the command hall's own audio). ``MqttSpeakerAdapter`` publishes a JSON play command to
``{prefix}/speakers/{speaker_id}/play`` (QoS 1) and waits for the speaker's ``{prefix}/speakers/{speaker_id}/ack``
carrying the same ``command_id``; no ack in time is ``Ack(ok=False, reason="timeout")``, never an exception.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from config.guidance import SpeakerConfig

AdapterKind = Literal["mqtt", "http", "hall"]


def check_unique_speakers(speakers: Iterable[SpeakerConfig]) -> list[SpeakerConfig]:
    """ValueError naming the first duplicated speaker id (for the settings validator)."""
    seen: set[str] = set()
    out = list(speakers)
    for s in out:
        if s.id in seen:
            raise ValueError(f"speakers: duplicate id {s.id!r}")
        seen.add(s.id)
    return out


@dataclass(frozen=True)
class Speaker:
    """A speaker in the registry (the runtime form of ``SpeakerConfig``)."""

    id: str
    name: str
    camera_ids: tuple[str, ...]
    area: str
    adapter: AdapterKind
    url: str | None = None
    volume: int = 80
    zone: str = ""
    groups: tuple[str, ...] = ()
    auth_token: str | None = field(default=None, repr=False)
    """HTTP speakers: the bearer token (never shown)."""

    @classmethod
    def from_config(cls, c: SpeakerConfig) -> Speaker:
        """Build from the validated config entry."""
        return cls(c.id, c.name, tuple(c.camera_ids), c.area, c.adapter, c.url, c.volume, c.zone, tuple(c.groups),
                   c.auth_token)


class SpeakerRegistry:
    """Speakers by id and by camera (which speakers cover the site a camera sees)."""

    def __init__(self, speakers: Iterable[Speaker]) -> None:
        self._by_id: dict[str, Speaker] = {}
        for s in speakers:
            if s.id in self._by_id:
                raise ValueError(f"speakers: duplicate id {s.id!r}")
            self._by_id[s.id] = s

    @classmethod
    def from_config(cls, configs: Iterable[SpeakerConfig]) -> SpeakerRegistry:
        """Registry from the ``speakers:`` config list."""
        return cls(Speaker.from_config(c) for c in configs)

    def get(self, speaker_id: str) -> Speaker:
        """The speaker; KeyError naming the unknown id."""
        try:
            return self._by_id[speaker_id]
        except KeyError:
            raise KeyError(f"unknown speaker {speaker_id!r}") from None

    def for_camera(self, camera_id: str) -> list[Speaker]:
        """Speakers that cover ``camera_id`` (empty if none)."""
        return [s for s in self._by_id.values() if camera_id in s.camera_ids]

    def in_group(self, group: str) -> list[Speaker]:
        """Speakers of a group (``groups:`` in config)."""
        return [s for s in self._by_id.values() if group in s.groups]

    def in_area(self, area: str) -> list[Speaker]:
        """Speakers of an area (for a leader's area-wide broadcast)."""
        return [s for s in self._by_id.values() if s.area == area]

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass(frozen=True)
class PlayCommand:
    """Tell one speaker to play a clip: by URL (``clip_url``), ``repeat`` times, at ``volume`` (0-100)."""

    speaker_id: str
    clip_url: str
    text: str = ""
    volume: int = 80
    repeat: int = 1
    priority: int = 0
    command_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if not 0 <= self.volume <= 100:
            raise ValueError(f"volume must be 0..100, got {self.volume}")
        if not 1 <= self.repeat <= 10:
            raise ValueError(f"repeat must be 1..10, got {self.repeat}")
        if not self.clip_url:
            raise ValueError("clip_url is empty")

    def to_dict(self) -> dict[str, Any]:
        """The JSON payload a speaker receives (``speaker_id`` is in the topic, but included for logs)."""
        return asdict(self)


@dataclass(frozen=True)
class Ack:
    """A speaker's answer to a ``PlayCommand``: ok, or a reason ("timeout", "not connected", speaker's own)."""

    command_id: str
    ok: bool
    reason: str = ""
    latency_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """For logging the broadcast on the case."""
        return asdict(self)


@runtime_checkable
class SpeakerAdapter(Protocol):
    """One way to reach speakers; ``play`` returns an Ack and does not raise for speaker-side failures."""

    async def play(self, command: PlayCommand) -> Ack:
        """Send ``command`` and wait for the speaker's acknowledgement (or a timeout)."""
        ...


def set_nodelay(client: mqtt.Client) -> None:
    """Turn off Nagle on paho's socket: QoS 1 ping-pong otherwise waits for delayed ACKs (~40 ms per play)."""
    sock = client.socket()
    if sock is not None and hasattr(sock, "setsockopt"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def play_topic(prefix: str, speaker_id: str) -> str:
    """Topic a speaker subscribes to for play commands."""
    return f"{prefix}/speakers/{speaker_id}/play"


def ack_topic(prefix: str, speaker_id: str) -> str:
    """Topic a speaker publishes its ``{"command_id", "ok", "reason"}`` ack to."""
    return f"{prefix}/speakers/{speaker_id}/ack"


def status_topic(prefix: str, speaker_id: str) -> str:
    """Retained ``{"online": bool, "at": unix_s}`` a speaker publishes on connect (and as its last will, offline)."""
    return f"{prefix}/speakers/{speaker_id}/status"


MAX_MQTT_PAYLOAD = 16 * 1024
MAX_SPEAKERS = 10_000
_SPEAKER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    """(host, port, username, password) of ``mqtt[s]://[user:pass@]host[:port]`` (mqtts: TLS, default port 8883);
    ValueError naming the bad part."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"mqtt_url must start with mqtt:// or mqtts://, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("mqtt_url has no host")
    return (parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            unquote(parts.username) if parts.username else None, unquote(parts.password) if parts.password else None)


class MqttSpeakerAdapter:
    """Plays clips on IP speakers over MQTT (paho's network thread; results handed to the asyncio loop).

    ``await start()`` connects (ConnectionError naming the broker if it cannot within ``connect_timeout_s``);
    ``await close()`` disconnects. Pending plays resolve with ``reason="not connected"`` if the link drops.
    """

    def __init__(self, mqtt_url: str, prefix: str = "citywall", *, ack_timeout_s: float = 5.0,
                 connect_timeout_s: float = 5.0, client_id: str | None = None) -> None:
        self.host, self.port, user, password = parse_mqtt_url(mqtt_url)
        self.prefix = prefix
        self.ack_timeout_s = ack_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.sent = 0
        self.acked = 0
        self.timeouts = 0
        self.malformed = 0
        """MQTT messages dropped as forged or broken (bad topic, JSON or fields)."""
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=client_id or f"citywall-guidance-{uuid.uuid4().hex[:8]}",
                                   clean_session=True)
        if user:
            self._client.username_pw_set(user, password)
        if urlsplit(mqtt_url).scheme == "mqtts":
            self._client.tls_set_context(ssl.create_default_context())
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[dict[str, Any]]]] = {}
        self._subscribed = threading.Event()
        self._connected = False
        self._status: dict[str, dict[str, Any]] = {}  # speaker id → {"online", "at", "last_ack_at"}

    async def start(self) -> None:
        """Connect and subscribe to acks; returns once the subscription is active."""
        try:
            await asyncio.to_thread(self._client.connect, self.host, self.port, 30)
        except OSError as exc:
            raise ConnectionError(f"cannot reach MQTT broker at {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        ok = await asyncio.to_thread(self._subscribed.wait, self.connect_timeout_s)
        if not ok:
            self._client.loop_stop()
            raise ConnectionError(f"MQTT broker at {self.host}:{self.port} did not accept us within "
                                  f"{self.connect_timeout_s} s")

    async def close(self) -> None:
        """Disconnect and stop paho's thread; pending plays end with "not connected"."""
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._fail_pending("not connected")

    def stats(self) -> dict[str, int]:
        """Counters for metrics."""
        return {"sent": self.sent, "acked": self.acked, "timeouts": self.timeouts, "pending": len(self._pending),
                "malformed": self.malformed}

    def online(self, speaker_id: str) -> bool | None:
        """What the speaker's retained status says (None: never heard of it, e.g. a speaker without status)."""
        with self._lock:
            st = self._status.get(speaker_id)
        return None if st is None or "online" not in st else bool(st["online"])

    def status(self, speaker_id: str) -> dict[str, Any]:
        """``{"online": bool|None, "at": when the status came, "last_ack_at": the last ack}`` for the API."""
        with self._lock:
            st = dict(self._status.get(speaker_id, {}))
        return {"online": st.get("online"), "at": st.get("at"), "last_ack_at": st.get("last_ack_at")}

    async def play(self, command: PlayCommand) -> Ack:
        """Publish the command (QoS 1) and wait up to ``ack_timeout_s`` for the ack with its ``command_id``."""
        started = time.perf_counter()
        if not self._connected:
            return Ack(command.command_id, False, "not connected")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        with self._lock:
            self._pending[command.command_id] = (loop, fut)
        try:
            info = self._client.publish(play_topic(self.prefix, command.speaker_id),
                                        json.dumps(command.to_dict(), ensure_ascii=False), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return Ack(command.command_id, False, f"publish failed: {mqtt.error_string(info.rc)}")
            self.sent += 1
            try:
                reply = await asyncio.wait_for(fut, self.ack_timeout_s)
            except TimeoutError:
                self.timeouts += 1
                return Ack(command.command_id, False, "timeout", time.perf_counter() - started)
        finally:
            with self._lock:
                self._pending.pop(command.command_id, None)
        ok = bool(reply.get("ok", False))
        self.acked += 1
        return Ack(command.command_id, ok, str(reply.get("reason", "")), time.perf_counter() - started)

    # paho callbacks (its network thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            return
        set_nodelay(client)
        self._connected = True
        client.subscribe([(f"{self.prefix}/speakers/+/ack", 1), (f"{self.prefix}/speakers/+/status", 1)])
        self._subscribed.set()  # QoS1 SUBSCRIBE is ordered before our later PUBLISH on the same connection

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected = False
        self._fail_pending("not connected")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        speaker_id, kind = (parts[-2], parts[-1]) if len(parts) >= 3 else ("", "")
        if not _SPEAKER_ID.fullmatch(speaker_id) or len(msg.payload) > MAX_MQTT_PAYLOAD:
            self.malformed += 1  # a forged or broken message: counted and dropped, like bad HTTP input
            return
        if speaker_id not in self._status and len(self._status) >= MAX_SPEAKERS:
            self.malformed += 1  # bounded: forged speaker ids cannot grow the table
            return
        if kind == "status":
            try:
                st = json.loads(msg.payload)
                online = st["online"]
                if not isinstance(online, bool):
                    raise TypeError("online must be true or false")
            except (ValueError, KeyError, TypeError):
                self.malformed += 1
                return
            with self._lock:
                self._status.setdefault(speaker_id, {}).update(online=online, at=time.time())
            return
        try:
            reply = json.loads(msg.payload)
            if not isinstance(reply, dict) or not isinstance(reply.get("ok", False), bool):
                raise TypeError("an ack is an object whose ok is true or false")
            command_id = str(reply["command_id"])
        except (ValueError, KeyError, TypeError):
            self.malformed += 1
            return  # a speaker's garbage must not kill paho's thread
        with self._lock:
            st = self._status.setdefault(speaker_id, {})
            st["last_ack_at"] = time.time()
            if "online" not in st:
                st["online"] = True  # it answered, so it is there
            entry = self._pending.get(command_id)
        if entry is not None:
            loop, fut = entry
            loop.call_soon_threadsafe(_resolve, fut, reply)

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            pending = list(self._pending.items())
        for command_id, (loop, fut) in pending:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut, {"command_id": command_id, "ok": False, "reason": reason})


def _resolve(fut: asyncio.Future[dict[str, Any]], reply: dict[str, Any]) -> None:
    if not fut.done():
        fut.set_result(reply)
