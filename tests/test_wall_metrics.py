"""wall.metrics: the Prometheus text format (written by prometheus-client), histograms of the rooms' plain
histograms, and /metrics on a real wall server (real Redis) with providers: a provider error counter that never
goes back, the bus publish histogram."""

from __future__ import annotations

import math

import aiohttp
import pytest
from aiohttp import web

from broker.bus import Bus
from broker.histogram import Histogram
from cases.store import CaseStore
from config import load_settings
from wall.app import create_app
from wall.metrics import Family, family, histogram, render


def test_render_follows_the_exposition_format() -> None:
    text = render([
        family("citywall_camera_up", "gauge", "1 when online",
               [({"camera": "cam-1"}, 1), ({"camera": 'a"b\\c\nd'}, 0)]),
        family("citywall_x_total", "counter", "help with \\ backslash", 3.5),
        family("citywall_nan", "gauge", "not a number", math.nan),
    ])
    assert text.splitlines() == [
        "# HELP citywall_camera_up 1 when online",
        "# TYPE citywall_camera_up gauge",
        'citywall_camera_up{camera="cam-1"} 1.0',
        'citywall_camera_up{camera="a\\"b\\\\c\\nd"} 0.0',
        "# HELP citywall_x_total help with \\\\ backslash",
        "# TYPE citywall_x_total counter",
        "citywall_x_total 3.5",
        "# HELP citywall_nan not a number",
        "# TYPE citywall_nan gauge",
        "citywall_nan NaN",
    ]


def test_same_name_from_two_providers_is_one_block() -> None:
    text = render([family("m", "gauge", "h", [({"w": "1"}, 1)]), family("m", "gauge", "h", [({"w": "2"}, 2)])])
    assert text.count("# TYPE m gauge") == 1 and 'm{w="2"} 2.0' in text


def test_a_histogram_has_cumulative_buckets_sum_and_count() -> None:
    h = Histogram(buckets=(0.01, 0.1))
    for value in (0.005, 0.01, 0.05, 3.0):
        h.observe(value)
    text = render([histogram("citywall_lat_seconds", "latency", [({"worker": "w1"}, h)])])
    assert text.splitlines()[1:] == [
        "# TYPE citywall_lat_seconds histogram",
        'citywall_lat_seconds_bucket{le="0.01",worker="w1"} 2.0',
        'citywall_lat_seconds_bucket{le="0.1",worker="w1"} 3.0',
        'citywall_lat_seconds_bucket{le="+Inf",worker="w1"} 4.0',
        'citywall_lat_seconds_sum{worker="w1"} 3.065',
        'citywall_lat_seconds_count{worker="w1"} 4.0',
    ]
    with pytest.raises(ValueError, match="increasing and distinct"):
        Histogram(buckets=(0.1, 0.01))


def test_a_bad_metric_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Prometheus name"):
        Family("bad name", "gauge", "h", ())


async def test_metrics_page_has_wall_figures_and_survives_a_broken_provider(bus: Bus, tmp_path) -> None:
    settings = load_settings("config/demo.yaml")
    store = CaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}")

    def broken() -> list[Family]:
        raise RuntimeError("boom")

    app = create_app(settings, bus=bus, cases=store, live=None, evidence_dir=tmp_path,
                     metric_providers=[lambda: [family("citywall_test_answer", "gauge", "test", 42)], broken])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    text = await resp.text()
    finally:
        await runner.cleanup()
        store.close()
    assert "citywall_test_answer 42.0" in text
    assert "citywall_ws_clients 0.0" in text
    assert "citywall_metrics_provider_errors_total 2.0" in text  # one per scrape, and the count never goes back


async def test_the_bus_publish_histogram_counts_every_publish(bus: Bus) -> None:
    from citywall.metrics import bus_metrics

    for n in range(3):
        await bus.publish_raw("pings", {"n": n})
    text = render(bus_metrics(bus)())
    assert 'citywall_bus_publish_seconds_bucket{le="+Inf"} 3.0' in text
    assert "citywall_bus_publish_seconds_count 3.0" in text and "citywall_bus_published_total 3.0" in text
