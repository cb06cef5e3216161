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
    from learning.dataset import DatasetError, export_dataset
    from learning.labels import LabelStore

    settings, store = _open(args)
    try:
        labels = LabelStore(store, learning_dir(settings))
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
    req = TrainRequest(dataset=Path(args.dataset), start=start, epochs=args.epochs, imgsz=args.imgsz,
                       batch=args.batch, threads=t.threads, memory_mb=t.memory_mb, nice=t.nice,
                       timeout_s=t.timeout_s, device=args.device)
    command = (f"citywall model train --config {shlex.quote(args.config)} --dataset {shlex.quote(args.dataset)} "
               f"--start {shlex.quote(args.start)} --epochs {args.epochs} --imgsz {args.imgsz} --batch {args.batch} "
               f"--device {args.device}")
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
    tr.set_defaults(func=_cmd_model_train)
    ls = msub.add_parser("list", help="the versions, their validation figures and which is live")
    ls.add_argument("--config", default=str(default_config))
    ls.set_defaults(func=_cmd_model_list)
    pr = msub.add_parser("promote", help="make a version live (the detection worker swaps it in without restart)")
    pr.add_argument("version")
    pr.add_argument("--config", default=str(default_config))
    pr.add_argument("--by", default="admin", help="who promotes (recorded in the history)")
    pr.set_defaults(func=_cmd_model_promote, rollback=False)
    rb = msub.add_parser("rollback", help="回退: the version live before the current one (or none) is live again")
    rb.add_argument("--config", default=str(default_config))
    rb.add_argument("--by", default="admin")
    rb.set_defaults(func=_cmd_model_promote, rollback=True, version=None)
