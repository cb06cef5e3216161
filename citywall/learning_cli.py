"""``citywall dataset …`` and ``citywall model …``: the learning loop's commands (learning/), wired to the settings
and the case store here."""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

from config import Settings
from learning import learning_root as learning_dir


class LearningCommandError(RuntimeError):
    """A learning command that cannot go on; the message says why (printed as ``citywall: …``)."""


def _open(args: argparse.Namespace) -> tuple[Settings, Any]:
    from cases.store import CaseStore
    from citywall.cli import load_checked

    settings = load_checked(args.config)
    return settings, CaseStore.open(settings.storage.resolved_cases_url())


def _registry(settings: Settings):
    from learning.registry import ModelRegistry

    return ModelRegistry(learning_dir(settings) / "models")


def _day(text: str | None, tz: str, *, end: bool = False) -> float | None:
    if not text:
        return None
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=ZoneInfo(tz))
    except ValueError:
        raise LearningCommandError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return (day + timedelta(days=1 if end else 0)).timestamp()


def _cmd_dataset_export(args: argparse.Namespace) -> int:
    from learning.dataset import DatasetError, export_dataset, prune
    from learning.labels import LabelStore

    settings, store = _open(args)
    try:
        labels = LabelStore(store, learning_dir(settings))
        # The retention rule first: what is past learning.retention_days / retention_bytes is not exported.
        pruned = prune(labels, now=time.time(), retention_days=settings.learning.retention_days,
                       retention_bytes=settings.learning.retention_bytes)
        if pruned.too_old or pruned.over_budget:
            print(f"retention: pruned {pruned.too_old} too old, {pruned.over_budget} beyond the byte budget")
        chosen = labels.all(since=_day(args.since, settings.timezone),
                            until=_day(args.until, settings.timezone, end=True))
        out = Path(args.out) if args.out else learning_dir(settings) / "datasets" / time.strftime("%Y%m%d-%H%M%S")
        try:
            summary = export_dataset(chosen, labels.root, out, tz=settings.timezone,
                                     val_share=settings.learning.val_share, dedupe_bits=settings.learning.dedupe_bits)
        except DatasetError as exc:
            raise LearningCommandError(str(exc)) from None
    finally:
        store.close()
    print(f"dataset {out}: images {summary.images}, near-duplicates dropped {summary.duplicates}, "
          f"missing snapshots {summary.missing}")
    for split in ("train", "val"):
        print(f"  {split}: {len(summary.groups.get(split, []))} camera-days; boxes per class "
              f"{summary.boxes.get(split, {})}")
    return 0


def _cmd_dataset_prune(args: argparse.Namespace) -> int:
    from learning.dataset import prune
    from learning.labels import LabelStore

    settings, store = _open(args)
    try:
        report = prune(LabelStore(store, learning_dir(settings)), now=time.time(),
                       retention_days=settings.learning.retention_days,
                       retention_bytes=settings.learning.retention_bytes)
    finally:
        store.close()
    print(f"pruned {report.too_old} older than {settings.learning.retention_days:g} days, {report.over_budget} "
          f"beyond the byte budget ({report.bytes_freed} bytes freed, {report.bytes_kept} kept)")
    return 0


def _cmd_model_train(args: argparse.Namespace) -> int:
    from learning.train import TrainError, TrainRequest, train

    settings = _settings(args)
    t = settings.learning.train
    registry = _registry(settings)
    start = args.start
    if start == "active":
        live = registry.state().active
        if live is None:
            raise LearningCommandError("--start active: no site model is live to fine-tune from")
        start = str(registry.root / live / "weights.pt")
    overrides = []
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            raise LearningCommandError(f"--set {item!r}: expected KEY=VALUE (e.g. warmup_epochs=0)")
        try:
            value: float | str = float(raw)
        except ValueError:
            value = raw
        overrides.append((key.strip(), value))
    try:
        req = TrainRequest(dataset=Path(args.dataset), start=start, epochs=args.epochs, imgsz=args.imgsz,
                           batch=args.batch, threads=t.threads, memory_mb=t.memory_mb, nice=t.nice,
                           timeout_s=t.timeout_s, device=args.device, overrides=tuple(overrides))
    except TrainError as exc:
        raise LearningCommandError(str(exc)) from None
    command = (f"citywall model train --config {shlex.quote(args.config)} --dataset {shlex.quote(args.dataset)} "
               f"--start {shlex.quote(args.start)} --epochs {args.epochs} --imgsz {args.imgsz} --batch {args.batch} "
               f"--device {args.device}" + "".join(f" --set {shlex.quote(x)}" for x in args.set))
    try:
        card = train(req, registry, now=time.time(), command=command)
    except TrainError as exc:
        raise LearningCommandError(str(exc)) from None
    print(f"model {card['version']}: {registry.root / card['version'] / 'model.onnx'} "
          f"({card['training']['seconds']} s training); val {card['metrics_val_overall']}")
    print(f"  card: {registry.root / card['version'] / 'card.md'}")
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    from citywall.cli import load_checked

    return load_checked(args.config)


def _cmd_model_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    registry = _registry(settings)
    live = registry.state().active
    for version in registry.versions():
        card = registry.card(version)
        mark = "* " if version == live else "  "
        print(f"{mark}{version}  val {card['metrics_val_overall']}  classes {len(card['classes'])}  "
              f"{card['command']}")
    if live is None:
        print("(no site model live: the model-free judgement decides)")
    return 0


def _cmd_model_shadow(args: argparse.Namespace) -> int:
    from learning.registry import RegistryError
    from learning.shadow import ShadowPlan

    settings = _settings(args)
    registry = _registry(settings)
    try:
        registry.card(args.version)
    except RegistryError as exc:
        raise LearningCommandError(str(exc)) from None
    sh = settings.learning.shadow
    now = time.time()
    plan = ShadowPlan(version=args.version, started_at=now, until=now + sh.duration_s, interval_s=sh.interval_s,
                      by=f"cli:{args.by}")
    plan.write(registry.root)
    print(json.dumps(plan.to_dict(now), ensure_ascii=False))
    return 0


def _cmd_model_promote(args: argparse.Namespace) -> int:
    from learning.registry import RegistryError

    settings = _settings(args)
    registry = _registry(settings)
    try:
        state = registry.rollback(by=f"cli:{args.by}", now=time.time()) if args.rollback else \
            registry.promote(args.version, by=f"cli:{args.by}", now=time.time())
    except RegistryError as exc:
        raise LearningCommandError(str(exc)) from None
    print(json.dumps(state.to_dict()["history"][-1], ensure_ascii=False))
    return 0


def _cmd_model_compare(args: argparse.Namespace) -> int:
    from learning.registry import RegistryError

    settings, store = _open(args)
    try:
        registry = _registry(settings)
        try:
            card = registry.card(args.version)
        except RegistryError as exc:
            raise LearningCommandError(str(exc)) from None
        report = compare(args, settings, store, registry, card)
    finally:
        store.close()
    card["compare"] = report
    (registry.root / args.version / "card.json").write_text(json.dumps(card, ensure_ascii=False, indent=1),
                                                            encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


def compare(args: argparse.Namespace, settings: Settings, store: Any, registry: Any, card: dict[str, Any],
            ) -> dict[str, Any]:
    """The comparison report of ``args.version`` (see ``learning.compare``)."""
    from learning.compare import onnx_detector, review_scores, shadow_sightings, split_scores
    from learning.labels import LabelStore
    from learning.shadow import ShadowPlan, ShadowStore

    names = [c["id"] for c in card["classes"]]
    candidate = onnx_detector(registry.onnx(args.version), names, confidence=args.confidence)
    live = registry.state().active
    current = None
    if live is not None and live != args.version:
        current = onnx_detector(registry.onnx(live), [c["id"] for c in registry.card(live)["classes"]],
                                confidence=args.confidence)
    now = time.time()
    plan = ShadowPlan.read(registry.root)
    since = _day(args.since, settings.timezone)
    until = _day(args.until, settings.timezone, end=True)
    if since is None:
        since = plan.started_at if plan is not None and plan.version == args.version else now - 7 * 86_400
    if until is None:
        until = min(now, plan.until) if plan is not None and plan.version == args.version else now
    report: dict[str, Any] = {"version": args.version, "live": live, "window": [since, until], "at": now}
    dataset = Path(args.dataset or card["data"]["dataset"])
    if (dataset / "images" / "val").is_dir():
        report["split"] = {"dataset": str(dataset), "candidate": split_scores(dataset, candidate),
                           "live": split_scores(dataset, current) if current else None}
    labels = LabelStore(store, learning_dir(settings))
    window = labels.all(since=since, until=until)
    report["reviews"] = review_scores(window, labels.root, candidate)
    report["shadow"] = shadow_sightings(ShadowStore(store).window(args.version, since, until),
                                        [(lab.camera_id, lab.frame_at) for lab in window])
    return report


def add_commands(sub: Any, default_config: Path) -> None:
    """The ``dataset`` and ``model`` subcommands on the ``citywall`` parser."""
    dataset = sub.add_parser("dataset", help="the reviewers' labels as a training dataset (learning/)")
    dsub = dataset.add_subparsers(dest="action", required=True)
    export = dsub.add_parser("export", help="write a YOLO dataset (split by camera and day, near-duplicates dropped)")
    export.add_argument("--config", default=str(default_config))
    export.add_argument("--out", default=None, help="new folder (default learning dir/datasets/<time>)")
    export.add_argument("--since", default=None, help="first day (YYYY-MM-DD, site time zone)")
    export.add_argument("--until", default=None, help="last day (YYYY-MM-DD, included)")
    export.set_defaults(func=_cmd_dataset_export)
    prune = dsub.add_parser("prune", help="apply learning.retention_days / retention_bytes to labelled snapshots")
    prune.add_argument("--config", default=str(default_config))
    prune.set_defaults(func=_cmd_dataset_prune)

    model = sub.add_parser("model", help="site models: train, list, compare, promote, roll back (learning/)")
    msub = model.add_subparsers(dest="action", required=True)
    tr = msub.add_parser("train", help="train a model on an exported dataset in a separate low-priority process")
    tr.add_argument("--config", default=str(default_config))
    tr.add_argument("--dataset", required=True, help="a `citywall dataset export` folder")
    tr.add_argument("--start", default="yolov8n.yaml",
                    help="model yaml (from scratch), a .pt copied in, or 'active' (fine-tune the live model)")
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--imgsz", type=int, default=640)
    tr.add_argument("--batch", type=int, default=8)
    tr.add_argument("--device", default="cpu", help="cpu, or a CUDA device index where a GPU is present")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a further ultralytics training argument (lr0, warmup_epochs, mosaic, optimizer …; "
                         "learning.train.TUNABLE); short runs from scratch want warmup_epochs=0 mosaic=0")
    tr.set_defaults(func=_cmd_model_train)
    ls = msub.add_parser("list", help="the versions, their validation figures and which is live")
    ls.add_argument("--config", default=str(default_config))
    ls.set_defaults(func=_cmd_model_list)
    cmp_ = msub.add_parser("compare", help="what a version would change: held-back split, reviewed alarms of a "
                                           "window, its shadow run")
    cmp_.add_argument("version")
    cmp_.add_argument("--config", default=str(default_config))
    cmp_.add_argument("--dataset", default=None, help="export folder for the held-back split (default: the card's)")
    cmp_.add_argument("--since", default=None, help="window start (YYYY-MM-DD; default the shadow run's start)")
    cmp_.add_argument("--until", default=None, help="window end (YYYY-MM-DD, included; default the shadow run's end)")
    cmp_.add_argument("--confidence", type=float, default=0.25)
    cmp_.set_defaults(func=_cmd_model_compare)
    sh = msub.add_parser("shadow", help="run a version in shadow on the live cameras (learning.shadow settings)")
    sh.add_argument("version")
    sh.add_argument("--config", default=str(default_config))
    sh.add_argument("--by", default="admin")
    sh.set_defaults(func=_cmd_model_shadow)
    pr = msub.add_parser("promote", help="make a version live (the detection worker swaps it in without restart)")
    pr.add_argument("version")
    pr.add_argument("--config", default=str(default_config))
    pr.add_argument("--by", default="admin", help="who promotes (recorded in the history)")
    pr.set_defaults(func=_cmd_model_promote, rollback=False)
    rb = msub.add_parser("rollback", help="回退: the version live before the current one (or none) is live again")
    rb.add_argument("--config", default=str(default_config))
    rb.add_argument("--by", default="admin")
    rb.set_defaults(func=_cmd_model_promote, rollback=True, version=None)
