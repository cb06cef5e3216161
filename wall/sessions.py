"""Where sessions live: this server's memory (one wall server), or Redis (several wall servers behind one address).

Both have the same asynchronous shape (:class:`Sessions`), used by the access middleware and login/logout. The
in-memory one wraps the pure :class:`wall.auth.SessionStore`; the shared one keeps each session as a Redis key
``{prefix}:session:{token}`` (JSON with the session's CSRF token, expiring with the session), so a browser logged in
through one wall server is known to every other, and a logout anywhere ends it everywhere.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Protocol

from config import Role, User
from wall.auth import Session, SessionStore


class Sessions(Protocol):
    async def create(self, user: User, now: float) -> Session: ...

    async def get(self, token: str | None, now: float) -> Session | None: ...

    async def revoke(self, token: str | None) -> Session | None: ...

    async def revoke_user(self, username: str) -> int:
        """End every session of ``username`` (disabled or removed by the administrator); how many."""
        ...

    def count(self) -> int | None:
        """Live sessions, when cheaply known (None for the shared store)."""
        ...

    def take_evicted(self) -> list[str]:
        """Tokens ended to keep a user within ``sessions_per_user`` since the last call (their sockets close)."""
        ...


class LocalSessions:
    """Sessions in this process's memory (``citywall up``)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def create(self, user: User, now: float) -> Session:
        return self.store.create(user, now)

    async def get(self, token: str | None, now: float) -> Session | None:
        return self.store.get(token, now)

    async def revoke(self, token: str | None) -> Session | None:
        return self.store.revoke(token)

    async def revoke_user(self, username: str) -> int:
        return self.store.revoke_user(username)

    def count(self) -> int | None:
        return len(self.store)

    def take_evicted(self) -> list[str]:
        out, self.store.evicted = self.store.evicted, []
        return out


class RedisSessions:
    """Sessions shared by every wall server of a cluster (``citywall wall``)."""

    def __init__(self, redis: Any, prefix: str, ttl_s: float, *, max_per_user: int = 64) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._redis = redis
        self._prefix = prefix
        self.ttl_s = ttl_s
        self.max_per_user = max_per_user
        self._evicted: list[str] = []

    def take_evicted(self) -> list[str]:
        out, self._evicted = self._evicted, []
        return out

    def _key(self, token: str) -> str:
        return f"{self._prefix}:session:{token}"

    async def create(self, user: User, now: float) -> Session:
        session = Session(token=secrets.token_urlsafe(32), username=user.username,
                          display_name=user.display_name or user.username, role=user.role,
                          created_at=now, expires_at=now + self.ttl_s, csrf_token=secrets.token_urlsafe(32))
        data = {"username": session.username, "display_name": session.display_name, "role": session.role.value,
                "created_at": session.created_at, "expires_at": session.expires_at, "csrf_token": session.csrf_token}
        await self._redis.set(self._key(session.token), json.dumps(data, ensure_ascii=False),
                              px=int(self.ttl_s * 1000))
        # The user's sessions, oldest first: beyond max_per_user the user's own oldest end (nobody else's).
        mine = f"{self._prefix}:user_sessions:{user.username}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(mine, "-inf", now - self.ttl_s)
            pipe.zadd(mine, {session.token: now})
            pipe.pexpire(mine, int(self.ttl_s * 1000))
            pipe.zrange(mine, 0, -1)
            tokens = (await pipe.execute())[-1]
        excess = [t.decode() if isinstance(t, bytes) else t for t in tokens][: max(0, len(tokens) - self.max_per_user)]
        if excess:
            await self._redis.zrem(mine, *excess)
            await self._redis.delete(*(self._key(t) for t in excess))
            self._evicted += excess
        return session

    async def get(self, token: str | None, now: float) -> Session | None:
        if not token or len(token) > 128:
            return None
        raw = await self._redis.get(self._key(token))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            session = Session(token=token, username=data["username"], display_name=data["display_name"],
                              role=Role(data["role"]), created_at=float(data["created_at"]),
                              expires_at=float(data["expires_at"]), csrf_token=str(data["csrf_token"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if now < session.expires_at else None

    async def revoke(self, token: str | None) -> Session | None:
        if not token or len(token) > 128:
            return None
        session = await self.get(token, 0.0)
        await self._redis.delete(self._key(token))
        return session

    def count(self) -> int | None:
        return None

    async def revoke_user(self, username: str) -> int:
        mine = f"{self._prefix}:user_sessions:{username}"
        tokens = [t.decode() if isinstance(t, bytes) else t for t in await self._redis.zrange(mine, 0, -1)]
        if tokens:
            await self._redis.delete(*(self._key(t) for t in tokens))
        await self._redis.delete(mine)
        return len(tokens)
