"""Detector accuracy on labelled scenarios: precision, recall, alarm and clear latency per event type.

``python bench/bench_detectors_accuracy.py [--seed 7] [--only SUBSTRING]`` builds the suite of
``bench/scenarios.py`` (the four demo scenes, each plain and under lighting ramps, cloud steps, moving and
creeping shadows, strong sensor noise and rain; crowds; a parked car and a delivery tricycle stopping in a lane),
feeds each scenario at 1 frame/s into ``detectors.pipeline.CameraAnalyzer`` with ``now`` advancing (no clock,
no video encoding) and scores the alarms against the ground truth:

- a truth event is found (TP) when an alarm of its event type and zone is raised at or after its start and
  no later than 10 s after its end; the first such alarm matches it. Other raised alarms are false positives
  (including a second alarm for the same event: a split alarm);
- raise latency = raise time − event start (target ≤ zone dwell + 5 s); clear latency = clear time − event
  end (target ≤ 10 s; "never" if still raised when the scenario ends; negative = cleared while the object was
  still there, counted as "early"); coverage = share of [start + dwell, end] during which the alarm was up;
- precision = TP / (TP + FP), recall = TP / (TP + FN), per event type (targets ≥ 0.95 each).

Prints a per-scenario table, a per-hard-case table, the per-event table, per-frame analysis time, and a final
one-line JSON summary.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import load_settings  # noqa: E402
from detectors.pipeline import CameraAnalyzer  # noqa: E402

# bench/ is not a package (and "bench" is a common module name): load scenarios.py by its path.
_spec = importlib.util.spec_from_file_location("citywall_bench_scenarios", Path(__file__).with_name("scenarios.py"))
assert _spec is not None and _spec.loader is not None
_scenarios = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _scenarios  # dataclasses look their module up while the file executes
_spec.loader.exec_module(_scenarios)
if TYPE_CHECKING:  # the same module, as mypy sees it from the repository root
    from bench.scenarios import Scenario, Truth, build_life_suite, build_suite
else:
    Scenario, Truth, build_suite = _scenarios.Scenario, _scenarios.Truth, _scenarios.build_suite
    build_life_suite = _scenarios.build_life_suite

CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
T0 = 1_717_387_200.0  # a fixed unix time; scenario second t is analysed at T0 + t
CLEAR_TARGET_S = 10.0
LATE_SLACK_S = 5.0
EVENTS = ("vending", "bin_overflow", "road_occupation", "shop_front", "bike_parking", "exposed_rubbish")


@dataclass
class RaisedAlarm:
    event: str
    zone_id: str
    t_raise: float
    t_clear: float | None
    matched: bool = False


@dataclass
class Outcome:
    scenario: Scenario
    alarms: list[RaisedAlarm]
    matches: list[tuple[Truth, RaisedAlarm | None]]
    analysis_ms: list[float]
    frame_ms: list[float]
    judged: dict[int, list[str]] = field(default_factory=dict)
    """Per track: the kinds it was judged over the run."""

    @property
    def false_positives(self) -> list[RaisedAlarm]:
        return [a for a in self.alarms if not a.matched]


def run_scenario(sc: Scenario, settings) -> Outcome:
    """Feed the scenario's frames to a fresh analyzer; pair raised/cleared alarms; match them to the truth."""
    analyzer = CameraAnalyzer(sc.camera, settings.detection, timezone=settings.timezone)
    by_id: dict[str, RaisedAlarm] = {}
    order: list[RaisedAlarm] = []
    ams: list[float] = []
    fms: list[float] = []
    seen: dict[int, list[str]] = {}
    for i in range(sc.seconds):
        t = float(i)
        f0 = time.perf_counter()
        img = sc.frame(t)
        fms.append((time.perf_counter() - f0) * 1000)
        step = analyzer.step(img, T0 + t)
        ams.append(step.analysis_ms)
        for tid, j in analyzer.judgements.items():
            seen.setdefault(tid, []).append(j.kind.value[:2])
        for f in step.findings:
            a = f.alarm
            if a.phase == "raised":
                ra = RaisedAlarm(a.event, a.zone_id, a.at - T0, None)
                by_id[a.alarm_id] = ra
                order.append(ra)
            elif a.alarm_id in by_id:
                by_id[a.alarm_id].t_clear = a.at - T0
    matches: list[tuple[Truth, RaisedAlarm | None]] = []
    for truth in sc.truth:
        hit = next((a for a in order if not a.matched and a.event == truth.event and a.zone_id == truth.zone_id
                    and truth.start_s <= a.t_raise <= truth.end_s + CLEAR_TARGET_S), None)
        if hit is not None:
            hit.matched = True
        matches.append((truth, hit))
    return Outcome(sc, order, matches, ams, fms, dict(seen))


def analyzer_debug(o: Outcome) -> str:
    """Per track: the kinds it was judged over the run, for ``--only`` runs."""
    seen = o.judged
    parts = []
    for k, kinds in list(seen.items())[:10]:
        runs: list[list] = []
        for c in kinds:
            if runs and runs[-1][0] == c:
                runs[-1][1] += 1
            else:
                runs.append([c, 1])
        parts.append(f"#{k}: " + " ".join(f"{c}×{n}" for c, n in runs))
    return "; ".join(parts)


def _dwell(sc: Scenario, zone_id: str) -> float:
    return next(z.dwell_s for z in sc.camera.zones if z.id == zone_id)


def _fmt(v: float | None, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="7,8", help="comma-separated scene seeds; each builds the whole suite")
    ap.add_argument("--only", default="", help="run only scenarios whose name contains this")
    ap.add_argument("--suite", choices=("all", "demo", "life"), default="all",
                    help="demo: the demo scenes under lighting/weather/crowd/vehicle cases; life: what stays "
                         "(bus stops, benches, bikes, vendors, shop goods, rubbish) under normal/shake/lowrate")
    ap.add_argument("--conditions", default="normal,shake,lowrate", help="conditions of the life suite")
    args = ap.parse_args()
    settings = load_settings(CONFIG)
    seeds = [int(v) for v in args.seeds.split(",")]
    suite = []
    for seed in seeds:
        if args.suite in ("all", "demo"):
            suite += [s for s in build_suite(settings, seed) if args.only in s.name]
        if args.suite in ("all", "life"):
            suite += [s for s in build_life_suite(seed, tuple(args.conditions.split(","))) if args.only in s.name]
    t_start = time.perf_counter()
    outcomes: list[Outcome] = []
    print(f"{len(suite)} scenarios, seeds {args.seeds}, 1 frame/s each")
    print(f"{'scenario':<36} {'hard case':<20} {'truth':<26} {'alarms (raise→clear, s)':<34} verdict")
    for sc in suite:
        o = run_scenario(sc, settings)
        outcomes.append(o)
        truths = ", ".join(f"{t.event[:4]} {t.start_s:g}-{t.end_s:g}" for t in sc.truth) or "none"
        alarms = ", ".join(f"{a.event[:4]} {a.t_raise:g}→{_fmt(a.t_clear, 0) if a.t_clear is not None else 'open'}"
                           for a in o.alarms) or "none"
        verdict = []
        for truth_ev, hit in o.matches:
            if hit is None:
                verdict.append("MISS")
                continue
            is_late = hit.t_raise - truth_ev.start_s > _dwell(sc, truth_ev.zone_id) + LATE_SLACK_S
            clear = None if hit.t_clear is None else hit.t_clear - truth_ev.end_s
            clear_bad = clear is None or clear > CLEAR_TARGET_S or clear < 0
            verdict.append("ok" if not is_late and not clear_bad else ("LATE " if is_late else "") +
                           ("CLEAR " + ("never" if clear is None else f"{clear:+g}s") if clear_bad else ""))
        if o.false_positives:
            verdict.append(f"{len(o.false_positives)} FP")
        print(f"{sc.name:<36} {sc.hard_case or '-':<20} {truths:<26} {alarms:<34} {'; '.join(verdict) or 'ok'}",
              flush=True)
        if args.only and analyzer_debug(o):
            print("   judged:", analyzer_debug(o))
    wall_s = time.perf_counter() - t_start

    # Per hard case.
    print("\nper hard case (all scenarios carrying it):")
    print(f"{'hard case':<22} {'runs':>4} {'truth':>5} {'found':>5} {'FP':>3} {'early clr':>9} {'late clr':>8}  "
          f"scenarios with a miss, FP or bad clear")
    cases: dict[str, list[Outcome]] = {}
    for o in outcomes:
        cases.setdefault(o.scenario.hard_case or "(plain demo)", []).append(o)
    for case, outs in cases.items():
        n_truth = sum(len(o.matches) for o in outs)
        found = sum(1 for o in outs for _, h in o.matches if h is not None)
        fp = sum(len(o.false_positives) for o in outs)
        clears = [(h.t_clear, t.end_s) for o in outs for t, h in o.matches if h is not None]
        early = sum(1 for c, e in clears if c is not None and c < e)
        late_clr = sum(1 for c, e in clears if c is None or c > e + CLEAR_TARGET_S)
        bad = [o.scenario.name for o in outs if o.false_positives or any(
            h is None or h.t_clear is None or not (0 <= h.t_clear - t.end_s <= CLEAR_TARGET_S) for t, h in o.matches)]
        print(f"{case:<22} {len(outs):>4} {n_truth:>5} {found:>5} {fp:>3} {early:>9} {late_clr:>8}  "
              f"{', '.join(bad) or '-'}")

    # Per condition (the life suite's normal / shake / lowrate; the demo suite counts as "demo").
    print("\nper condition:")
    print(f"{'condition':<10} {'runs':>4} {'truth':>5} {'found':>5} {'FP':>3} {'late':>4}  scenarios with a miss or FP")
    conds: dict[str, list[Outcome]] = {}
    for o in outcomes:
        conds.setdefault(o.scenario.tags[0] if o.scenario.tags else "demo", []).append(o)
    for cond, outs in conds.items():
        n_truth = sum(len(o.matches) for o in outs)
        found = sum(1 for o in outs for _, h in o.matches if h is not None)
        fp = sum(len(o.false_positives) for o in outs)
        late_n = sum(1 for o in outs for t, h in o.matches
                     if h is not None and h.t_raise - t.start_s > _dwell(o.scenario, t.zone_id) + LATE_SLACK_S)
        bad = [o.scenario.name for o in outs if o.false_positives or any(h is None for _, h in o.matches)]
        print(f"{cond:<10} {len(outs):>4} {n_truth:>5} {found:>5} {fp:>3} {late_n:>4}  {', '.join(bad) or '-'}")

    # Per event type.
    print("\nper event type (targets: precision ≥ 0.95, recall ≥ 0.95, raise ≤ dwell + 5 s, clear ≤ 10 s):")
    hdr = (f"{'event':<16} {'TP':>3} {'FN':>3} {'FP':>3} {'precision':>9} {'recall':>6}  "
           f"{'raise lat. med/max s':>20} {'late':>4}  {'clear lat. med/max s':>20} {'bad':>3} {'early':>5} "
           f"{'cover med/min':>13}")
    print(hdr)
    summary_events: dict[str, dict] = {}
    for ev in EVENTS:
        tp = fn = fp = late = bad_clear = early = 0
        raise_lat: list[float] = []
        coverage: list[float] = []
        clear_lat: list[float] = []
        for o in outcomes:
            fp += sum(1 for a in o.false_positives if a.event == ev)
            for truth, hit in o.matches:
                if truth.event != ev:
                    continue
                if hit is None:
                    fn += 1
                    continue
                tp += 1
                lat = hit.t_raise - truth.start_s
                raise_lat.append(lat)
                late += lat > _dwell(o.scenario, truth.zone_id) + LATE_SLACK_S
                # Share of the time the alarm should be up (start + dwell .. end) that it was up.
                due0 = truth.start_s + _dwell(o.scenario, truth.zone_id)
                up1 = o.scenario.seconds if hit.t_clear is None else hit.t_clear
                coverage.append(max(0.0, min(up1, truth.end_s) - max(hit.t_raise, due0)) / (truth.end_s - due0))
                early += hit.t_clear is not None and hit.t_clear < truth.end_s
                if hit.t_clear is None:
                    bad_clear += 1
                else:
                    cl = hit.t_clear - truth.end_s
                    clear_lat.append(cl)
                    bad_clear += not (0 <= cl <= CLEAR_TARGET_S)
        p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        rl = f"{_fmt(statistics.median(raise_lat))}/{_fmt(max(raise_lat))}" if raise_lat else "-"
        cl_s = f"{_fmt(statistics.median(clear_lat))}/{_fmt(max(clear_lat))}" if clear_lat else "-"
        print(f"{ev:<16} {tp:>3} {fn:>3} {fp:>3} {_fmt(p, 3):>9} {_fmt(r, 3):>6}  {rl:>20} {late:>4}  "
              f"{cl_s:>20} {bad_clear:>3} {early:>5} "
              f"{(f'{statistics.median(coverage):.2f}/{min(coverage):.2f}' if coverage else '-'):>13}")
        summary_events[ev] = {"tp": tp, "fn": fn, "fp": fp, "precision": None if p is None else round(p, 3),
                              "recall": None if r is None else round(r, 3),
                              "raise_latency_median_s": round(statistics.median(raise_lat), 1) if raise_lat else None,
                              "raise_latency_max_s": max(raise_lat) if raise_lat else None, "late": late,
                              "clear_latency_median_s": round(statistics.median(clear_lat), 1) if clear_lat else None,
                              "clear_latency_max_s": max(clear_lat) if clear_lat else None, "bad_clear": bad_clear,
                              "cleared_early": early,
                              "coverage_median": round(statistics.median(coverage), 3) if coverage else None,
                              "coverage_min": round(min(coverage), 3) if coverage else None}
    tp_all = sum(v["tp"] for v in summary_events.values())
    fp_all = sum(v["fp"] for v in summary_events.values())
    fn_all = sum(v["fn"] for v in summary_events.values())
    veh = [o for o in outcomes if o.scenario.hard_case in ("parked car", "delivery stops 20 s")]
    fp_veh = sum(len(o.false_positives) for o in veh)
    p_all, p_noveh = _ratio(tp_all, tp_all + fp_all), _ratio(tp_all, tp_all + fp_all - fp_veh)
    print(f"{'all':<16} {tp_all:>3} {fn_all:>3} {fp_all:>3} {_fmt(p_all, 3):>9} "
          f"{_fmt(_ratio(tp_all, tp_all + fn_all), 3):>6}")
    print(f"  (precision without the vehicle-in-lane scenarios, i.e. if a parked/stopped vehicle counted as "
          f"occupation: {_fmt(p_noveh, 3)}; those scenarios gave {fp_veh} road_occupation alarm(s))")
    neg_s = sum(o.scenario.seconds for o in outcomes if not o.scenario.truth)
    print(f"  false alarms on negative scenarios: {sum(len(o.alarms) for o in outcomes if not o.scenario.truth)} "
          f"in {neg_s} s of video without any event")

    ams = [m for o in outcomes for m in o.analysis_ms]
    fms = [m for o in outcomes for m in o.frame_ms]
    print(f"\nper-frame analysis (CameraAnalyzer.step, 1280x720 in, analysis_width "
          f"{settings.detection.analysis_width}): median {statistics.median(ams):.1f} ms, "
          f"p90 {_pct(ams, 0.9):.1f} ms, max {max(ams):.1f} ms over {len(ams)} frames")
    print(f"(frame synthesis + perturbation, not part of the detector: median {statistics.median(fms):.1f} ms; "
          f"wall time {wall_s:.0f} s for {len(outcomes)} scenarios)")
    summary = {"bench": "detectors_accuracy", "scenarios": len(outcomes), "frames": len(ams),
               "events": summary_events,
               "overall": {"tp": tp_all, "fn": fn_all, "fp": fp_all,
                           "precision": None if p_all is None else round(p_all, 3),
                           "recall": None if (r := _ratio(tp_all, tp_all + fn_all)) is None else round(r, 3),
                           "fp_vehicle_in_lane": fp_veh},
               "analysis_ms": {"median": round(statistics.median(ams), 2), "p90": round(_pct(ams, 0.9), 2)},
               "misses": [o.scenario.name for o in outcomes for _, h in o.matches if h is None],
               "false_positive_scenarios": [o.scenario.name for o in outcomes if o.false_positives],
               "wall_s": round(wall_s, 1)}
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
