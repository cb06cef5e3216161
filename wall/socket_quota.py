"""How many long-lived sockets (``/api/ws`` and ``/api/live/...``) one user and the whole server may hold.

Checked before the WebSocket handshake: past a cap the upgrade is answered 429 (JSON naming the cap) and nothing is
allocated for it, so 300 stalled live sockets from one signed-in user cost at most ``wall.live_sockets_per_user``
sockets' worth of memory. Each accepted socket gives its slot back when its handler ends.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from aiohttp import web

from wall.errors import json_error


class SocketQuota:
    """Per-user and total counts of open sockets (one event loop: no lock needed)."""

    def __init__(self, *, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._open: Counter[str] = Counter()
        self.refused = 0

    def open_count(self, username: str | None = None) -> int:
        return self._open[username] if username is not None else sum(self._open.values())

    def refusal(self, username: str) -> web.Response | None:
        """429 when ``username`` may not open another socket now, else None."""
        if self._open[username] >= self.per_user:
            self.refused += 1
            return json_error(429, f"too many open sockets for {username} (wall.live_sockets_per_user="
                                   f"{self.per_user}); close some tiles or pages", headers={"Retry-After": "5"})
        if sum(self._open.values()) >= self.total:
            self.refused += 1
            return json_error(429, f"too many open sockets on this server (wall.live_sockets_total={self.total})",
                              headers={"Retry-After": "5"})
        return None

    @contextlib.contextmanager
    def slot(self, username: str) -> Iterator[None]:
        """Hold one of ``username``'s slots while the socket is open."""
        self._open[username] += 1
        try:
            yield
        finally:
            self._open[username] -= 1
            if self._open[username] <= 0:
                del self._open[username]


SOCKET_QUOTA: web.AppKey[SocketQuota] = web.AppKey("socket_quota", SocketQuota)
