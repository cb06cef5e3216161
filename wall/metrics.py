"""Prometheus metrics at ``/metrics`` (text exposition format 0.0.4), for scrapers and dashboards.

The wall server reports its own figures (WebSocket clients, frames sent and dropped, live viewers, sessions) and
asks every provider in ``app[state.METRICS]`` for more: ``citywall up`` registers ingest, detection, the case
worker, the bus and the case store there (``citywall.metrics``). A provider is a plain function returning
:class:`Family` objects, so this module knows no other room. A provider that fails is reported as
``citywall_metrics_provider_errors_total`` and skipped, never a failed scrape.

Like ``/api/health`` the page needs no session (scrapers have none); it carries counts and camera ids, never
URLs or credentials.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from wall import state

log = logging.getLogger("citywall.wall.metrics")

Kind = Literal["gauge", "counter"]
Labels = Mapping[str, str]
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Family:
    """One metric with its help text and samples (labels → value)."""

    name: str
    kind: Kind
    help: str
    samples: tuple[tuple[Labels, float], ...]

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} is not a Prometheus name")


Provider = Callable[[], Iterable[Family]]
"""A room's figures, read at scrape time."""


def family(name: str, kind: Kind, help: str, samples: Iterable[tuple[Labels, float]] | float) -> Family:
    """A Family; a bare number is one unlabelled sample."""
    if isinstance(samples, (int, float)):
        return Family(name, kind, help, (({}, float(samples)),))
    return Family(name, kind, help, tuple((dict(labels), float(value)) for labels, value in samples))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(value)


def render(families: Iterable[Family]) -> str:
    """The text exposition of ``families`` (one HELP/TYPE block per name; later duplicates are merged in)."""
    merged: dict[str, Family] = {}
    for fam in families:
        if fam.name in merged:
            old = merged[fam.name]
            merged[fam.name] = Family(old.name, old.kind, old.help, old.samples + fam.samples)
        else:
            merged[fam.name] = fam
    lines: list[str] = []
    for fam in merged.values():
        lines.append(f"# HELP {fam.name} {_escape(fam.help)}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for labels, value in fam.samples:
            if labels:
                inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
                lines.append(f"{fam.name}{{{inner}}} {_number(value)}")
            else:
                lines.append(f"{fam.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def wall_families(app: web.Application) -> list[Family]:
    """The wall server's own figures."""
    hub = app[state.HUB].stats()
    live = app[state.LIVE_SOCKETS].stats()
    return [
        family("citywall_ws_clients", "gauge", "Browsers connected to the event WebSocket", hub["clients"]),
        family("citywall_ws_frames_sent_total", "counter", "Event frames written to browsers", hub["sent"]),
        family("citywall_ws_dropped_clients_total", "counter",
               "Browsers disconnected because their bounded send queue was full", hub["dropped_clients"]),
        family("citywall_ws_bus_entries_total", "counter", "Bus entries read by the event hub", hub["entries"]),
        family("citywall_live_viewers", "gauge", "Open live-video sockets", live["viewers"]),
        family("citywall_live_fragments_sent_total", "counter", "fMP4 fragments sent to live viewers",
               live["fragments_sent"]),
        family("citywall_live_bytes_sent_total", "counter", "Bytes of live video sent", live["bytes_sent"]),
    ] + ([family("citywall_sessions", "gauge", "Logged-in sessions", n)]
         if (n := app[state.SESSIONS].count()) is not None else []) + _security_families(app)


def _security_families(app: web.Application) -> list[Family]:
    """What the limits refused (issue 22): logins, connections, sockets."""
    from wall.connections import GUARD
    from wall.socket_quota import SOCKET_QUOTA

    out = [family("citywall_login_refused_total", "counter", "Login attempts refused by the login limits (429)",
                  getattr(app[state.LOGIN_LIMITER], "refused", 0)),
           family("citywall_login_checked_total", "counter", "Passwords checked (scrypt)",
                  app[state.AUTHENTICATOR].checked),
           family("citywall_sockets_refused_total", "counter", "WebSocket upgrades refused by the socket caps",
                  app[SOCKET_QUOTA].refused)]
    if GUARD in app:
        guard = app[GUARD].stats()
        out += [family("citywall_http_connections", "gauge", "Open HTTP connections", guard["open"]),
                family("citywall_http_connections_refused_total", "counter",
                       "Connections refused by the connection caps (503)", guard["refused"]),
                family("citywall_http_connections_timed_out_total", "counter",
                       "Connections closed for a late request head or idleness", guard["timed_out"])]
    return out


def scrape(families: list[Family], providers: Iterable[Provider]) -> web.Response:
    """The /metrics response: ``families`` plus every provider's, a failing provider counted and skipped."""
    errors = 0
    for provider in providers:
        try:
            families.extend(provider())
        except Exception:  # a broken provider must not fail the scrape
            errors += 1
            log.exception("metrics provider %r failed", provider)
    families.append(family("citywall_metrics_provider_errors_total", "counter",
                           "Metric providers that failed during this scrape", errors))
    return web.Response(body=render(families).encode(), headers={"Content-Type": CONTENT_TYPE})


async def metrics(request: web.Request) -> web.Response:
    return scrape(wall_families(request.app), request.app[state.METRICS])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)

