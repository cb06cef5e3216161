"""The desk's case list at 100,000 cases: query time per filter, on SQLite and (``--postgres``) PostgreSQL.

``python bench/bench_case_list.py [--n 100000] [--repeat 30] [--postgres]`` fills a fresh case store with ``n``
cases (four timeline entries and one evidence file each, spread over 180 days, five units, every state) in one
transaction, then times :meth:`CaseStore.query_cases` — one page of 50 with its per-state counts, the case rows
with their timelines, exactly what ``GET /api/cases`` does — for the desk's usual queries, ``repeat`` times each,
and prints p50/p95 per query as JSON. Target: p95 ≤ 100 ms. PostgreSQL is Debian's 15, private, fsync off (the
test fixture's server), vacuumed and analysed after the load as autovacuum would. Not a test: the figures depend
on the machine (cases/README.md says which).

``--against REV`` compares: the case store code of git revision ``REV`` (exported with ``git archive``) and this tree's,
each in its own process with its own store filled alike (one after the other; ``fill_s``: each fill's seconds, the
write cost of filing), the queries timed in turn — query by query, the two variants alternating which goes first —
so a busy shared machine weighs on both alike. It prints both variants' figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# --worker ROOT: the case store code of another tree (an exported revision) stands in for this one's
sys.path.insert(0, sys.argv[sys.argv.index("--worker") + 1] if "--worker" in sys.argv else str(ROOT))

from cases.listing import CaseQuery  # noqa: E402
from cases.store import CaseStore  # noqa: E402

UNITS = [("hubin-squad", "湖滨街道城管中队", "湖滨街道"), ("qingbo-squad", "清波街道城管中队", "清波街道"),
         ("sanitation", "上城区环卫所", "湖滨街道"), ("municipal", "市政设施养护中心", "清波街道"),
         ("district-center", "上城区城市运行管理中心派遣科", "小营街道")]
STATES = ["dispatched"] * 3 + ["handling"] * 2 + ["handled", "verifying", "returned", "suspended"] + ["closed"] * 10
CATEGORIES = [("事件", "0501", "无照经营游商"), ("事件", "0504", "店外经营"), ("事件", "0507", "乱堆物堆料"),
              ("事件", "0102", "暴露垃圾"), ("部件", "0305", "垃圾箱")]
STREETS = ["解放路", "延安路", "中山路", "河坊街", "南山路", "平海路", "庆春路", "湖滨路"]


def fill(store: CaseStore, n: int, now: float, seed: int = 7) -> float:
    """``n`` cases in one transaction; returns the seconds it took."""
    rnd = random.Random(seed)
    t0 = time.perf_counter()
    with store.transaction() as tx:
        for i in range(n):
            unit_id, unit_name, street = UNITS[i % len(UNITS)]
            kind, code, name = CATEGORIES[rnd.randrange(len(CATEGORIES))]
            state = STATES[rnd.randrange(len(STATES))]
            at = now - rnd.uniform(0, 180 * 86400)
            road = STREETS[rnd.randrange(len(STREETS))]
            case_id = uuid.UUID(int=rnd.getrandbits(128)).hex
            case = {
                "id": case_id,
                "case_no": f"CW{time.strftime('%Y%m%d', time.gmtime(at))}-{i:06d}",
                "source": "camera", "kind": kind, "code": code, "category_name": name,
                "title": f"{road}{rnd.randrange(1, 300)}号 {name}", "state": state, "urgency": "一般",
                "camera_id": f"cam-{i % 200:03d}", "camera_name": f"{road}摄像头", "zone_id": "z", "event": "vending",
                "address": f"{road}{rnd.randrange(1, 300)}号", "street": street, "community": f"{street[:2]}社区",
                "grid_code": f"33010200{i % 9}{i % 7:02d}01", "unit_id": unit_id, "unit_name": unit_name,
                "reported_at": at, "deadline_at": at + rnd.choice((4 * 3600, 86400, 3 * 86400)),
                "deadline_iso": "", "time_limit": {"value": 1, "unit": "work_days", "calendar": "x"},
                "description": "视频智能识别上报",
            }
            tx.insert_case(case)
            tx.append_timeline_entries(case_id, [(at, "reported", "report", "system", "上报"),
                                                    (at, "accepted", "accept", "system", "受理"),
                                                    (at, "registered", "register", "system", "立案"),
                                                    (at, "dispatched", "dispatch", "system", f"派遣至 {unit_name}")])
            tx.add_evidence(case_id, f"{case['camera_id']}/{i}.jpg", kind="snapshot", at=at)
            if state not in ("closed",) and i % 50 == 0:
                tx.supervise(case_id, at=at + 60, state=state, actor="leader(leader)")
    return time.perf_counter() - t0


def queries(now: float) -> dict[str, list[CaseQuery]]:
    """Name → the queries timed under it (one per repeat, cycling)."""
    day = 86400
    return {
        "all, newest first (page 1)": [CaseQuery()],
        "state 处置 (handling)": [CaseQuery(states=("handling",))],
        "open states (待办: dispatched,handling,handled)": [CaseQuery(states=("dispatched", "handling", "handled"))],
        "one unit (a unit user's list)": [CaseQuery(unit_ids=(u[0],)) for u in UNITS],
        "unit + state": [CaseQuery(unit_ids=("qingbo-squad",), states=("dispatched",))],
        "overdue, nearest deadline first": [CaseQuery(deadline="overdue", sort="deadline")],
        "near deadline (即将超期)": [CaseQuery(deadline="near")],
        "督办 only": [CaseQuery(supervised=True)],
        "street + category": [CaseQuery(street="清波街道", category="事件/0507")],
        "last 7 days": [CaseQuery(reported_from=now - 7 * day, reported_to=now)],
        "search text (address)": [CaseQuery(q=f"{s}1") for s in STREETS],
        "search case number": [CaseQuery(q="-0500")],
        "search two characters (20-40 % of cases match)": [CaseQuery(q="垃圾"), CaseQuery(q="游商")],
    }


def timed(store: CaseStore, query: CaseQuery, now: float) -> float:
    t0 = time.perf_counter()
    page = store.query_cases(query, now=now)
    elapsed = (time.perf_counter() - t0) * 1000
    assert len(page.cases) <= query.limit
    return elapsed


def bench(url: str, n: int, repeat: int) -> dict:
    now = time.time()
    store = CaseStore.open(url)
    try:
        fill_s = fill(store, n, now)
        if store.backend == "postgresql":
            # What autovacuum does soon after a bulk load, to every table (the per-state counts were updated
            # 100,000 times in the load): planner statistics and the visibility map (without it no index-only
            # scan: every count reads the fat rows). SQLite: the store's own sampled ANALYZE.
            store._db.execute("VACUUM ANALYZE")
        out: dict = {"cases": n, "fill_s": round(fill_s, 1), "queries": {}}
        for name, qs in queries(now).items():
            timed(store, qs[0], now)  # warm the cache and the statement
            times = [timed(store, qs[i % len(qs)], now) for i in range(repeat)]
            times.sort()
            out["queries"][name] = {"p50_ms": round(statistics.median(times), 1),
                                    "p95_ms": round(times[max(0, round(0.95 * len(times)) - 1)], 1),
                                    "max_ms": round(times[-1], 1)}
        # deep keyset paging: page 200 (rows 10,000-10,050) costs what page 1 does
        cursor, t_pages = None, []
        for _ in range(200):
            t0 = time.perf_counter()
            page = store.query_cases(CaseQuery(cursor=cursor), now=now)
            t_pages.append((time.perf_counter() - t0) * 1000)
            cursor = page.next_cursor
        out["queries"]["keyset page 200 (cursor)"] = {"p50_ms": round(statistics.median(t_pages[-20:]), 1),
                                                       "p95_ms": round(sorted(t_pages[-20:])[18], 1),
                                                       "max_ms": round(max(t_pages[-20:]), 1)}
        worst = max(q["p95_ms"] for q in out["queries"].values())
        out["worst_p95_ms"] = worst
        out["target_met"] = worst <= 100
        return out
    finally:
        store.close()


def summary(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, round(0.95 * len(times)) - 1)], 1), "max_ms": round(times[-1], 1)}


def worker(url: str, n: int, now: float) -> None:
    """One variant of --against: fill a store, then time the query named on each stdin line (ms on stdout)."""
    store = CaseStore.open(url)
    fill_s = fill(store, n, now)
    if store.backend == "postgresql":
        store._db.execute("VACUUM ANALYZE")  # as in bench()
    named = queries(now)
    print("ready", round(fill_s, 1), flush=True)
    for line in sys.stdin:
        name, i = line.rstrip("\n").rsplit("\t", 1)
        qs = named[name]
        print(round(timed(store, qs[int(i) % len(qs)], now), 3), flush=True)
    store.close()


def compare(rev: str, urls: dict[str, str], n: int, repeat: int) -> dict:
    """Revision ``rev`` against this tree, queries timed alternately (see the module docstring)."""
    base = Path(tempfile.mkdtemp(prefix="citywall-case-list-base-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(base, filter="data")
    now = time.time()
    procs = {}
    fill_s: dict[str, float] = {}
    for name, root in (("before", base), ("after", ROOT)):
        # one at a time: the fills do not compete with each other
        procs[name] = subprocess.Popen([sys.executable, __file__, "--worker", str(root), urls[name], str(n), str(now)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       env={**os.environ, "PYTHONPATH": str(root)})
        out = procs[name].stdout
        assert out is not None
        ready, seconds = out.readline().split()
        assert ready == "ready"
        fill_s[name] = float(seconds)
    times: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    for name in queries(now):
        for i in range(repeat + 1):  # the first of each: warm-up, not counted
            for variant in (("before", "after") if i % 2 else ("after", "before")):
                p = procs[variant]
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write(f"{name}\t{i}\n")
                p.stdin.flush()
                ms = float(p.stdout.readline())
                if i:
                    times[variant].setdefault(name, []).append(ms)
    for p in procs.values():
        assert p.stdin is not None
        p.stdin.close()
        p.wait(timeout=120)
    return {"revision": rev, "cases": n, "fill_s": fill_s, "queries": {
        name: {"before": summary(times["before"][name]), "after": summary(times["after"][name])}
        for name in times["after"]}}


def main() -> None:
    if "--worker" in sys.argv:
        _, _, url, n, now = sys.argv[sys.argv.index("--worker"):]
        worker(url, int(n), float(now))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--postgres", action="store_true", help="also on a private PostgreSQL 15")
    p.add_argument("--against", metavar="REV", help="compare with the case store of this git revision")
    p.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only (with --postgres)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="citywall-case-list-"))
    result: dict = {"target_p95_ms": 100}
    if args.no_sqlite:
        pass
    elif args.against:
        sqlite = {v: f"sqlite:///{tmp}/{v}.sqlite" for v in ("before", "after")}
        result["sqlite"] = compare(args.against, sqlite, args.n, args.repeat)
    else:
        result["sqlite"] = bench(f"sqlite:///{tmp}/cases.sqlite", args.n, args.repeat)
    if args.postgres:
        from tests.fixtures.postgres import EmbeddedPostgres

        pg = EmbeddedPostgres()
        try:
            pg.start()
            if args.against:
                urls = {v: pg.create_database() for v in ("before", "after")}
                result["postgresql"] = compare(args.against, urls, args.n, args.repeat)
            else:
                result["postgresql"] = bench(pg.create_database(), args.n, args.repeat)
        finally:
            pg.stop()
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
