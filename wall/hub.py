"""The WebSocket event hub (``/api/ws``): one bus tail, fanned out to every browser.

One background task tails the bus streams ``alarms``, ``case_deadlines`` (the case room's deadline alarms, a frame
type of their own), ``camera_status``, ``case_events``, ``broadcasts`` (voice guidance), ``wall`` (screen states, see
``wall.screen_service``) and ``system_alarms`` (faults of citywall itself) and turns each entry into one JSON frame
(serialised once). Every client has a bounded send queue and its own writer task; the fan-out only ever does
``put_nowait``, so a client whose queue is full is disconnected (close code 1013) and counted — nobody waits for a
slow browser.

Client messages: ``ping``, ``resume`` and the control actions other rooms register in :attr:`EventHub.actions`
(``ack``: acknowledge an alarm, from ``wall.screens_api``). Each type is checked against the sender's role by the
access policy (``wall.access.WS_MESSAGES``): a refused or failed message gets an ``error`` frame naming why, and the
connection stays open. Control actions are written to the audit log, refused ones included.

Resume: a client sends ``{"type": "resume", "last_ids": {"alarms": id, "case_deadlines": id, "case_events": id,
"system_alarms": id}}`` (any of them; a page gets its starting ids from the REST reads it made first).
While the missed entries are read (``bus.since``) and queued, live frames for that client are held aside; afterwards
they are released, skipping every id the resume already covered and every id the client already got live. The client
therefore sees each entry exactly once with no gap at the switch-over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from broker.backoff import Backoff
from cases.audit import AuditEntry
from messages import streams
from wall import state
from wall.access import WS_MESSAGES, ws_check
from wall.auth import Session, client_address, require_session
from wall.errors import require_websocket_handshake
from wall.socket_quota import SOCKET_QUOTA
from wall.views import alarm_view, broadcast_view, case_event_view, status_view

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from broker.bus import Bus, Entry

    MessageAction = Callable[[Session, dict[str, Any]], Awaitable[tuple[str, dict[str, Any]]]]
    """A control message's handler: returns (audit target, reply frame); raises MessageError for the client."""

log = logging.getLogger("citywall.wall.hub")

STREAMS = (streams.ALARMS, streams.CASE_DEADLINES, streams.CAMERA_STATUS, streams.CASE_EVENTS, streams.BROADCASTS,
           streams.WALL, streams.SYSTEM_ALARMS)
RESUMABLE = (streams.ALARMS, streams.CASE_DEADLINES, streams.CASE_EVENTS, streams.SYSTEM_ALARMS)
RESUME_PAGE = 500
SEEN_PER_STREAM = 4096
"""Ids delivered live before a resume that are remembered so the resume does not repeat them."""
CLOSE_TIMEOUT_S = 5.0
MAX_CLIENT_MESSAGE = 64 * 1024
TRY_AGAIN_LATER = 1013
LOGGED_OUT = 4401

_STREAM_ID = re.compile(r"^([0-9]{1,20})(?:-([0-9]{1,20}))?$")
_STREAM_ID_PART_MAX = 2**64 - 1
"""Redis stream ids are two unsigned 64-bit integers; anything bigger is the client's error, not a bus outage."""

StreamKey = tuple[int, int]


class MessageError(ValueError):
    """A control message that cannot be done (unknown alarm, bad field): an error frame; ``status`` for the audit."""

    def __init__(self, message: str, *, target: str = "", status: int = 400):
        super().__init__(message)
        self.target = target
        self.status = status


def parse_stream_id(value: str) -> StreamKey:
    """``"1700000000000-3"`` → ``(1700000000000, 3)``; ``"0"`` → ``(0, 0)``. ValueError otherwise."""
    m = _STREAM_ID.fullmatch(value)
    if not m:
        raise ValueError(f"{value[:40]!r} is not a stream id like 1700000000000-0")
    key = int(m.group(1)), int(m.group(2) or 0)
    if max(key) > _STREAM_ID_PART_MAX:
        raise ValueError(f"{value[:40]!r} is out of range (each part at most {_STREAM_ID_PART_MAX})")
    return key


def entry_frame(stream: str, entry_id: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The frame a browser receives for one bus entry (None for a stream the wall does not show)."""
    if stream == streams.ALARMS:
        return {"type": "alarm", "id": entry_id, "alarm": alarm_view(data)}
    if stream == streams.CASE_DEADLINES:
        return {"type": "case_deadline", "id": entry_id, "alarm": data}
    if stream == streams.CAMERA_STATUS:
        return {"type": "camera_status", "status": status_view(data)}
    if stream == streams.CASE_EVENTS:
        return {"type": "case", "id": entry_id, "event": case_event_view(data)}
    if stream == streams.BROADCASTS:  # live only (not resumable): a reconnect must not replay old audio in the hall
        return {"type": "broadcast", "id": entry_id, "broadcast": broadcast_view(data)}
    if stream == streams.WALL:  # messages.WallScreenState: the latest state wins, so it is not resumable
        return {"type": "wall_screen", "id": entry_id, "screen": data.get("screen")}
    if stream == streams.SYSTEM_ALARMS:  # messages.SystemAlarm; a page that opens reads /api/system-alarms
        return {"type": "system_alarm", "id": entry_id, "alarm": data}
    return None


def dumps(frame: dict[str, Any]) -> str:
    """Compact JSON, UTF-8 text kept readable (Chinese names are not escaped)."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


@dataclass
class HubStats:
    """Counters exported in ``/api/health``."""

    clients: int = 0
    connected_total: int = 0
    entries: int = 0
    """Bus entries read by the tail."""
    sent: int = 0
    """Frames written to sockets (all clients)."""
    dropped_clients: int = 0
    """Clients disconnected because their send queue was full."""
    tail_errors: int = 0
    resumes: int = 0
    resumed_frames: int = 0


class _Seen:
    """A bounded set of recently delivered ids for one stream."""

    def __init__(self, size: int):
        self._order: deque[StreamKey] = deque()
        self._set: set[StreamKey] = set()
        self._size = size

    def add(self, key: StreamKey) -> None:
        if key in self._set:
            return
        self._order.append(key)
        self._set.add(key)
        if len(self._order) > self._size:
            self._set.discard(self._order.popleft())

    def __contains__(self, key: StreamKey) -> bool:
        return key in self._set


class Client:
    """One connected browser: its socket, session, bounded queue and delivery bookkeeping."""

    def __init__(self, ws: web.WebSocketResponse, session: Session, queue_size: int):
        self.ws = ws
        self.session = session
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.pending: deque[tuple[str, StreamKey | None, str]] = deque()
        self.pending_limit = queue_size
        self.resuming = False
        self.seen = {s: _Seen(SEEN_PER_STREAM) for s in RESUMABLE}
        self.covered: dict[str, StreamKey] = {}
        """Per stream: everything up to this id was delivered by a resume (or the client already had it)."""
        self.writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.done = asyncio.Event()
        self.remote = ""
        """The peer's address (for the audit log)."""

    def is_duplicate(self, stream: str, key: StreamKey | None) -> bool:
        """Whether this client already got ``key`` of ``stream`` (live, or covered by a resume)."""
        if key is None or stream not in self.seen:
            return False
        covered = self.covered.get(stream)
        return key in self.seen[stream] or (covered is not None and key <= covered)

    def mark(self, stream: str, key: StreamKey | None) -> None:
        """Remember that ``key`` of ``stream`` was queued for this client."""
        if key is not None and stream in self.seen:
            self.seen[stream].add(key)

    def offer(self, stream: str, key: StreamKey | None, text: str) -> bool:
        """Queue a live frame without waiting; False when this client cannot keep up."""
        if self.is_duplicate(stream, key):
            return True
        if self.resuming:
            if len(self.pending) >= self.pending_limit:
                return False
            self.pending.append((stream, key, text))
            return True
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            return False
        self.mark(stream, key)
        return True

    def send_control(self, frame: dict[str, Any]) -> bool:
        """Queue a reply (pong, error) behind the frames already queued; False when the queue is full."""
        try:
            self.queue.put_nowait(dumps(frame))
        except asyncio.QueueFull:
            return False
        return True

    async def deliver(self, stream: str, key: StreamKey, text: str) -> bool:
        """Queue a resumed frame, waiting for this client's own queue; False if it was a duplicate."""
        if self.is_duplicate(stream, key):
            return False
        await self.queue.put(text)
        self.mark(stream, key)
        return True

    def end(self, code: int, reason: str) -> None:
        """Ask the connection handler to close this socket with ``code`` (idempotent)."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        if self.writer is not None:
            self.writer.cancel()


class EventHub:
    """Tails the bus and fans frames out to WebSocket clients; see the module docstring."""

    def __init__(self, bus: Bus, *, queue_size: int, block_ms: int = 1000,
                 audit: Callable[[AuditEntry], Awaitable[None]] | None = None,
                 clock: Callable[[], float] | None = None):
        self.bus = bus
        self.actions: dict[str, MessageAction] = {}
        """Control message types → handlers (registered by the rooms that own the action)."""
        self._audit = audit
        self._clock = clock
        self.queue_size = queue_size
        self.block_ms = block_ms
        self.session_alive: Callable[[Session], Awaitable[bool]] | None = None
        """Set by ``create_app``: whether a session still holds (checked before each client message)."""
        self.clients: set[Client] = set()
        self._stats = HubStats()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        """Set once the tail knows where each stream starts (events published after this are delivered)."""

    # ------------------------------------------------------------------------------------------ bus side

    def stats(self) -> dict[str, Any]:
        """Counters for ``/api/health``."""
        self._stats.clients = len(self.clients)
        return {**asdict(self._stats), "tailing": self.ready.is_set()}

    async def _start_ids(self) -> dict[str, str]:
        ids: dict[str, str] = {}
        for stream in STREAMS:
            newest = await self.bus.history(stream, count=1)
            ids[stream] = newest[0].id if newest else "0-0"
        return ids

    async def start(self) -> None:
        """Start tailing from the streams' current ends (called before the server accepts connections)."""
        ids: dict[str, str] | None = None
        try:
            ids = await asyncio.wait_for(self._start_ids(), 5.0)
        except Exception as exc:  # the run loop keeps retrying; the server still starts
            self._stats.tail_errors += 1
            log.warning("event hub cannot read the bus yet (%r); retrying in the background", exc)
        self._task = asyncio.create_task(self._run(ids), name="wall-event-hub")

    async def stop(self) -> None:
        """Stop the tail task."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, ids: dict[str, str] | None) -> None:
        backoff = Backoff(initial_s=0.5, max_s=10.0)
        while True:
            try:
                if ids is None:
                    ids = await self._start_ids()
                self.ready.set()
                # One XREAD batch is dispatched without a pause, so it must fit in an idle client's queue.
                batch = max(1, min(100, self.queue_size // 2))
                async for entry in self.bus.tail(list(STREAMS), dict(ids), block_ms=self.block_ms, count=batch):
                    ids[entry.stream] = entry.id
                    self.dispatch(entry)
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._stats.tail_errors += 1
                delay = backoff.delay()
                log.warning("event hub tail failed (%r); resuming from %s in %.1f s", exc, ids, delay)
                await asyncio.sleep(delay)

    def dispatch(self, entry: Entry) -> None:
        """Fan one bus entry out to every client (never waits)."""
        self._stats.entries += 1
        frame = entry_frame(entry.stream, entry.id, entry.data)
        if frame is None:
            return
        text = dumps(frame)
        try:
            key: StreamKey | None = parse_stream_id(entry.id)
        except ValueError:
            key = None
        for client in list(self.clients):
            if not client.offer(entry.stream, key, text):
                self.drop(client)

    def drop(self, client: Client) -> None:
        """Disconnect a client that cannot keep up (close code 1013)."""
        if client.close_code is not None:
            return
        self.clients.discard(client)
        self._stats.dropped_clients += 1
        log.warning(
            "dropping slow WebSocket client %s: %d frames queued, %d held",
            client.session.username, client.queue.qsize(), len(client.pending),
        )
        client.end(TRY_AGAIN_LATER, f"too slow: more than {self.queue_size} frames queued")

    def disconnect_session(self, token: str) -> int:
        """Close every socket of a session (logout); returns how many."""
        ended = [c for c in self.clients if c.session.token == token]
        for client in ended:
            self.clients.discard(client)
            client.end(LOGGED_OUT, "logged out")
        return len(ended)

    async def shutdown(self) -> None:
        """Close every client socket (server going away) and wait briefly for the handlers to finish."""
        clients = list(self.clients)
        for client in clients:
            client.end(WSCloseCode.GOING_AWAY, "server shutting down")
        if clients:
            await asyncio.wait([asyncio.create_task(c.done.wait()) for c in clients], timeout=CLOSE_TIMEOUT_S + 1)

    # ------------------------------------------------------------------------------------------ client side

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/ws``: the browser's event socket."""
        session = require_session(request)
        # compress=False: a browser always offers permessage-deflate; deflating every event for every client costs
        # CPU per client that a command hall's LAN does not need saved.
        ws = web.WebSocketResponse(heartbeat=30.0, timeout=CLOSE_TIMEOUT_S, max_msg_size=MAX_CLIENT_MESSAGE,
                                   compress=False)
        require_websocket_handshake(ws, request)
        quota = request.app[SOCKET_QUOTA]
        refused = quota.refusal(session.username)
        if refused is not None:
            return refused
        with quota.slot(session.username):
            return await self._serve(request, ws, session)

    async def _serve(self, request: web.Request, ws: web.WebSocketResponse, session: Session) -> web.StreamResponse:
        await ws.prepare(request)
        client = Client(ws, session, self.queue_size)
        client.remote = client_address(request)
        client.send_control({"type": "hello", "user": session.user_dict()})
        self.clients.add(client)
        self._stats.connected_total += 1
        client.writer = asyncio.create_task(self._write_loop(client))
        reader = asyncio.create_task(self._read_loop(client))
        try:
            await asyncio.wait({client.writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.clients.discard(client)
            reader.cancel()
            client.writer.cancel()
            try:
                await asyncio.gather(reader, client.writer, return_exceptions=True)
                await self._close(request, client)
            finally:  # also when the handler is cancelled because the peer went away mid-close
                client.done.set()
        return ws

    async def _close(self, request: web.Request, client: Client) -> None:
        code = client.close_code if client.close_code is not None else WSCloseCode.OK
        message = client.close_reason.encode()[:120]
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(client.ws.close(code=code, message=message, drain=False), CLOSE_TIMEOUT_S + 1)
        if client.close_code == TRY_AGAIN_LATER and request.transport is not None:
            # A stalled peer never reads: without abort the kernel would hold its unsent frames indefinitely.
            request.transport.abort()

    async def _write_loop(self, client: Client) -> None:
        while True:
            text = await client.queue.get()
            await client.ws.send_str(text)
            self._stats.sent += 1

    def sessions(self) -> list[tuple[Session, Callable[[int, str], None]]]:
        """Every open socket's session and how to end it (the app's session sweep)."""
        return [(c.session, c.end) for c in self.clients]

    async def _read_loop(self, client: Client) -> None:
        async for msg in client.ws:
            if self.session_alive is not None and not await self.session_alive(client.session):
                self.clients.discard(client)
                client.end(LOGGED_OUT, "session ended")  # expired or revoked: nothing more is accepted
                return
            if msg.type == WSMsgType.TEXT:
                try:
                    await self._on_text(client, msg.data)
                except Exception:  # a bug handling one message must not end the connection
                    log.exception("error handling a WebSocket message from %s", client.session.username)
                    self._reply_error(client, "internal error handling this message (logged on the server)")
            elif msg.type == WSMsgType.BINARY:
                self._reply_error(client, "binary frames are not accepted; send JSON text")
            elif msg.type == WSMsgType.ERROR:
                return

    def _reply_error(self, client: Client, error: str) -> None:
        if not client.send_control({"type": "error", "error": error}):
            self.drop(client)

    async def _on_text(self, client: Client, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            self._reply_error(client, f"not JSON: {exc.msg} at position {exc.pos}")
            return
        except (ValueError, RecursionError):  # e.g. arrays nested deeper than the parser's recursion limit
            self._reply_error(client, "not JSON: nested too deeply (a protocol message is a flat object)")
            return
        if not isinstance(message, dict):
            self._reply_error(client, f"message must be a JSON object, got {type(message).__name__}")
            return
        kind = message.get("type")
        if kind is not None and not isinstance(kind, str):
            self._reply_error(client, f"type: must be a string, got {type(kind).__name__}")
            return
        handled = kind in ("ping", "resume") or kind in self.actions
        if isinstance(kind, str):
            refused = ws_check(client.session, kind, handled=handled)
            if refused is not None:
                self._reply_error(client, refused)
                rule = WS_MESSAGES.get(kind)
                target = str(message.get(rule.target_field, "")) if rule is not None and rule.target_field else ""
                await self._record(client, kind, target[:128], 403, {"refused": refused})
                return
        if isinstance(kind, str) and kind in self.actions:
            await self._act(client, kind, message)
        elif kind == "ping":
            if not client.send_control({"type": "pong"}):
                self.drop(client)
        elif kind == "resume":
            last_ids = message.get("last_ids")
            problem, parsed = _check_last_ids(last_ids)
            if problem:
                self._reply_error(client, problem)
                return
            await self._resume(client, parsed)
        elif kind is None:
            self._reply_error(client, f"type: missing; expected one of {self._kinds()}")
        else:
            self._reply_error(client, f"type: unknown message type {str(kind)[:40]!r}; expected one of {self._kinds()}")

    def _kinds(self) -> str:
        return ", ".join(repr(k) for k in ("ping", "resume", *self.actions))

    async def _act(self, client: Client, kind: str, message: dict[str, Any]) -> None:
        try:
            target, reply = await self.actions[kind](client.session, message)
        except MessageError as exc:
            self._reply_error(client, f"{kind}: {exc}")
            await self._record(client, kind, exc.target, exc.status, {"error": str(exc)})
            return
        if not client.send_control(reply):
            self.drop(client)
        await self._record(client, kind, target, 200, {})

    async def _record(self, client: Client, kind: str, target: str, outcome: int, details: dict[str, Any]) -> None:
        rule = WS_MESSAGES.get(kind)
        if self._audit is None or rule is None or not rule.audit:
            return
        await self._audit(AuditEntry(at=self._clock() if self._clock else time.time(), actor=client.session.username,
                                     role=client.session.role.value, action=rule.audit, target=target,
                                     outcome=outcome, client=client.remote, details={"via": "websocket", **details}))

    async def _resume(self, client: Client, last_ids: dict[str, tuple[str, StreamKey]]) -> None:
        self._stats.resumes += 1
        client.resuming = True
        try:
            for stream, (since_id, since_key) in last_ids.items():
                cursor = since_id
                try:
                    while True:
                        entries = await self.bus.since(stream, cursor, count=RESUME_PAGE)
                        for entry in entries:
                            frame = entry_frame(stream, entry.id, entry.data)
                            key = parse_stream_id(entry.id)
                            if frame is not None and await client.deliver(stream, key, dumps(frame)):
                                self._stats.resumed_frames += 1
                        if entries:
                            cursor = entries[-1].id
                        if len(entries) < RESUME_PAGE:
                            break
                except Exception as exc:  # a bus outage: say so, keep the connection
                    log.warning("resume of %s from %s failed: %r", stream, cursor, exc)
                    self._reply_error(client, f"resume: could not read missed {stream} after {cursor}: "
                                              "event bus unavailable")
                    continue
                top = parse_stream_id(cursor)
                client.covered[stream] = max(top, since_key, client.covered.get(stream, (0, 0)))
            # Release what arrived live meanwhile, skipping what the resume already delivered.
            while client.pending:
                stream, live_key, text = client.pending.popleft()
                if live_key is None or not client.is_duplicate(stream, live_key):
                    await client.queue.put(text)
                    client.mark(stream, live_key)
        finally:
            client.resuming = False


def _check_last_ids(value: object) -> tuple[str | None, dict[str, tuple[str, StreamKey]]]:
    """Validate a resume's ``last_ids``; returns (error naming the field, or None; parsed ids)."""
    if not isinstance(value, dict) or not value:
        return 'last_ids: required, an object like {"alarms": "<id>", "case_events": "<id>"}', {}
    parsed: dict[str, tuple[str, StreamKey]] = {}
    for stream, last in value.items():
        if stream not in RESUMABLE:
            return f"last_ids.{str(stream)[:40]}: unknown stream; resumable streams are {', '.join(RESUMABLE)}", {}
        if not isinstance(last, str):
            return f"last_ids.{stream}: must be a stream id string like 1700000000000-0", {}
        try:
            key = parse_stream_id(last)
        except ValueError as exc:
            return f"last_ids.{stream}: {exc}", {}
        parsed[stream] = (f"{key[0]}-{key[1]}", key)
    return None, parsed


async def websocket(request: web.Request) -> web.StreamResponse:
    """``GET /api/ws`` (login required): the event socket, served by the app's :class:`EventHub`."""
    return await request.app[state.HUB].handle(request)


def add_routes(app: web.Application) -> None:
    """Register ``/api/ws``."""
    app.router.add_get("/api/ws", websocket)
