"""The running configuration: the cameras and users an administrator changes while citywall runs.

A change is the whole new ``cameras`` and/or ``users`` list. It is validated by the same schema as
``citywall check-config`` (the site file's other sections plus the change, through ``config.parse_settings``), so
a bad change is refused with the key path and nothing changes. An accepted change is

1. persisted in ``data_dir/running-config.yaml`` (0600, written to a temporary file and renamed): an overlay
   holding only the changed sections, so a restart keeps it and the site file stays the site's own, readable
   YAML. An overlay file rather than a case-store table: the case store's migrations are shared with three
   other rooms, the overlay is the same format as the file it overrides (export and import are that format),
   and ``citywall up`` needs it before the case store is open;
2. applied to this process by the appliers registered with :meth:`RunningConfig.add_applier` (ingest,
   detection, the wall server), each given ``(old, new, change)`` from ``admin.changes.plan_changes``;
3. announced on the bus (stream ``config_changes``, the overlay in the message) so every other process of a
   cluster adopts it (:meth:`RunningConfig.follow`).

The caller (``admin.api``) writes the audit entry with the diff.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from admin.changes import (
    EDITABLE,
    ConfigChange,
    diff_lines,
    mask_secrets,
    plan_changes,
    restore_secrets,
)
from config.settings import ConfigError, Settings, parse_settings

log = logging.getLogger("citywall.admin")

OVERLAY_NAME = "running-config.yaml"
Applier = Callable[[Settings, Settings, ConfigChange], Awaitable[None]]


@dataclass
class ConfigChanged:
    """Bus message: the running configuration changed (every process reloads the overlay it carries)."""

    STREAM = "config_changes"
    origin: str
    version: int
    actor: str
    overlay: dict[str, Any]
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "version": self.version, "actor": self.actor, "overlay": self.overlay,
                "at": self.at}


@dataclass
class Outcome:
    """What a change did: the new settings, the actions, the key-path diff and appliers that failed."""

    settings: Settings
    change: ConfigChange
    diff: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)


def settings_data(settings: Settings) -> dict[str, Any]:
    """``settings`` as plain YAML-able data that validates to the same settings."""
    return settings.model_dump(mode="json", exclude_defaults=True)


def _editable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k, []) for k in EDITABLE}


def read_overlay(data_dir: Path) -> dict[str, Any]:
    """The persisted overlay (empty when there is none); a broken one is a :class:`ConfigError` naming the file."""
    path = Path(data_dir) / OVERLAY_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [("(file)", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict) or set(data) - set(EDITABLE):
        raise ConfigError(str(path), [("(top level)", f"only {', '.join(EDITABLE)} may be kept here")])
    return data


def with_overlay(base: Settings, overlay: dict[str, Any], source: str = "running configuration") -> Settings:
    """``base`` with the overlay's sections replaced, validated as a whole (:class:`ConfigError` if not valid)."""
    if not overlay:
        return base
    return parse_settings({**settings_data(base), **overlay}, source)


def load_running(base: Settings) -> Settings:
    """Start-up: the site file's settings with the persisted admin changes on top (restarts keep them)."""
    return with_overlay(base, read_overlay(base.storage.data_dir), str(base.storage.data_dir / OVERLAY_NAME))


class RunningConfig:
    """The current settings of this process and the one way to change them (see the module docstring)."""

    def __init__(self, settings: Settings, *, bus: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.origin = secrets.token_hex(8)
        self.version = 0
        self._appliers: list[Applier] = []
        self._lock = asyncio.Lock()
        self.path = settings.storage.data_dir / OVERLAY_NAME
        self.stream_url: Callable[[str], str] | None = None
        """The URL ingest would open for a configured one (``citywall up``: ``demo://<scene>`` → the private RTSP
        server), so 测试连接 and the zone editor's picture work on demo cameras; None: URLs are used as given."""
        self.candidates: Callable[[str], tuple[float, list[list[float]]] | None] | None = None
        """Where detection runs in this process (``citywall up``): a camera's current stationary candidates
        (``DetectionWorker.candidates``), for the zone editor's preview; None elsewhere (a separate wall server)."""

    def add_applier(self, applier: Applier) -> None:
        """Call ``applier(old, new, change)`` after every accepted change (in the order added)."""
        self._appliers.append(applier)

    def candidate(self, changes: dict[str, Any]) -> Settings:
        """The settings ``changes`` (sections ``cameras``/``users``, whole lists) would give; :class:`ConfigError`
        naming the key path when they are not valid or touch another section."""
        other = sorted(set(changes) - set(EDITABLE))
        if other:
            why = f"cannot be changed while running (only {', '.join(EDITABLE)}); edit the site file and restart"
            raise ConfigError("change", [(k, why) for k in other])
        return with_overlay(self.settings, changes, "change")

    def preview(self, new: Settings) -> tuple[ConfigChange, list[dict[str, Any]]]:
        """What switching to ``new`` would do, and the diff, without doing it."""
        return plan_changes(self.settings, new), diff_lines(settings_data(self.settings), settings_data(new))

    async def change(self, changes: dict[str, Any], *, actor: str) -> Outcome:
        """Validate, persist, apply and announce ``changes`` (see :meth:`candidate`)."""
        async with self._lock:
            new = self.candidate(changes)
            outcome = await self._switch(new)
            if self.bus is not None and not outcome.change.empty:
                try:
                    await self.bus.publish(ConfigChanged(self.origin, self.version, actor,
                                                         _editable(settings_data(new)), self.clock()))
                except Exception as exc:  # applied and persisted here; the others pick it up on restart
                    outcome.errors.append(f"bus: {exc}")
                    log.exception("config change not announced on the bus")
            return outcome

    async def _switch(self, new: Settings) -> Outcome:
        old = self.settings
        change, diff = self.preview(new)
        await asyncio.to_thread(self._persist, new)
        self.settings = new
        self.version += 1
        errors = []
        for applier in self._appliers:
            try:
                await applier(old, new, change)
            except Exception as exc:
                errors.append(f"{getattr(applier, '__name__', 'applier')}: {exc}")
                log.exception("applying the config change failed in %s", applier)
        return Outcome(new, change, diff, errors)

    def _persist(self, new: Settings) -> None:
        data = _editable(settings_data(new))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".running-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("# citywall: cameras and users changed from the browser (admin pages); edit there.\n")
                yaml.safe_dump(data, f, allow_unicode=True, sort_keys=False)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def export_yaml(self) -> str:
        """The whole running configuration as YAML, the site file's form with every secret masked (camera and
        broker URL passwords, tokens): secrets never leave the server. Importing it changes nothing: a masked value
        still masked is the stored one."""
        return yaml.safe_dump(mask_secrets(settings_data(self.settings)), allow_unicode=True, sort_keys=False)

    def parse_import(self, text: str) -> tuple[Settings, list[str]]:
        """A whole configuration in YAML → the settings it gives while running, and the sections that differ
        but need a restart (not applied). :class:`ConfigError` naming the line or key path."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
            raise ConfigError("import", [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
        if isinstance(data, dict):
            data = restore_secrets(data, settings_data(self.settings))  # masked by the export: the stored ones
        whole = parse_settings(data, "import")  # the whole file must be valid, as check-config would say
        restart = plan_changes(self.settings, whole).restart_needed
        return self.candidate(_editable(settings_data(whole))), restart

    async def follow(self, stop: asyncio.Event) -> None:
        """Adopt the changes other processes announce on the bus (several-worker mode) until ``stop`` is set."""
        reader = asyncio.create_task(self._follow(), name="config-follow")
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({reader, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, stopped):
                task.cancel()
            await asyncio.gather(reader, stopped, return_exceptions=True)
        if reader.done() and not reader.cancelled():
            error = reader.exception()
            if error is not None:
                raise error  # the supervisor restarts it

    async def _follow(self) -> None:
        async for entry in self.bus.tail([ConfigChanged.STREAM]):
            data = entry.data
            if data.get("origin") == self.origin:
                continue
            try:
                async with self._lock:
                    new = with_overlay(self.settings, data.get("overlay") or {}, "bus")
                    outcome = await self._switch(new)
                log.info("adopted config change v%s by %s: %s", data.get("version"), data.get("actor"),
                         outcome.change.to_dict())
            except ConfigError as exc:
                log.error("config change from the bus refused: %s", exc)


def process_applier(*, ingest: Any, detection: Any, clips: Any, sources: Callable[[Settings], dict[str, str]],
                    analysis_sources: Callable[[Settings], dict[str, str]],
                    options: Callable[[Settings, Any], Any], filer: Any = None, recording: Any = None) -> Applier:
    """This process's cameras follow a change: detection lets go of removed cameras first, ingest closes and opens
    connections (with their clip buffers), then detection takes the new camera list (fresh analysers where zones
    or the stream changed); the case filer (``filer``) files a new camera's alarms with its address and grid;
    ``recording`` (``recording.service.RecordingService``) records the new and reconnected cameras.
    ``sources``/``analysis_sources``/``options`` are the worker role's resolvers (``citywall.builders.worker``)."""

    async def apply_to_cameras(old: Settings, new: Settings, change: ConfigChange) -> None:
        if filer is not None and change.camera_list_changed:
            filer.cameras = {c.id: c for c in new.cameras}
        urls, analysis = sources(new), analysis_sources(new)
        closing = set(change.cameras_removed) | set(change.cameras_reconnected)
        kept = [c for c in old.cameras if c.enabled and c.id in ingest.camera_ids and c.id not in closing]
        if closing:
            await detection.set_cameras(kept)
        for cid in sorted(closing):
            if cid in ingest.camera_ids:
                await ingest.remove_camera(cid)
                clips.remove(cid)
            if recording is not None:
                recording.remove_camera(cid)
        for cid in change.cameras_added + change.cameras_reconnected:
            if cid in urls:
                await ingest.add_camera(cid, urls[cid], options=options(new, new.camera(cid)),
                                        analysis_url=analysis.get(cid))
                ingest.subscribe_packets(cid, clips.buffer(cid))
                if recording is not None:
                    recording.add_camera(new, cid, ingest.subscribe_packets)
        if change.camera_list_changed:
            await detection.set_cameras([c for c in new.cameras if c.enabled and c.id in ingest.camera_ids],
                                        changed=set(change.cameras_reconnected) | set(change.cameras_reanalysed))
        if closing or change.cameras_added:
            log.info("cameras now: %s", ", ".join(ingest.camera_ids))

    return apply_to_cameras
