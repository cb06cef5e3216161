"""Prometheus metrics at ``/metrics`` (text exposition format 0.0.4, written by prometheus-client), for scrapers and
dashboards.

The wall server reports its own figures (WebSocket clients, frames sent and dropped, live viewers, sessions) and
asks every provider in ``app[state.METRICS]`` for more: ``citywall up`` registers ingest, detection, the case
worker, the bus and the case store there (``citywall.metrics``). A provider is a plain function returning
:class:`Family` objects (gauges, counters, and histograms of the rooms' plain ``broker.histogram.Histogram``), so
this module knows no other room; a collector hands them to prometheus-client at scrape time. A provider that fails
is skipped, never a failed scrape, and counted in ``citywall_metrics_provider_errors_total`` (since start: a
counter never goes back).

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
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

from broker.histogram import Histogram
from wall import state

log = logging.getLogger("citywall.wall.metrics")

Kind = Literal["gauge", "counter", "histogram"]
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
    histograms: tuple[tuple[Labels, Histogram], ...] = ()
    """For kind ``histogram``: labels → histogram (``samples`` stays empty)."""

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


def histogram(name: str, help: str, rows: Iterable[tuple[Labels, Histogram]] | Histogram) -> Family:
    """A histogram Family; a bare Histogram is one unlabelled series."""
    if isinstance(rows, Histogram):
        rows = [({}, rows)]
    return Family(name, "histogram", help, (), tuple((dict(labels), h) for labels, h in rows))


def _bound(value: float) -> str:
    return "+Inf" if math.isinf(value) else repr(float(value))


def _metric(fam: Family) -> Metric:
    """``fam`` as prometheus-client's metric (counters are named with ``_total`` on both sides)."""
    base = fam.name.removesuffix("_total") if fam.kind == "counter" else fam.name
    metric = Metric(base, fam.help, fam.kind)
    for labels, value in fam.samples:
        metric.add_sample(fam.name, {k: str(v) for k, v in labels.items()}, float(value))
    for labels, hist in fam.histograms:
        tags = {k: str(v) for k, v in labels.items()}
        buckets, total, count = hist.snapshot()
        for bound, n in buckets:
            metric.add_sample(f"{fam.name}_bucket", {**tags, "le": _bound(bound)}, float(n))
        metric.add_sample(f"{fam.name}_sum", tags, total)
        metric.add_sample(f"{fam.name}_count", tags, float(count))
    return metric


class _Families:
    """A one-scrape collector over ``families`` (later duplicates of a name merged into the first)."""

    def __init__(self, families: Iterable[Family]) -> None:
        merged: dict[str, Family] = {}
        for fam in families:
            old = merged.get(fam.name)
            merged[fam.name] = fam if old is None else Family(old.name, old.kind, old.help, old.samples + fam.samples,
                                                              old.histograms + fam.histograms)
        self.families = list(merged.values())

    def collect(self) -> Iterable[Metric]:
        return [_metric(fam) for fam in self.families]


def render(families: Iterable[Family]) -> str:
    """The text exposition of ``families`` (one HELP/TYPE block per name; later duplicates are merged in)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))  # a collector is anything with collect()
    return generate_latest(registry).decode()


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


@dataclass
class ScrapeStats:
    provider_errors: int = 0
    """Provider failures since start (a counter: never reset by a scrape)."""


SCRAPES: web.AppKey[ScrapeStats] = web.AppKey("metrics_scrapes", ScrapeStats)


def scrape(families: list[Family], providers: Iterable[Provider], stats: ScrapeStats) -> web.Response:
    """The /metrics response: ``families`` plus every provider's, a failing provider counted and skipped."""
    for provider in providers:
        try:
            families.extend(provider())
        except Exception:  # a broken provider must not fail the scrape
            stats.provider_errors += 1
            log.exception("metrics provider %r failed", provider)
    families.append(family("citywall_metrics_provider_errors_total", "counter",
                           "Metric provider failures since start", stats.provider_errors))
    return web.Response(body=render(families).encode(), headers={"Content-Type": CONTENT_TYPE})


async def metrics(request: web.Request) -> web.Response:
    providers = request.app[state.METRICS]
    return scrape(wall_families(request.app), providers, request.app[SCRAPES])


def add_routes(app: web.Application) -> None:
    app[SCRAPES] = ScrapeStats()
    app.router.add_get("/metrics", metrics)

