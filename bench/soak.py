"""Bounded soak of the whole pipeline: ``citywall up`` on N demo cameras for M minutes, resources sampled each
interval; after the warm-up they must stay flat.

    python bench/soak.py                       # 15 minutes, 16 cameras, a sample a minute, 2 minutes warm-up
    python bench/soak.py --minutes 2 --cameras 4 --sample-s 20 --warmup-s 40    # smoke check

The stack is the embedded default (private redis-server, mosquitto and demo RTSP server started by ``citywall up``,
SQLite cases, guidance with simulated speakers) on a config that repeats the four demo scenes over ``--cameras``
cameras, so alarms, cases and broadcasts keep coming. While it runs, a logged-in client holds the wall's event
socket (``/api/ws``) and ``--viewers`` live sockets (``/api/live/<camera>``) read fMP4 like wall tiles.

Printed per sample, for every process of the stack (citywall itself and each child, by name): RSS (MiB), open file
descriptors and threads; Redis ``used_memory``; and the work done so far (alarms in the stream, cases, event-socket
frames, live bytes). At the end, per figure, the ratio of the last sample to the first sample after the warm-up;
a ratio above ``--threshold`` is flagged GROWTH (the exit status is 1 when anything is flagged). Redis memory is
split: the streams (``MEMORY USAGE`` of each) rise by design until their ``stream_maxlen`` trim, so they are
reported, not judged, and the redis-server's RSS that holds them is flagged only above ``--redis-threshold``; the
rest of Redis's memory (sessions, state tables, groups) is judged like a process figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
import yaml  # noqa: E402

from config import load_settings  # noqa: E402
from tests.stack import run_up  # noqa: E402

REDIS_DATA = ("redis.rss_mib",)
PROCESS_NAMES = {"redis-server": "redis", "mosquitto": "mosquitto", "rtsp_server.py": "demo-rtsp",
                 "citywall.cli": "citywall"}


def soak_config(tmp: Path, cameras: int, redis_url: str | None = None, overrides: Sequence[str] = ()) -> Path:
    """demo.yaml with its four scenes repeated over ``cameras`` cameras (the originals keep their ids, which the
    speakers and screens name), data in ``tmp``; ``redis_url``: the bench's own Redis (``citywall up``'s private
    one has a generated password that only citywall knows); ``overrides``: ``dotted.key=yaml-value`` settings
    (e.g. ``recording.mode=off``) to find what a part of the pipeline costs."""
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text.replace("${CITYWALL_REDIS_URL:-}", "").replace("${CITYWALL_MQTT_URL:-}", ""))
    if redis_url:
        data["brokers"]["redis_url"] = redis_url
    data["storage"]["data_dir"] = str(tmp / "var")
    data["demo"]["media_dir"] = str(ROOT / "var" / "demo-media")
    originals = [c for c in data["cameras"] if str(c.get("url", "")).startswith("demo://")]
    out = []
    for n in range(cameras):
        cam = dict(originals[n % len(originals)])
        if n >= len(originals):
            cam.update(id=f"{cam['id']}-{n}", name=f"{cam['name']}{n}")
        out.append(cam)
    data["cameras"] = out
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected dotted.key=value")
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    path = tmp / "soak.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [pid], {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - set(found)
        found += sorted(frontier)
    return found


def _name(pid: int) -> str:
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    for marker, name in PROCESS_NAMES.items():
        if marker in cmdline:
            return name
    return Path(cmdline.split(" ", 1)[0]).name or str(pid)


def _field(text: str, pattern: str) -> str:
    """Group 1 of ``pattern`` in ``text``; ValueError naming the pattern when it is not there."""
    found = re.search(pattern, text)
    if found is None:
        raise ValueError(f"no {pattern!r} in {text[:80]!r}")
    return found.group(1)


def process_figures(root_pid: int) -> dict[str, dict[str, float]]:
    """name → {rss_mib, fds, threads} for the stack's processes (several of one name are summed)."""
    out: dict[str, dict[str, float]] = {}
    for pid in _descendants(root_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            name = _name(pid)
        except OSError:
            continue  # exited between listing and reading
        rss = re.search(r"VmRSS:\s+(\d+)", status)  # absent for a zombie
        rss_kib = int(rss.group(1)) if rss else 0
        threads = int(_field(status, r"Threads:\s+(\d+)"))
        row = out.setdefault(name, {"rss_mib": 0.0, "fds": 0.0, "threads": 0.0})
        row["rss_mib"] += rss_kib / 1024
        row["fds"] += fds
        row["threads"] += threads
    return out


@dataclass
class Traffic:
    """What the soak's clients saw: event-socket frames by type, live bytes, socket reconnects."""

    frames: dict[str, int] = field(default_factory=dict)
    live_bytes: int = 0
    reconnects: int = 0


async def hold_event_socket(session: aiohttp.ClientSession, url: str, traffic: Traffic) -> None:
    while True:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with session.ws_connect(f"{url}/api/ws", heartbeat=10) as ws:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        kind = json.loads(msg.data).get("type", "?")
                        traffic.frames[kind] = traffic.frames.get(kind, 0) + 1
        traffic.reconnects += 1
        await asyncio.sleep(1)


async def watch_live(session: aiohttp.ClientSession, url: str, camera: str, traffic: Traffic) -> None:
    while True:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with session.ws_connect(f"{url}/api/live/{camera}", heartbeat=10) as ws:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        traffic.live_bytes += len(msg.data)
        traffic.reconnects += 1
        await asyncio.sleep(1)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sample(stack: dict[str, Any], redis: aioredis.Redis, session: aiohttp.ClientSession, prefix: str,
                 traffic: Traffic) -> dict[str, Any]:
    info = await redis.info("memory")
    cases = (await (await session.get(f"{stack['url']}/api/cases?limit=1")).json())["total"]
    return {
        "t_s": round(time.monotonic() - stack["started"], 1),
        "processes": process_figures(stack["proc"].pid),
        "citywall_cpu_s": _cpu_s(stack["proc"].pid),
        "analysed": await frames_analysed(session, stack["url"]),
        "redis_used_mib": info["used_memory"] / 2**20,
        "redis_streams_mib": await streams_mib(redis, prefix),
        "alarms": await redis.xlen(f"{prefix}:alarms"),
        "broadcasts": await redis.xlen(f"{prefix}:broadcasts"),
        "cases": cases,
        "ws_frames": sum(traffic.frames.values()),
        "live_mib": traffic.live_bytes / 2**20,
        "reconnects": traffic.reconnects,
    }


async def frames_analysed(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """Camera → frames analysed so far (``citywall_detector_frames_analysed_total`` on ``/metrics``)."""
    text = await (await session.get(f"{url}/metrics")).text()
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^citywall_detector_frames_analysed_total\{camera="([^"]+)"\} (\S+)$', text, re.M)}


async def streams_mib(redis: aioredis.Redis, prefix: str) -> float:
    """Memory of the stack's streams (``MEMORY USAGE``): they grow by design until their MAXLEN trim."""
    total = 0
    async for key in redis.scan_iter(match=f"{prefix}:*", count=500):
        if await redis.type(key) == "stream":
            total += await redis.memory_usage(key, samples=0) or 0
    return total / 2**20


def print_sample(row: dict[str, Any], names: list[str]) -> None:
    procs = "  ".join(f"{n}: {p['rss_mib']:6.1f} MiB {p['fds']:4.0f} fd {p['threads']:3.0f} thr"
                      for n in names if (p := row["processes"].get(n)))
    print(f"[{row['t_s'] / 60:5.1f} min] {procs}  redis mem {row['redis_used_mib']:.2f} MiB "
          f"(streams {row['redis_streams_mib']:.2f}) | alarms {row['alarms']} "
          f"cases {row['cases']} broadcasts {row['broadcasts']} ws frames {row['ws_frames']} "
          f"live {row['live_mib']:.0f} MiB reconnects {row['reconnects']}", flush=True)


def ratios(rows: list[dict[str, Any]], warmup_s: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """(first sample after warm-up, last sample, figure → last/first)."""
    after = [r for r in rows if r["t_s"] >= warmup_s] or rows
    first, last = after[0], after[-1]
    out: dict[str, float] = {}
    for name, figures in last["processes"].items():
        for key, value in figures.items():
            base = first["processes"].get(name, {}).get(key)
            if base:
                out[f"{name}.{key}"] = value / base
    # Redis memory without the streams (sessions, state tables, groups, allocator): should stay flat.
    out["redis.other_mib"] = ((last["redis_used_mib"] - last["redis_streams_mib"])
                              / (first["redis_used_mib"] - first["redis_streams_mib"]))
    out["redis.streams_mib (bounded by MAXLEN)"] = last["redis_streams_mib"] / first["redis_streams_mib"]
    return first, last, out


async def soak(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="citywall-soak-"))
    from broker.embedded import EmbeddedRedis

    redis_server = EmbeddedRedis(tmp / "redis", password=secrets.token_hex(16))
    redis_url = redis_server.start()
    config = soak_config(tmp, args.cameras, redis_url, args.set)
    prefix = load_settings(config).brokers.topic_prefix
    rows: list[dict[str, Any]] = []
    running = run_up(config, tmp, timeout=180)
    stack = next(running)
    try:
        url = stack["url"]
        print(f"soak: {args.cameras} cameras, {args.minutes} min, a sample every {args.sample_s:.0f} s, warm-up "
              f"{args.warmup_s:.0f} s; stack at {url} (logs {stack['stderr']})", flush=True)
        redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        traffic = Traffic()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            resp = await session.post(f"{url}/api/login", json={"username": "admin", "password": "citywall"})
            assert resp.status == 200, await resp.text()
            cameras = [c["id"] for c in (await (await session.get(f"{url}/api/cameras")).json())["cameras"]]
            clients = [asyncio.create_task(hold_event_socket(session, url, traffic))]
            clients += [asyncio.create_task(watch_live(session, url, cam, traffic))
                        for cam in cameras[:args.viewers]]
            names: list[str] = []
            end = stack["started"] + args.minutes * 60
            try:
                while True:
                    row = await sample(stack, redis, session, prefix, traffic)
                    rows.append(row)
                    names = names or sorted(row["processes"], key=lambda n: (n != "citywall", n))
                    print_sample(row, names)
                    if stack["proc"].poll() is not None:
                        print("soak: citywall exited!", file=sys.stderr)
                        return 2
                    if time.monotonic() + args.sample_s > end + 1:
                        break
                    await asyncio.sleep(args.sample_s)
            finally:
                for task in clients:
                    task.cancel()
                await asyncio.gather(*clients, return_exceptions=True)
                await redis.aclose()
    finally:
        running.close()
        if stack["proc"].poll() is None:
            stack["proc"].terminate()
            try:
                stack["proc"].wait(60)
            except subprocess.TimeoutExpired:
                print("soak: citywall did not stop within 60 s of SIGTERM; killed", file=sys.stderr)
                stack["proc"].kill()
                stack["proc"].wait()
        redis_server.stop()
    first, last, growth = ratios(rows, args.warmup_s)
    if "citywall_cpu_s" in first and last["t_s"] > first["t_s"]:
        cores = (last["citywall_cpu_s"] - first["citywall_cpu_s"]) / (last["t_s"] - first["t_s"])
        print(f"\ncitywall process CPU after the warm-up: {cores:.2f} cores ({args.cameras} cameras)")
        span = last["t_s"] - first["t_s"]
        rates = sorted((last["analysed"].get(c, 0.0) - n) / span for c, n in first.get("analysed", {}).items())
        if rates:
            per_frame = (last["citywall_cpu_s"] - first["citywall_cpu_s"]) / max(1.0, sum(rates) * span)
            print(f"analysed frames/s per camera: median {rates[len(rates) // 2]:.2f}, min {rates[0]:.2f}, "
                  f"{sum(r >= 0.95 for r in rates)}/{len(rates)} cameras at >= 0.95/s; "
                  f"citywall CPU per analysed frame {per_frame * 1000:.1f} ms (everything included)")
    # Redis holds the streams, which fill until their MAXLEN trim: its data and its RSS get the looser threshold.
    limit = {k: math.inf if k.startswith("redis.streams") else args.redis_threshold if k in REDIS_DATA
             else args.threshold for k in growth}
    flagged = {k: r for k, r in growth.items() if r > limit[k]}
    print(f"\nlast ({last['t_s'] / 60:.1f} min) / first after warm-up ({first['t_s'] / 60:.1f} min):")
    for key, r in sorted(growth.items()):
        print(f"  {key:38s} {r:6.3f}  (limit {limit[key]:.2f}){'  GROWTH' if key in flagged else ''}")
    work = {k: last[k] - first[k] for k in ("alarms", "cases", "broadcasts", "ws_frames")}
    print(f"work in that window: {work}; live {last['live_mib'] - first['live_mib']:.0f} MiB to "
          f"{args.viewers} viewers; client reconnects {last['reconnects']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": rows, "growth": growth, "flagged": flagged}, indent=1))
    print("verdict:", "FLAT" if not flagged else f"GROWTH in {sorted(flagged)}")
    return 1 if flagged else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=15.0, help="how long the stack runs (default 15)")
    p.add_argument("--cameras", type=int, default=16, help="demo cameras (the 4 scenes repeated; default 16)")
    p.add_argument("--sample-s", type=float, default=60.0, help="seconds between samples (default 60)")
    p.add_argument("--warmup-s", type=float, default=120.0, help="samples before this are the warm-up (default 120)")
    p.add_argument("--viewers", type=int, default=4, help="live sockets held open, one per camera (default 4)")
    p.add_argument("--threshold", type=float, default=1.2, help="flag a process figure growing more than this")
    p.add_argument("--redis-threshold", type=float, default=3.0, help="flag Redis memory growing more than this")
    p.add_argument("--json", help="also write the samples and ratios to this file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of the soak's config, e.g. recording.mode=off (repeatable)")
    args = p.parse_args()
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
