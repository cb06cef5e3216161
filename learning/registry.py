"""Site models on disk: numbered versions, their model cards, and which one is live (promotion, 回退).

``<models>/<version>/`` holds ``model.onnx`` (what the detectors run), ``weights.pt`` (to fine-tune from),
``card.json`` / ``card.md`` (data, classes, per-class metrics on the held-back split, the command that made it)
and ``train.log``. ``<models>/active.json`` says which version is live and keeps the promotion history; it is
replaced atomically, so a reader (the detection worker's :class:`learning.switch.ModelSwitch`) sees the old or the
new state, never half of one. Promoting keeps every earlier version on disk; :meth:`ModelRegistry.rollback` makes
the version that was live before the current one live again (or none: back to the model-free judgement).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSION = re.compile(r"^v\d{4}-\d{8}-\d{6}$")


class RegistryError(ValueError):
    """An unknown or unusable version, or nothing to roll back to."""


@dataclass(frozen=True)
class ActiveState:
    active: str | None
    history: tuple[dict[str, Any], ...]
    """Every promotion and rollback, oldest first: ``{at, by, action, version, previous}``."""

    def to_dict(self) -> dict[str, Any]:
        return {"active": self.active, "history": list(self.history)}


class ModelRegistry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def active_file(self) -> Path:
        return self.root / "active.json"

    def new_version(self, now: float) -> Path:
        """A new, empty version folder named by its number and time (``v0003-20260311-102000``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name[1:5]) for p in self.root.iterdir() if VERSION.match(p.name)]
        name = f"v{max(numbers, default=0) + 1:04d}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}"
        path = self.root / name
        path.mkdir()
        return path

    def versions(self) -> list[str]:
        """Versions with a usable model (``model.onnx`` and ``card.json``), oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if VERSION.match(p.name)
                      and (p / "model.onnx").is_file() and (p / "card.json").is_file())

    def card(self, version: str) -> dict[str, Any]:
        if not VERSION.match(version) or version not in self.versions():
            known = ", ".join(self.versions()) or "none"
            raise RegistryError(f"unknown model version {version[:40]!r}; known: {known}")
        return json.loads((self.root / version / "card.json").read_text(encoding="utf-8"))

    def onnx(self, version: str) -> Path:
        self.card(version)
        return self.root / version / "model.onnx"

    def state(self) -> ActiveState:
        try:
            data = json.loads(self.active_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ActiveState(None, ())
        return ActiveState(data.get("active"), tuple(data.get("history", ())))

    def _write(self, state: ActiveState) -> None:
        tmp = self.active_file.with_suffix(".json.part")
        tmp.write_text(json.dumps(state.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.active_file)

    def promote(self, version: str, *, by: str, now: float) -> ActiveState:
        """Make ``version`` live (the one live before stays on disk and in the history)."""
        self.card(version)
        current = self.state()
        if current.active == version:
            raise RegistryError(f"model {version} is live already")
        entry = {"at": now, "by": by, "action": "promote", "version": version, "previous": current.active}
        state = ActiveState(version, (*current.history, entry))
        self._write(state)
        return state

    def rollback(self, *, by: str, now: float) -> ActiveState:
        """回退: make the version that was live before the current one live again (None: no site model)."""
        current = self.state()
        if current.active is None:
            raise RegistryError("no site model is live: nothing to roll back")
        before = next((h.get("previous") for h in reversed(current.history) if h.get("version") == current.active
                       and h.get("action") == "promote"), None)
        if before is not None and before not in self.versions():
            before = None
        entry = {"at": now, "by": by, "action": "rollback", "version": before, "previous": current.active}
        state = ActiveState(before, (*current.history, entry))
        self._write(state)
        return state
