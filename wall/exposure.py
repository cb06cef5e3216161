"""Who can reach the wall server, and with which credentials (issue 22): demo passwords never listen beyond
loopback by accident, and the site is served over TLS when the config names a certificate.

``check_exposure`` runs before the server binds: users whose password is the published demo password
(``citywall``) on an address other than loopback stop start-up with a clear error, unless
``wall.allow_demo_users_beyond_loopback`` is set (then a loud warning on every start). ``start_site`` binds the
guarded site (``wall.connections``), with TLS from ``wall.tls_cert`` / ``wall.tls_key``.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from aiohttp import web

from config import Settings
from wall import state
from wall.connections import GUARD, GuardedSite, tls_context
from wall.errors import BadRequest
from wall.passwords import verify_password

log = logging.getLogger("citywall.wall")

DEMO_PASSWORD = "citywall"


class ExposureError(RuntimeError):
    """The configuration would put known passwords on the network."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; ``0.0.0.0``, ``""`` and every other name are not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def demo_users(settings: Settings) -> list[str]:
    """Usernames whose password is the published demo password."""
    return [u.username for u in settings.users if verify_password(DEMO_PASSWORD, u.password_hash)]


def check_exposure(settings: Settings, host: str) -> list[str]:
    """Raise :class:`ExposureError` when demo passwords would listen beyond loopback; returns the demo users."""
    users = demo_users(settings)
    if users and not is_loopback(host):
        message = (f"wall.host {host!r} listens beyond loopback, but users {', '.join(users)} still have the demo "
                   f"password; set real passwords (citywall hash-password) or listen on 127.0.0.1 "
                   f"(演示账号的默认密码不得对外网开放)")
        if not settings.wall.allow_demo_users_beyond_loopback:
            raise ExposureError(message)
        log.warning("!!! %s — started anyway because wall.allow_demo_users_beyond_loopback is true", message)
    if not is_loopback(host) and settings.wall.tls_cert is None and not settings.wall.trusted_proxies:
        log.warning("wall.host %r: serving plain HTTP beyond loopback; set wall.tls_cert/tls_key or put an HTTPS "
                    "reverse proxy in front (wall.trusted_proxies)", host)
    return users


async def start_site(runner: web.AppRunner, app: web.Application, host: str, port: int) -> GuardedSite:
    """Bind the wall server behind its connection guard, with TLS when configured."""
    wall = app[state.SETTINGS].wall
    ssl_context = tls_context(wall.tls_cert, wall.tls_key) if wall.tls_cert and wall.tls_key else None
    site = GuardedSite(runner, app[GUARD], host, port, ssl_context=ssl_context)
    await site.start()
    return site


def host_allowed(host_header: str, allowed: frozenset[str]) -> bool:
    """Whether a request's Host names this server: a literal IP address (DNS rebinding needs a name), ``localhost``,
    or one of ``wall.allowed_hosts`` (``*`` allows every name, e.g. behind a proxy that checks it)."""
    if "*" in allowed:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        name = host[1:].split("]", 1)[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    if not name:
        return False
    if name == "localhost" or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def make_host_middleware(allowed_hosts: list[str]) -> Any:
    """Refuse (400 naming Host) a request whose Host is a name this server was not configured with: a DNS
    rebinding page reaches the server under the attacker's name, which is never on the list."""
    allowed = frozenset(h.strip().lower().rstrip(".") for h in allowed_hosts)

    @web.middleware
    async def host_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host", ""), allowed):
            raise BadRequest("Host", f"{request.headers.get('Host', '')[:100]!r} is not an address of this server; "
                                     "add the name to wall.allowed_hosts")
        return await handler(request)

    return host_middleware
