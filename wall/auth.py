"""Login, sessions and authentication (who is asking); ``wall.access`` decides what each role may do.

Pure cores (:class:`SessionStore`, :class:`LoginLimiter`) take ``now`` as an argument; the aiohttp adapter is
the middleware plus cookie helpers. A random token (``secrets.token_urlsafe``) in the HttpOnly, SameSite=Strict
cookie ``cw_session`` maps to the user, role, expiry and the session's CSRF token; ``wall.sessions`` keeps that map in server memory (a
restart logs every browser out, which the wall page handles by going back to the login page) or in Redis, shared
by several wall servers.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from config import Role, User
from wall.errors import Handler, json_error
from wall.passwords import hash_password, verify_password

COOKIE = "cw_session"
PUBLIC_API = frozenset({"/api/health", "/api/login", "/api/openapi.json"})
"""API paths that need no session."""
LOGIN_REQUIRED_PAGES = ("/wall",)
"""Pages that redirect to ``/login?next=...`` without a session."""


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser: who, which role, and until when."""

    token: str
    username: str
    display_name: str
    role: Role
    created_at: float
    expires_at: float
    csrf_token: str = ""
    """Sent back in ``X-CSRF-Token`` on every state-changing request (``wall.access.check_csrf``)."""

    def user_dict(self) -> dict[str, Any]:
        """The user as the API shows it: ``{username, display_name, role}``."""
        return {"username": self.username, "display_name": self.display_name, "role": self.role.value}


class SessionStore:
    """Server-side sessions with a fixed lifetime; at most ``max_sessions`` (oldest evicted first)."""

    def __init__(self, ttl_s: float, *, max_sessions: int = 10_000):
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, user: User, now: float) -> Session:
        """Start a session for ``user``; returns it with a fresh unguessable token."""
        self.purge(now)
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        session = Session(
            token=secrets.token_urlsafe(32),
            username=user.username,
            display_name=user.display_name or user.username,
            role=user.role,
            created_at=now,
            expires_at=now + self.ttl_s,
            csrf_token=secrets.token_urlsafe(32),
        )
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None, now: float) -> Session | None:
        """The live session for ``token``, or None (unknown or expired; expired ones are forgotten)."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        if now >= session.expires_at:
            del self._sessions[token]
            return None
        return session

    def revoke(self, token: str | None) -> Session | None:
        """End a session (logout); returns it if it existed."""
        return self._sessions.pop(token, None) if token else None

    def revoke_user(self, username: str) -> int:
        """End every session of ``username`` (e.g. the user was removed); returns how many."""
        tokens = [t for t, s in self._sessions.items() if s.username == username]
        for token in tokens:
            del self._sessions[token]
        return len(tokens)

    def purge(self, now: float) -> int:
        """Forget expired sessions; returns how many."""
        expired = [t for t, s in self._sessions.items() if now >= s.expires_at]
        for token in expired:
            del self._sessions[token]
        return len(expired)


class LoginLimiter:
    """At most ``max_failures`` failed logins per key (username + client address) in a sliding window."""

    def __init__(self, *, max_failures: int = 10, window_s: float = 60.0, max_keys: int = 10_000):
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.refused = 0
        """Login attempts refused because the key was over the limit."""

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        times = self._recent(key, now)
        if times is None or len(times) < self.max_failures:
            return 0.0
        self.refused += 1
        return max(0.0, times[-self.max_failures] + self.window_s - now)

    def failure(self, key: str, now: float) -> None:
        """Record one failed attempt for ``key``."""
        times = self._recent(key, now)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.max_failures)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        times.append(now)

    def success(self, key: str) -> None:
        """A successful login clears the key's failures."""
        self._failures.pop(key, None)


class Authenticator:
    """Checks a username and password against the configured users (scrypt, in a worker thread).

    An unknown username is checked against a dummy hash with the same cost, so response time does not tell
    which usernames exist.
    """

    def __init__(self, users: Iterable[User]):
        self._users = {u.username: u for u in users}
        first = next(iter(self._users.values()), None)
        n, r, p = (int(x) for x in first.password_hash.split("$")[1:4]) if first else (2**14, 8, 1)
        self._dummy_hash = hash_password(secrets.token_hex(8), n=n, r=r, p=p)

    async def check(self, username: str, password: str) -> User | None:
        """The user when the password is right, else None."""
        user = self._users.get(username)
        stored = user.password_hash if user else self._dummy_hash
        ok = await asyncio.to_thread(verify_password, password, stored)
        return user if ok and user is not None else None


SESSION = web.RequestKey("session", Session)


def current_session(request: web.Request) -> Session | None:
    """The request's session (set by :func:`auth_middleware`), or None."""
    return request.get(SESSION)


def require_session(request: web.Request) -> Session:
    """The session of a request that passed the middleware's login check."""
    session = request.get(SESSION)
    if session is None:  # only reachable if a route's rule in wall.access were public
        raise web.HTTPUnauthorized(text='{"error": "login required"}', content_type="application/json")
    return session


def set_session_cookie(response: web.StreamResponse, session: Session, *, secure: bool) -> None:
    """Put the session token in the HttpOnly, SameSite=Strict cookie."""
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(session.expires_at - session.created_at),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    """Tell the browser to forget the session cookie."""
    response.del_cookie(COOKIE, path="/")


def _cross_origin(request: web.Request) -> bool:
    """A browser request from another site (Origin header naming a different host)."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    try:
        host = urlsplit(origin).netloc
    except ValueError:
        return True
    return not hmac.compare_digest(host.lower(), request.host.lower())


def is_public(path: str) -> bool:
    """Whether ``path`` is reachable without a session."""
    if path.startswith("/api/") or path == "/api":
        return path in PUBLIC_API
    if path.startswith("/evidence/"):
        return False
    return not any(path == p or path.startswith(p + "/") for p in LOGIN_REQUIRED_PAGES)


def make_auth_middleware(sessions: Any, clock: Any) -> Any:
    """The access rule: public paths pass; protected API paths get 401 JSON; protected pages redirect."""

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if (request.method not in ("GET", "HEAD", "OPTIONS") or upgrade) and _cross_origin(request):
            return json_error(403, f"cross-origin request from {request.headers.get('Origin')} refused")
        session = await sessions.get(request.cookies.get(COOKIE), clock())
        if session is not None:
            request[SESSION] = session
        elif not is_public(request.path):
            if request.path.startswith(("/api/", "/evidence/")):
                return json_error(401, "login required")
            target = request.path_qs
            raise web.HTTPFound(f"/login?next={quote(target, safe='/')}")
        return await handler(request)

    return auth_middleware
