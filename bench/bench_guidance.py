"""Voice guidance figures: TTS render time, clip cache hit rate, alarm → speaker ack latency on loopback.

``python bench/bench_guidance.py [--n 200]`` starts a private mosquitto, a clip HTTP server and one simulated MQTT
speaker (which fetches and decodes every clip before acking, as a real speaker fetches before playing), measures,
prints one JSON object and stops them. The latency path is the service's: template → policy → cache (hit) →
MQTT play (QoS 1) → speaker fetches clip over HTTP + decodes → ack. Alarms go one at a time (no queueing).
Target: p95 ≤ 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import time as dtime
from pathlib import Path
from typing import Any

from broker.embedded import EmbeddedMosquitto
from guidance.clip_server import ClipServer
from guidance.clips import ClipCache, ClipFormat
from guidance.policy import BroadcastPolicy, PolicyConfig
from guidance.service import GuidanceService
from guidance.simulator import SpeakerSimulator
from guidance.speakers import MqttSpeakerAdapter, SpeakerConfig, SpeakerRegistry
from guidance.templates import DEFAULT_TEMPLATES, TemplateBook
from guidance.tts import EspeakTts

PLACES = ["人民路口", "解放路东段", "中山公园南门", "火车站广场", "新华街菜市场", "滨江路步行街", "学府路小学门口",
          "建设路公交站", "文化宫北侧", "长江路夜市"]


@dataclass
class _Alarm:
    camera_id: str
    event: str
    zone_name: str
    alarm_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    phase: str = "raised"
    camera_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _ms(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2), "max_ms": round(ms[-1], 2)}


def bench_tts(n: int) -> dict[str, Any]:
    tts = EspeakTts()
    book = TemplateBook()
    texts = [book.render(event, place=PLACES[i % len(PLACES)]) for i, event in
             zip(range(n), [e for _ in range(n) for e in DEFAULT_TEMPLATES], strict=False)]
    times = []
    for text in texts:
        t0 = time.perf_counter()
        tts.render_wav(text)
        times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {"tts_render": _ms(times), "chars_mean": round(statistics.mean(map(len, texts)), 1)}
    with tempfile.TemporaryDirectory() as d:
        for fmt in ClipFormat:
            cache = ClipCache(Path(d) / fmt.value, tts)
            times = []
            for text in texts[: max(5, n // 4)]:
                t0 = time.perf_counter()
                cache.get(text, fmt)
                times.append(time.perf_counter() - t0)
            out[f"miss_render_{fmt.value}"] = _ms(times)
    return out


def bench_hit_rate(n_alarms: int, seed: int = 1) -> dict[str, Any]:
    """Alarms spread over 10 places × 3 events: how often the clip is already cached (MP3)."""
    rng = random.Random(seed)
    book = TemplateBook()
    with tempfile.TemporaryDirectory() as d:
        cache = ClipCache(Path(d), EspeakTts())
        for _ in range(n_alarms):
            cache.get(book.render(rng.choice(list(DEFAULT_TEMPLATES)), place=rng.choice(PLACES)), ClipFormat.MP3)
        return {"alarms": n_alarms, "distinct_messages": len(PLACES) * len(DEFAULT_TEMPLATES), **cache.stats()}


async def bench_latency(n: int, workdir: Path) -> dict[str, Any]:
    with EmbeddedMosquitto(workdir / "mqtt") as mosquitto:
        url = mosquitto.url
        prefix = "bench"
        cache = ClipCache(workdir / "clips", EspeakTts())
        server = ClipServer(cache.directory)
        await server.start()
        adapter = MqttSpeakerAdapter(url, prefix, ack_timeout_s=5.0)
        await adapter.start()
        sim = SpeakerSimulator(url, "spk-1", prefix)
        sim.start()
        clock = [1_800_000_000.0]
        policy = BroadcastPolicy(PolicyConfig(quiet_start=dtime(0, 0), quiet_end=dtime(0, 0), max_per_hour=10**6,
                                              min_repeat_interval_s=0))
        service = GuidanceService(SpeakerRegistry.from_config([SpeakerConfig(id="spk-1", name="喇叭",
                                                                             camera_ids=["cam-1"])]),
                                  TemplateBook(), cache, policy, {"mqtt": adapter}, server.url, repeat=1,
                                  clock=lambda: clock[0])
        try:
            await service.prerender([TemplateBook().render("vending", place=PLACES[0])])
            for _ in range(10):  # warm-up
                clock[0] += 100
                await service.on_alarm(_Alarm("cam-1", "vending", PLACES[0]))
            times = []
            failed = 0
            for _ in range(n):
                clock[0] += 100  # the previous clip has ended: the site is free
                t0 = time.perf_counter()
                [result] = await service.on_alarm(_Alarm("cam-1", "vending", PLACES[0]))
                times.append(time.perf_counter() - t0)
                failed += result.outcome != "played"
            return {"alarm_to_ack": _ms(times), "failed": failed, "clip_bytes": sim.played[-1].info.size_bytes
                    if sim.played[-1].info else None, "cache": cache.stats()}
        finally:
            sim.stop()
            await adapter.close()
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="alarms for the latency run")
    args = parser.parse_args()
    out: dict[str, Any] = {"tts": bench_tts(30), "cache_hit_rate": bench_hit_rate(args.n)}
    with tempfile.TemporaryDirectory() as d:
        out["latency"] = asyncio.run(bench_latency(args.n, Path(d)))
    p95 = out["latency"]["alarm_to_ack"]["p95_ms"]
    out["target_p95_500ms"] = "met" if p95 <= 500 else "MISSED"
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
