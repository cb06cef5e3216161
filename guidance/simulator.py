"""A simulated IP speaker on MQTT: receives play commands, fetches the clip over HTTP, decodes it, and acks.

It is a real client of the same protocol as ``MqttSpeakerAdapter`` (for the demo without hardware, tests and the
bench): subscribe ``{prefix}/speakers/{id}/play``, fetch ``clip_url``, decode with PyAV, publish
``{"command_id", "ok", "reason", "duration_s", "rms_dbfs"}`` to ``{prefix}/speakers/{id}/ack``. What it "played"
is kept in ``played`` (bounded) for inspection. It does not wait out the clip's duration before acking: real
speakers ack when playback starts. It announces itself on ``{prefix}/speakers/{id}/status`` (retained
``{"online": true}``; its last will and ``stop()`` publish ``{"online": false}``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from guidance.clips import AudioInfo, probe_audio
from guidance.speakers import ack_topic, parse_mqtt_url, play_topic, set_nodelay, status_topic


@dataclass(frozen=True)
class PlayedClip:
    """One command the simulator handled: the command as received, and what decoding the clip found."""

    command: dict[str, Any]
    info: AudioInfo | None
    error: str = ""


class SpeakerSimulator:
    """One simulated speaker. ``start()`` returns once it is subscribed; ``stop()`` disconnects (no more acks)."""

    def __init__(self, mqtt_url: str, speaker_id: str, prefix: str = "citywall", *, fetch_timeout_s: float = 5.0,
                 keep: int = 100) -> None:
        self.host, self.port, user, password = parse_mqtt_url(mqtt_url)
        self.speaker_id = speaker_id
        self.prefix = prefix
        self.fetch_timeout_s = fetch_timeout_s
        self.played: deque[PlayedClip] = deque(maxlen=keep)
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{speaker_id}",
                                   clean_session=True)
        if user:
            self._client.username_pw_set(user, password)
        # Last will: if the simulator dies without saying goodbye, the broker marks it offline.
        self._client.will_set(status_topic(prefix, speaker_id), json.dumps({"online": False}), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._ready = threading.Event()

    def start(self, timeout_s: float = 5.0) -> None:
        """Connect and subscribe (blocking, ≤ ``timeout_s``)."""
        self._client.connect(self.host, self.port, 30)
        self._client.loop_start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise ConnectionError(f"simulator {self.speaker_id!r} not subscribed within {timeout_s} s")

    def stop(self) -> None:
        """Say offline (retained), disconnect and join paho's thread."""
        info = self._client.publish(status_topic(self.prefix, self.speaker_id), json.dumps({"online": False}),
                                    qos=1, retain=True)
        with contextlib.suppress(RuntimeError, ValueError):  # not connected: the last will says it instead
            info.wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            return
        set_nodelay(client)
        client.subscribe(play_topic(self.prefix, self.speaker_id), qos=1)

    def _on_subscribe(self, client: mqtt.Client, *args: Any) -> None:
        client.publish(status_topic(self.prefix, self.speaker_id), json.dumps({"online": True, "at": time.time()}),
                       qos=1, retain=True)
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            command = json.loads(msg.payload)
            command_id = str(command["command_id"])
        except (ValueError, KeyError, TypeError):
            return
        info: AudioInfo | None = None
        error = ""
        try:
            url = str(command["clip_url"])
            if urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"clip_url must be http(s), got {url!r}")
            with urllib.request.urlopen(url, timeout=self.fetch_timeout_s) as response:  # noqa: S310 (checked)
                info = probe_audio(response.read())
        except Exception as exc:  # a bad command must not kill paho's thread; the sender learns from the ack
            error = f"{type(exc).__name__}: {exc}"
        self.played.append(PlayedClip(command, info, error))
        ack = {"command_id": command_id, "ok": info is not None, "reason": error,
               "duration_s": info.duration_s if info else None, "rms_dbfs": info.rms_dbfs if info else None}
        client.publish(ack_topic(self.prefix, self.speaker_id), json.dumps(ack), qos=1)
