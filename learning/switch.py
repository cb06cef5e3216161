"""The live site model, swapped without a restart: :class:`ModelSwitch` follows the registry's ``active.json``.

The detection worker keeps one ``backend`` attribute that its analysis thread reads once per round; the switch
builds the backend for the live version (``OnnxBackend`` on ``model.onnx`` with the card's class map, so the
judgement gets the model's boxes by role: stall, goods, person, bike, vehicle, garbage, bin) combined with the
configured ``detection.models`` (the ``base``), and hands it over with ``apply``. A version that cannot be loaded
is logged and counted and the current backend stays; a rollback to no version hands back the base alone (None
without configured models: the model-free judgement). ``poll`` is cheap (one ``stat``); ``run`` polls every
``interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from learning.registry import ModelRegistry

log = logging.getLogger("citywall.learning.switch")


def site_backend(registry: ModelRegistry, version: str, *, confidence: float = 0.25) -> Any:
    """The ONNX backend of ``version`` with its card's class map (``detectors.models.ModelError`` if unusable)."""
    from detectors.models import OnnxBackend

    card = registry.card(version)
    return OnnxBackend(registry.onnx(version), dict(card["class_map"]), name=f"site-{version}",
                       confidence=confidence)


class ModelSwitch:
    def __init__(self, registry: ModelRegistry, base: Any, apply: Callable[[Any], None], *,
                 confidence: float = 0.25) -> None:
        self.registry = registry
        self.base = base
        self.apply = apply
        self.confidence = confidence
        self.live: str | None = None
        self.swaps = 0
        self.errors = 0
        self._stamp: tuple[float, int] | None = None

    def poll(self) -> bool:
        """Swap in the registry's live version if it changed; True when the backend was handed over."""
        try:
            st = self.registry.active_file.stat()
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        wanted = self.registry.state().active
        if wanted == self.live:
            return False
        backend = self.base
        if wanted is not None:
            try:
                site = site_backend(self.registry, wanted, confidence=self.confidence)
            except Exception:  # a broken file must not take detection down: keep what runs
                self.errors += 1
                log.exception("site model %s could not be loaded; keeping %s", wanted, self.live or "no site model")
                return False
            if self.base is None:
                backend = site
            else:
                from detectors.models import CombinedBackend

                backend = CombinedBackend([self.base, site])
        self.apply(backend)
        log.info("site model %s → %s (live without restart)", self.live or "none", wanted or "none")
        self.live = wanted
        self.swaps += 1
        return True

    def stats(self) -> dict[str, object]:
        return {"live": self.live, "swaps": self.swaps, "errors": self.errors}

    async def run(self, stop: asyncio.Event, interval_s: float = 5.0) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.poll)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
