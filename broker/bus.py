"""The event bus: Redis Streams carrying JSON messages, durable and replayable, with consumer groups.

Every message is one stream entry with one field ``data`` holding the JSON of ``message.to_dict()``; stream keys are
``{prefix}:{stream}`` (trimmed with ``MAXLEN ~ maxlen``), latest-value tables are hashes ``{prefix}:state:{table}``.
Entry ids are Redis stream ids (``<ms>-<seq>``), so a reader resumes exactly where it stopped.

Delivery: :meth:`Bus.tail` is a plain reader (every tail sees every entry; it reconnects with backoff and resumes
from its last id, so a Redis restart costs neither entries nor duplicates). :meth:`Bus.consume` is a consumer-group
reader with at-least-once delivery: a consumer's own unacknowledged entries come back first (a crashed consumer
replays its work), then entries other consumers left unacknowledged for ``claim_idle_ms`` (a consumer that never
came back), then new ones. This module knows no domain: a message is anything with ``STREAM`` and ``to_dict()``;
given ``codecs`` (stream → decoder, ``messages.CODECS`` in citywall), every entry read also carries its typed
message (``Entry.message``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.backoff import Backoff
from broker.histogram import Histogram
from config import redact_url

log = logging.getLogger("citywall.broker.bus")

MAX_BLOCK_MS = 20_000          # a blocking read never waits longer than this …
SOCKET_TIMEOUT_S = 30.0        # … so it always returns before the socket timeout fires
CONNECT_TIMEOUT_S = 5.0
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_ID = re.compile(r"^\d+(-\d+)?$")
_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class BusUnavailable(ConnectionError):
    """Redis cannot be reached (or dropped the connection). The message names the URL with its password redacted."""


class Message(Protocol):
    """What :meth:`Bus.publish` accepts: a boundary dataclass with its stream name and a JSON-able dict."""

    STREAM: ClassVar[str]

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Entry:
    """One stream entry: the short stream name (without prefix), its Redis id and the decoded JSON payload."""

    stream: str
    id: str
    data: dict[str, Any]
    message: Any = None
    """The typed message decoded from ``data`` by the bus's codec for this stream; None when the bus has no codec
    for it or the payload is not a valid message (counted in ``stats()["undecodable"]``)."""


@dataclass
class BusStats:
    """Counters for health/metrics."""

    published: int = 0
    read: int = 0
    malformed: int = 0
    undecodable: int = 0
    reconnects: int = 0
    claimed: int = 0


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{kind} {name!r} is not a valid name (letters, digits, '_', '.', '-')")
    return name


def _check_id(kind: str, entry_id: str) -> str:
    if not isinstance(entry_id, str) or not _ID.match(entry_id):
        raise ValueError(f"{kind} {entry_id!r} is not a stream id like '1712345678901-0'")
    return entry_id


_MAX_SEQ = (1 << 64) - 1

# An XREAD reply as this client gets it (RESP2, ``decode_responses=True``): per stream key, its (id, fields) rows.
# redis-py annotates the reply as a union over both protocols and bytes | str, hence the cast where it is read.
_XReadReply = list[tuple[str, list[tuple[str, dict[str, str] | None]]]]


def _parse(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation that a blocking read returned through instead of raising.

    Seen with redis-py 8.1 on Python 3.11: a task cancelled while blocked in XREAD sometimes gets the read's normal
    (empty) reply and no CancelledError; a loop around the read would then never end, and neither would shutdown.
    ``Task.cancelling()`` still counts the request, so it is checked after every blocking read.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


def redact(url: str, text: str) -> str:
    """``text`` with ``url``'s password removed, wherever it appears (also inside driver messages)."""
    out = redact_url(text)
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        for secret in {password, unquote(password)}:
            out = out.replace(secret, "***")
    return out


class Bus:
    """Publish/read JSON messages on Redis Streams. Create with :meth:`connect`; one instance per process is enough
    (redis-py pools connections; every blocking reader holds its own for the duration of a read)."""

    def __init__(self, client: aioredis.Redis, url: str, *, prefix: str, maxlen: int,
                 codecs: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None) -> None:
        self._redis = client
        self.url = url
        self.prefix = _check_name("prefix", prefix)
        self.maxlen = maxlen
        self.codecs: Mapping[str, Callable[[dict[str, Any]], Any]] = codecs or {}
        self._stats = BusStats()
        self.publish_seconds = Histogram()
        """Time of each successful publish (the XADD round trip), for the metrics page."""

    # ------------------------------------------------------------------------------------------------ lifecycle
    @classmethod
    async def connect(cls, url: str, *, prefix: str = "citywall", maxlen: int = 100_000,
                      codecs: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None) -> Bus:
        """Connect and PING; BusUnavailable (password redacted) if Redis cannot be reached. ``codecs``: stream name →
        decoder of an entry's JSON into its message (see ``Entry.message``)."""
        _check_name("prefix", prefix)
        if maxlen < 1:
            raise ValueError(f"maxlen {maxlen!r} must be at least 1")
        try:
            client = aioredis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S, socket_keepalive=True, health_check_interval=30,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            )
        except ValueError as exc:
            raise ValueError(redact(url, f"bad Redis URL {url!r}: {exc}")) from None
        bus = cls(client, url, prefix=prefix, maxlen=maxlen, codecs=codecs)
        try:
            await client.ping()
        except (*_DOWN, ResponseError) as exc:  # ResponseError: e.g. NOAUTH / wrong password
            await client.aclose()
            raise BusUnavailable(redact(url, f"cannot reach Redis at {redact_url(url)}: {exc}")) from None
        return bus

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._redis.aclose()

    async def ping(self) -> None:
        """Round trip to Redis (health checks); BusUnavailable when down."""
        await self._call(self._redis.ping())

    async def purge(self) -> int:
        """Delete every key under this bus's prefix (streams, groups, state); returns how many. For tests and resets."""
        try:
            keys = [k async for k in self._redis.scan_iter(match=f"{self.prefix}:*", count=500)]
        except _DOWN as exc:
            raise BusUnavailable(redact(self.url, f"Redis at {redact_url(self.url)} unavailable: {exc}")) from exc
        if keys:
            await self._call(self._redis.delete(*keys))
        return len(keys)

    @property
    def redis(self) -> aioredis.Redis:
        """The pooled client (``decode_responses=True``), for modules that need more than streams (leases)."""
        return self._redis

    def stats(self) -> dict[str, int]:
        """Counters: published, read, malformed (not JSON), undecodable (JSON but not the stream's message type),
        reconnects (tail), claimed (consume)."""
        return dict(vars(self._stats))

    # ------------------------------------------------------------------------------------------------ keys/codec
    def key(self, stream: str) -> str:
        """The Redis key of a stream: ``{prefix}:{stream}``."""
        return f"{self.prefix}:{_check_name('stream', stream)}"

    def state_key(self, table: str) -> str:
        """The Redis key of a state table: ``{prefix}:state:{table}``."""
        return f"{self.prefix}:state:{_check_name('table', table)}"

    def _decode(self, stream: str, entry_id: str, fields: dict[str, str] | None) -> Entry | None:
        try:
            data = json.loads((fields or {})["data"])
            if not isinstance(data, dict):
                raise ValueError(f"payload is a {type(data).__name__}, not an object")
        except (KeyError, TypeError, ValueError) as exc:
            self._stats.malformed += 1
            log.warning("stream %s entry %s is not a JSON object in field 'data' (%s); skipped: %.200r",
                        stream, entry_id, exc, fields)
            return None
        codec = self.codecs.get(stream)
        if codec is None:
            return Entry(stream, entry_id, data)
        try:
            message = codec(data)
        except (KeyError, TypeError, ValueError) as exc:
            # Kept with message None: the reader decides (a case worker records and acks it, a hub skips it).
            self._stats.undecodable += 1
            log.warning("stream %s entry %s is not a valid message (%s): %.200r", stream, entry_id, exc, data)
            message = None
        return Entry(stream, entry_id, data, message)

    def _decode_all(self, stream: str, rows: list[Any]) -> list[Entry]:
        out = []
        for entry_id, fields in rows:
            entry = self._decode(stream, entry_id, fields)
            if entry is not None:
                out.append(entry)
        return out

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except _DOWN as exc:
            raise BusUnavailable(redact(self.url, f"Redis at {redact_url(self.url)} unavailable: {exc}")) from exc

    # ------------------------------------------------------------------------------------------------ writing
    async def publish(self, message: Message) -> str:
        """Append ``message.to_dict()`` to ``message.STREAM``; returns the entry id."""
        return await self.publish_raw(message.STREAM, message.to_dict())

    async def publish_raw(self, stream: str, data: dict[str, Any]) -> str:
        """Append a JSON object to ``stream`` (trimmed to about ``maxlen``); returns the entry id.

        A dropped connection is retried twice by the driver, so in the rare case where Redis wrote the entry but the
        reply was lost the entry appears twice (at-least-once; consumers are idempotent on the message's own id).
        """
        if not isinstance(data, dict):
            raise TypeError(f"stream {stream!r}: data must be a dict, got {type(data).__name__}")
        try:
            payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"stream {stream!r}: data is not JSON-serialisable: {exc}") from None
        started = time.perf_counter()
        entry_id = await self._call(
            self._redis.xadd(self.key(stream), {"data": payload}, maxlen=self.maxlen, approximate=True)
        )
        self.publish_seconds.observe(time.perf_counter() - started)
        self._stats.published += 1
        return str(entry_id)

    async def put_state(self, table: str, key: str, data: dict[str, Any]) -> None:
        """Store the latest value for ``key`` in ``table`` (a Redis hash)."""
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        await self._call(self._redis.hset(self.state_key(table), key, payload))

    async def get_state(self, table: str) -> dict[str, dict[str, Any]]:
        """Every key's latest value in ``table`` (unreadable values are skipped and counted as malformed)."""
        raw = await self._call(self._redis.hgetall(self.state_key(table)))
        out: dict[str, dict[str, Any]] = {}
        for key, payload in raw.items():
            try:
                out[key] = json.loads(payload)
            except ValueError:
                self._stats.malformed += 1
                log.warning("state %s key %s is not JSON; skipped", table, key)
        return out

    async def move(self, source: str, target: str, select: Callable[[dict[str, Any]], bool], *,
                   page: int = 1000) -> int:
        """Move the entries of ``source`` whose JSON ``select`` accepts to ``target``, oldest first (splitting a
        stream that carried two kinds of message); returns how many. An entry keeps its id when that is newer than
        ``target``'s newest (so readers' cursors stay meaningful), else it gets a new one; it is deleted from
        ``source`` only after it was appended. Running it again moves nothing twice."""
        if page < 1:
            raise ValueError(f"page {page!r} must be at least 1")
        newest = _parse((await self.last_ids([target]))[target])
        moved, low = 0, "-"
        while True:
            rows = await self._call(self._redis.xrange(self.key(source), low, "+", count=page))
            for entry_id, fields in rows:
                try:
                    data = json.loads((fields or {})["data"])
                except (KeyError, TypeError, ValueError):
                    continue
                if not isinstance(data, dict) or not select(data):
                    continue
                keep = _parse(entry_id) > newest
                new_id = await self._call(self._redis.xadd(self.key(target), fields, id=entry_id if keep else "*",
                                                           maxlen=self.maxlen, approximate=True))
                newest = _parse(str(new_id))
                await self._call(self._redis.xdel(self.key(source), entry_id))
                moved += 1
            if len(rows) < page:
                return moved
            low = f"({rows[-1][0]}"

    # ------------------------------------------------------------------------------------------------ reading
    async def history(self, stream: str, *, count: int = 100) -> list[Entry]:
        """The newest ``count`` entries, newest first."""
        rows = await self._call(self._redis.xrevrange(self.key(stream), "+", "-", count=count))
        return self._decode_all(stream, rows)

    async def window(self, stream: str, *, after: str | None = None, before: str | None = None,
                     since_ms: int | None = None, until_ms: int | None = None, count: int = 100,
                     oldest_first: bool = False) -> list[Entry]:
        """Up to ``count`` entries with ``after < id < before`` whose time is within ``since_ms..until_ms``
        (inclusive; milliseconds), newest first — or, with ``oldest_first``, the ``count`` oldest of that window,
        oldest first (paging forward from ``after``). Cursor paging over XREVRANGE / XRANGE."""
        low, high = "-", "+"
        low_key: tuple[int, ...] = (-1, -1)
        high_key: tuple[int, ...] = (1 << 64, 1 << 64)
        if after is not None:
            low_key, low = (*_parse(_check_id("after", after)), 1), f"({after}"
        if since_ms is not None and (since_ms, 0, 0) > low_key:
            low_key, low = (since_ms, 0, 0), f"{since_ms}-0"
        if before is not None:
            high_key, high = (*_parse(_check_id("before", before)), -1), f"({before}"
        if until_ms is not None and (until_ms, 1 << 64, 0) < high_key:
            high_key, high = (until_ms, 1 << 64, 0), f"{until_ms}-{(1 << 64) - 1}"
        if high_key[:2] == (0, 0) or low_key[:2] == (_MAX_SEQ, _MAX_SEQ) or high_key[:2] < low_key[:2]:
            return []  # nothing lies before 0-0 or after the largest id (Redis refuses such exclusive bounds)
        if oldest_first:
            rows = await self._call(self._redis.xrange(self.key(stream), low, high, count=count))
        else:
            rows = await self._call(self._redis.xrevrange(self.key(stream), high, low, count=count))
        return self._decode_all(stream, rows)

    async def since(self, stream: str, last_id: str, *, count: int = 1000) -> list[Entry]:
        """Up to ``count`` entries with ids greater than ``last_id``, oldest first (``"0"`` for the beginning)."""
        _check_id("last_id", last_id)
        rows = await self._call(self._redis.xrange(self.key(stream), f"({last_id}", "+", count=count))
        return self._decode_all(stream, rows)

    async def last_ids(self, streams: list[str]) -> dict[str, str]:
        """The id of each stream's newest entry ("0-0" for an empty or missing stream): a concrete "$" to hand to
        :meth:`tail` when the starting point must be fixed before the first iteration."""
        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in streams:
                    pipe.xrevrange(self.key(stream), "+", "-", count=1)
                return await pipe.execute()

        results = await self._call(read())
        return {s: (rows[0][0] if rows else "0-0") for s, rows in zip(streams, results, strict=True)}

    async def tail(self, streams: list[str], last_ids: dict[str, str] | None = None, *, block_ms: int = 1000,
                   count: int = 100) -> AsyncIterator[Entry]:
        """Every entry appended after ``last_ids`` (per stream; a stream not named there starts at its current end,
        i.e. ``"$"`` as of the first iteration), in order per stream, forever.

        Survives Redis going away: the read is retried with backoff from the last id delivered, so nothing is missed
        and nothing is delivered twice. Stop it by breaking out of the loop or cancelling the task.
        """
        if not streams:
            raise ValueError("tail needs at least one stream")
        keys = {self.key(s): s for s in streams}
        given = dict(last_ids or {})
        for stream, entry_id in given.items():
            if stream not in streams:
                raise ValueError(f"last_ids names stream {stream!r}, which is not tailed ({streams})")
            if entry_id != "$":
                _check_id(f"last_ids[{stream!r}]", entry_id)
        block = max(1, min(int(block_ms), MAX_BLOCK_MS))
        ids: dict[str, str] = {}
        backoff = Backoff(initial_s=BACKOFF_MIN_S, max_s=BACKOFF_MAX_S)
        while True:
            try:
                if len(ids) < len(streams):
                    # "$" is made concrete once, so a reconnect cannot skip what arrived while Redis was away.
                    todo = [s for s in streams if given.get(s, "$") == "$"]
                    ids = {**(await self.last_ids(todo) if todo else {}),
                           **{s: i for s, i in given.items() if i != "$"}}
                reply = cast(_XReadReply | None,
                             await self._redis.xread({self.key(s): ids[s] for s in streams}, count=count, block=block))
                _raise_if_cancelled()
            except (*_DOWN, BusUnavailable) as exc:
                _raise_if_cancelled()  # a cancel that surfaced as a connection error must not be retried away
                delay = backoff.delay()
                self._stats.reconnects += 1
                log.warning("tail of %s: Redis at %s unavailable (%s); retrying in %.1f s from %s", streams,
                            redact_url(self.url), redact(self.url, str(exc)), delay, ids or given)
                await asyncio.sleep(delay)
                continue
            if backoff.failures:
                log.info("tail of %s resumed after %d failed attempts", streams, backoff.failures)
                backoff.reset()
            for key, rows in reply or []:
                stream = keys[key]
                for entry_id, fields in rows:
                    ids[stream] = entry_id  # advance before yielding: a consumer that breaks has seen this one
                    entry = self._decode(stream, entry_id, fields)
                    if entry is not None:
                        self._stats.read += 1
                        yield entry

    # ------------------------------------------------------------------------------------------------ groups
    async def ensure_group(self, stream: str, group: str, *, start_id: str = "0") -> None:
        """Create consumer group ``group`` on ``stream`` (and the stream) if missing. A new group starts at
        ``start_id``: ``"0"`` delivers what is already in the stream (nothing lost), ``"$"`` only what comes next."""
        _check_name("group", group)
        if start_id != "$":
            _check_id("start_id", start_id)
        try:
            await self._call(self._redis.xgroup_create(self.key(stream), group, id=start_id, mkstream=True))
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def consume(self, stream: str, group: str, consumer: str, *, block_ms: int = 1000, count: int = 50,
                      claim_idle_ms: int | None = 60_000) -> list[Entry]:
        """The next batch for ``consumer`` in ``group`` (at-least-once; :meth:`ack` each entry when done).

        Order: this consumer's own pending entries (delivered earlier, never acked — a crash replays them), then
        entries pending on *other* consumers for more than ``claim_idle_ms`` (claimed over; None disables), then new
        entries (blocking up to ``block_ms``). Returns [] when nothing arrived. Pending entries whose payload was
        trimmed away or is unreadable are acked and skipped.
        """
        key = self.key(stream)
        _check_name("group", group)
        _check_name("consumer", consumer)
        own = await self._call(self._redis.xreadgroup(group, consumer, {key: "0"}, count=count))
        rows = own[0][1] if own else []
        if rows:
            return await self._decode_pending(stream, group, rows)
        if claim_idle_ms is not None:
            claimed = await self._call(self._redis.xautoclaim(key, group, consumer, claim_idle_ms, "0-0", count=count))
            rows = claimed[1] if claimed else []
            if rows:
                self._stats.claimed += len(rows)
                log.info("consumer %s claimed %d entries of %s idle > %d ms on other consumers", consumer, len(rows),
                         stream, claim_idle_ms)
                return await self._decode_pending(stream, group, rows)
        block = max(1, min(int(block_ms), MAX_BLOCK_MS))
        new = await self._call(self._redis.xreadgroup(group, consumer, {key: ">"}, count=count, block=block))
        _raise_if_cancelled()
        rows = new[0][1] if new else []
        entries = await self._decode_pending(stream, group, rows)
        self._stats.read += len(entries)
        return entries

    async def _decode_pending(self, stream: str, group: str, rows: list[Any]) -> list[Entry]:
        entries, poison = [], []
        for entry_id, fields in rows:
            entry = self._decode(stream, entry_id, fields)
            if entry is None:
                poison.append(entry_id)
            else:
                entries.append(entry)
        if poison:  # unreadable or trimmed: acking is the only way it stops coming back
            await self.ack(stream, group, *poison)
        return entries

    async def ack(self, stream: str, group: str, *ids: str) -> None:
        """Acknowledge entries of ``group`` (they leave the pending list)."""
        if ids:
            await self._call(self._redis.xack(self.key(stream), group, *ids))

    async def pending_count(self, stream: str, group: str) -> int:
        """How many entries of ``group`` are delivered but not acknowledged (all consumers)."""
        summary = await self._call(self._redis.xpending(self.key(stream), group))
        return int(summary["pending"])


__all__ = ["Bus", "BusStats", "BusUnavailable", "Entry", "Message", "redact"]
