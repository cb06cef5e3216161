"""Login, sessions and authentication (who is asking); ``wall.access`` decides what each role may do.

Pure cores (:class:`SessionStore`, :class:`LoginLimiter`) take ``now`` as an argument; the aiohttp adapter is
the middleware plus cookie helpers. A random token (``secrets.token_urlsafe``) in the HttpOnly, SameSite=Strict
cookie ``cw_session`` maps to the user, role, expiry and the session's CSRF token; ``wall.sessions`` keeps that map
in server memory (a restart logs every browser out, which the wall page handles by going back to the login page) or
in Redis, shared
by several wall servers.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
from collections import OrderedDict, deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from config import Role, User
from wall.errors import Handler, json_error
from wall.passwords import hash_password, verify_password

COOKIE = "cw_session"
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)
"""``wall.trusted_proxies`` parsed into ``ipaddress`` networks."""
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


class SessionsFull(RuntimeError):
    """Every session slot is taken (shown as 503); nobody else's session is evicted to make room."""


class SessionStore:
    """Server-side sessions with a fixed lifetime.

    At most ``max_per_user`` per user (a new login ends *that user's* oldest) and ``max_sessions`` in all (beyond
    that a login is refused with :class:`SessionsFull`): one user's logins never end another user's sessions."""

    def __init__(self, ttl_s: float, *, max_sessions: int = 10_000, max_per_user: int = 64):
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self.max_per_user = max_per_user
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.evicted: list[str] = []
        """Tokens ended by :meth:`create` to keep a user within ``max_per_user`` (read and cleared by the caller)."""

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, user: User, now: float) -> Session:
        """Start a session for ``user``; returns it with a fresh unguessable token."""
        self.purge(now)
        own = [t for t, s in self._sessions.items() if s.username == user.username]  # oldest first
        while len(own) >= self.max_per_user:
            token = own.pop(0)
            del self._sessions[token]
            self.evicted.append(token)
        if len(self._sessions) >= self.max_sessions:
            raise SessionsFull(f"all {self.max_sessions} sessions are in use")
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


class PasswordCheckBusy(RuntimeError):
    """More password checks are waiting than ``password_queue`` allows (shown as 503)."""


class Authenticator:
    """Checks a username and password against the configured users (scrypt on a small pool of its own).

    An unknown username is checked against a dummy hash with the same cost, so response time does not tell
    which usernames exist. The hashing runs on its own bounded executor, never on the loop's default one, so a
    burst of logins cannot starve the case store's and the screens' worker threads; at most ``queue`` checks wait
    (:class:`PasswordCheckBusy` beyond that).
    """

    def __init__(self, users: Iterable[User], *, workers: int = 2, queue: int = 32):
        self._users = {u.username: u for u in users}
        first = next(iter(self._users.values()), None)
        n, r, p = (int(x) for x in first.password_hash.split("$")[1:4]) if first else (2**14, 8, 1)
        self._dummy_hash = hash_password(secrets.token_hex(8), n=n, r=r, p=p)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="password")
        self._queue = queue
        self._pending = 0
        self.checked = 0
        """Passwords actually hashed (a refused attempt never gets here)."""

    async def check(self, username: str, password: str) -> User | None:
        """The user when the password is right, else None."""
        if self._pending >= self._queue:
            raise PasswordCheckBusy(f"{self._pending} password checks waiting")
        user = self._users.get(username)
        if user is not None and not user.enabled:
            user = None  # a disabled user is checked like an unknown one: same cost, same answer
        stored = user.password_hash if user else self._dummy_hash
        self._pending += 1
        self.checked += 1
        try:
            ok = await asyncio.get_running_loop().run_in_executor(self._executor, verify_password, password, stored)
        finally:
            self._pending -= 1
        return user if ok and user is not None else None

    def set_users(self, users: Iterable[User]) -> None:
        """The running configuration changed the users (``admin.running``): later checks use these."""
        self._users = {u.username: u for u in users}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


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


def _trusted(request: web.Request) -> bool:
    """Whether the peer is one of ``wall.trusted_proxies`` (its X-Forwarded-* headers are believed)."""
    proxies = request.app[TRUSTED_PROXIES]
    if not proxies or not request.remote:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:
        return False
    return any(peer in net for net in proxies)


def client_address(request: web.Request) -> str:
    """The client's address: the peer, or behind a trusted proxy the last X-Forwarded-For hop it did not add."""
    if _trusted(request):
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            try:
                ip = ipaddress.ip_address(hop)
            except ValueError:
                break
            if not any(ip in net for net in request.app[TRUSTED_PROXIES]):
                return str(ip)
    return request.remote or ""


def is_secure(request: web.Request) -> bool:
    """HTTPS to the browser: served over TLS here, or a trusted proxy says ``X-Forwarded-Proto: https``."""
    if request.secure:  # aiohttp reads this from the connection (TLS), never from a header
        return True
    return _trusted(request) and request.headers.get("X-Forwarded-Proto", "").strip().lower() == "https"


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
