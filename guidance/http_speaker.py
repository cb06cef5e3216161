"""``HttpSpeakerAdapter``: vendor IP speakers with an HTTP "play this URL" API.

POSTs the ``PlayCommand`` JSON to the speaker's configured ``url`` and reads ``{"ok": bool, "reason": str}`` back
(an empty 2xx body counts as ok). Timeouts, refused connections and non-2xx answers become ``Ack(ok=False, ...)``
with the reason, never exceptions, like every ``SpeakerAdapter``. Vendors whose API differs get their own small
adapter file next to this one. A speaker that wants authentication gets ``Authorization: Bearer <auth_token>``
(``guidance.speakers[].auth_token``) or HTTP Basic from ``user:password@`` in its URL.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp

from guidance.speakers import Ack, PlayCommand, SpeakerRegistry


class HttpSpeakerAdapter:
    """Plays on HTTP speakers; ``urls`` maps speaker id → control URL (``from_registry`` builds it)."""

    def __init__(self, urls: Mapping[str, str], *, timeout_s: float = 5.0,
                 tokens: Mapping[str, str] | None = None) -> None:
        self.urls: dict[str, str] = {}
        self._auth: dict[str, dict[str, str]] = {}
        """Speaker id → the Authorization header: ``Bearer <auth_token>``, or Basic from ``user:password@`` in its URL
        (taken out of the URL, so it is never logged with it)."""
        for speaker_id, url in urls.items():
            parts = urlsplit(url)
            if parts.username is not None:
                pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
                self._auth[speaker_id] = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
                netloc = parts.hostname or ""
                netloc = f"[{netloc}]" if ":" in netloc else netloc
                url = urlunsplit(parts._replace(netloc=netloc + (f":{parts.port}" if parts.port else "")))
            self.urls[speaker_id] = url
        for speaker_id, token in (tokens or {}).items():
            self._auth[speaker_id] = {"Authorization": f"Bearer {token}"}
        self.timeout_s = timeout_s
        self.sent = 0
        self.failed = 0
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_registry(cls, registry: SpeakerRegistry, *, timeout_s: float = 5.0) -> HttpSpeakerAdapter:
        """Adapter for every speaker of kind "http" (ValueError naming one without a url)."""
        urls: dict[str, str] = {}
        tokens: dict[str, str] = {}
        for s in registry:
            if s.adapter == "http":
                if not s.url:
                    raise ValueError(f"speakers: {s.id!r} has adapter 'http' but no url")
                urls[s.id] = s.url
                if s.auth_token:
                    tokens[s.id] = s.auth_token
        return cls(urls, timeout_s=timeout_s, tokens=tokens)

    async def start(self) -> None:
        """Open the HTTP client session."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stats(self) -> dict[str, int]:
        """Counters for metrics."""
        return {"sent": self.sent, "failed": self.failed}

    async def play(self, command: PlayCommand) -> Ack:
        """POST the command; the speaker's JSON answer (or the failure) becomes the Ack."""
        started = time.perf_counter()
        url = self.urls.get(command.speaker_id)
        if url is None:
            return Ack(command.command_id, False, f"no http url for speaker {command.speaker_id!r}")
        if self._session is None:
            return Ack(command.command_id, False, "not started")
        self.sent += 1
        ok, reason = False, ""
        try:
            async with self._session.post(url, json=command.to_dict(),
                                          headers=self._auth.get(command.speaker_id)) as response:
                body = await response.read()
                if not 200 <= response.status < 300:
                    reason = f"http {response.status}"
                elif not body.strip():
                    ok = True
                else:
                    reply = json.loads(body)
                    ok = bool(reply.get("ok", False)) if isinstance(reply, dict) else False
                    reason = str(reply.get("reason", "")) if isinstance(reply, dict) else "reply is not an object"
        except TimeoutError:
            reason = "timeout"
        except aiohttp.ClientError as exc:
            reason = f"unreachable: {exc}"
        except ValueError:
            reason = "reply is not JSON"
        if not ok:
            self.failed += 1
        return Ack(command.command_id, ok, reason, time.perf_counter() - started)
