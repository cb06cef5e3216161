"""The server side of the wall screens: one :class:`wall.screens.Wall` per server, persisted and pushed.

Every change goes through :meth:`ScreenService.apply` under one lock: the pure core changes, each changed
screen is written to the bus state table ``wall_screens`` (so a reload or a restart comes back the same) and
published as a :class:`WallScreenState` on stream ``wall`` (the event hub pushes it to every browser). Actions by
people are also published as :class:`WallAction` on ``wall_actions`` (who, what, when).

Background tasks (started in the app's ``cleanup_ctx``): the ticker drives tours and alarm timeouts at
:meth:`Wall.next_due`, so every browser shows the same step; the alarm tail reads streams ``alarms`` and
``case_deadlines`` from their ends and pops raised alarms onto the screens' alarm tiles; the follower reads stream
``wall`` and adopts, from the state table, every screen another wall server changed (newer version), so several wall
servers behind one address show the same wall. With several servers only the *leading* one ticks and pops alarms
(``citywall wall`` elects it with a lease; ``citywall up`` always leads) — otherwise a tour would step once per
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.backoff import Backoff
from config import ConfigError, Settings
from messages import streams
from messages.wall import WallAction, WallScreenState
from wall.screens import PlanDef, PlanScreen, ScreenDef, ScreenError, TourDef, Wall

if TYPE_CHECKING:
    from broker.bus import Bus

log = logging.getLogger("citywall.wall.screens")

STATE_TABLE = "wall_screens"
TICK_MAX_S = 1.0


def _layout_spec(layout: Any) -> Any:
    return layout if isinstance(layout, str) else layout.model_dump()


def build_wall(settings: Settings, now: float) -> Wall:
    """The pure core from the ``video_wall`` settings (default: screen ``main``, 2x2, the first cameras).

    Geometry the schema cannot check (a tile index outside its layout) becomes a :class:`ConfigError`."""
    vw = settings.video_wall
    cameras = [c.id for c in settings.cameras]
    if vw.screens:
        screens = [ScreenDef(s.id, s.name or s.id, _layout_spec(s.layout), tuple(s.tiles), s.alarm_tile,
                             s.alarm_timeout_s) for s in vw.screens]
    else:
        enabled = [c.id for c in settings.cameras if c.enabled]
        screens = [ScreenDef("main", "主屏", "2x2", tuple(enabled[:4]))]
    tours = [TourDef(t.id, t.name or t.id, tuple(t.cameras), t.dwell_s) for t in vw.tours]
    plans = [PlanDef(p.id, p.name or p.id, {
        sid: PlanScreen(_layout_spec(ps.layout), tuple(ps.tiles), ps.tour,
                        tuple(ps.tour_tiles) if ps.tour_tiles is not None else None)
        for sid, ps in p.screens.items()}) for p in vw.plans]
    try:
        return Wall(screens, cameras, tours=tours, plans=plans, priorities=vw.alarm_priority, now=now)
    except ScreenError as exc:
        raise ConfigError("video_wall", [(f"video_wall.{exc.field}", exc.reason)]) from None


@dataclass
class ScreenStats:
    changes: int = 0
    published: int = 0
    alarms_seen: int = 0
    alarms_popped: int = 0
    restore_errors: int = 0
    errors: int = 0
    adopted: int = 0
    """Screens taken over from another wall server's change."""


class ScreenService:
    """Owns the wall's screens on this server; see the module docstring."""

    def __init__(self, settings: Settings, bus: Bus, *, clock: Callable[[], float] = time.time):
        self.bus = bus
        self.clock = clock
        self.wall = build_wall(settings, clock())
        self.plan_roles = {p.id: list(p.roles) for p in settings.video_wall.plans}
        self.lock = asyncio.Lock()
        self.stats = ScreenStats()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.origin = uuid.uuid4().hex
        """This server's mark on the states it publishes, so the follower skips its own."""
        self.leading = True
        """Whether this server drives tours, alarm timeouts and alarm pop-ups (see the module docstring)."""
        self.ready = asyncio.Event()
        """Set once persisted state is restored and the alarm tail knows where ``alarms`` and ``case_deadlines`` end."""

    # -------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        try:
            await asyncio.wait_for(self._restore(), 5.0)
        except Exception as exc:  # the configured screens stay; the server still starts
            self.stats.restore_errors += 1
            log.warning("wall screens: cannot read the saved state (%r); starting from the configuration", exc)
        self._tasks = [asyncio.create_task(self._ticker(), name="wall-screens-ticker"),
                       asyncio.create_task(self._alarm_tail(), name="wall-screens-alarms"),
                       asyncio.create_task(self._follow(), name="wall-screens-follow")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _restore(self) -> None:
        saved = await self.bus.get_state(STATE_TABLE)
        replaced: list[str] = []
        for screen_id, data in saved.items():
            if screen_id not in self.wall.screens:
                continue
            try:
                self.wall.restore(screen_id, data)
            except (ScreenError, KeyError, TypeError, ValueError) as exc:
                self.stats.restore_errors += 1
                log.warning("wall screen %s: saved state no longer fits the configuration (%s); using the "
                            "configured one", screen_id, exc)
                # Versions only grow, so browsers still showing the old state take the configured one.
                version = data.get("version") if isinstance(data, dict) else 0
                self.wall.screens[screen_id].version = (version if isinstance(version, int) else 0) + 1
                replaced.append(screen_id)
        # Time passed while the server was down: catch tours and alarm timeouts up before anyone looks.
        changed = replaced + self.wall.tick(self.clock())
        if changed:
            await self._commit(changed)

    # -------------------------------------------------------------------------------------- changes

    async def apply(self, op: Callable[[float], list[str]], *, user: dict[str, Any] | None = None,
                    action: str = "", detail: dict[str, Any] | None = None) -> list[str]:
        """Run ``op(now)`` on the core under the lock; persist, publish and audit what it changed.

        If persisting fails (bus outage) the change is undone in memory, so what the caller was told (an error)
        is what happened; a tour step is then simply retried by the next tick."""
        async with self.lock:
            now = self.clock()
            saved = copy.deepcopy(self.wall.screens)
            changed = op(now)
            try:
                await self._commit(changed)
            except BaseException:
                self.wall.screens = saved
                raise
            if user is not None:
                await self.bus.publish(WallAction(at=now, username=user["username"], role=user["role"],
                                                  action=action, screens=changed, detail=detail or {}))
        self._wake.set()
        return changed

    async def _commit(self, changed: list[str]) -> None:
        for screen_id in dict.fromkeys(changed):
            self.stats.changes += 1
            await self.bus.put_state(STATE_TABLE, screen_id, self.wall.snapshot(screen_id))
            view = self.wall.view(screen_id)
            await self.bus.publish(WallScreenState(screen_id=screen_id, version=view["version"], at=self.clock(),
                                                   screen=view, origin=self.origin))
            self.stats.published += 1

    # -------------------------------------------------------------------------------------- background

    async def _ticker(self) -> None:
        while True:
            due = self.wall.next_due()
            wait = TICK_MAX_S if due is None else min(TICK_MAX_S, max(0.0, due - self.clock()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            if not self.leading:
                continue
            try:
                await self.apply(self.wall.tick)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bus outage: the next tick retries
                self.stats.errors += 1
                log.warning("wall screens tick failed: %r", exc)
                await asyncio.sleep(TICK_MAX_S)

    async def _follow(self) -> None:
        """Adopt screens other wall servers changed: their state table entry, when newer than ours."""
        backoff = Backoff(initial_s=0.5, max_s=10.0)
        while True:
            try:
                ids = await self.bus.last_ids([WallScreenState.STREAM])
                async for entry in self.bus.tail([WallScreenState.STREAM], dict(ids), block_ms=1000):
                    if entry.data.get("origin") == self.origin:
                        continue
                    await self.adopt(str(entry.data.get("screen_id")))
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.errors += 1
                delay = backoff.delay()
                log.warning("wall screens follower failed (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def adopt(self, screen_id: str) -> bool:
        """Take ``screen_id`` from the state table if another server saved a newer version; True if adopted."""
        if screen_id not in self.wall.screens:
            return False
        saved = (await self.bus.get_state(STATE_TABLE)).get(screen_id)
        async with self.lock:
            mine = self.wall.screens[screen_id].version
            if not isinstance(saved, dict) or int(saved.get("version", 0)) <= mine:
                return False
            try:
                self.wall.restore(screen_id, saved)
            except (ScreenError, KeyError, TypeError, ValueError) as exc:
                log.warning("wall screen %s from another server does not fit here (%s)", screen_id, exc)
                return False
            self.stats.adopted += 1
        self._wake.set()
        return True

    async def _alarm_tail(self) -> None:
        backoff = Backoff(initial_s=0.5, max_s=10.0)
        tailed = [streams.ALARMS, streams.CASE_DEADLINES]
        ids: dict[str, str] | None = None
        while True:
            try:
                if ids is None:
                    ids = await self.bus.last_ids(tailed)
                self.ready.set()
                async for entry in self.bus.tail(tailed, dict(ids), block_ms=1000):
                    ids[entry.stream] = entry.id
                    self.stats.alarms_seen += 1
                    if not self.leading:
                        continue
                    pop = self.wall.raise_alarm if entry.stream == streams.ALARMS else self.wall.raise_deadline
                    try:
                        changed = await self.apply(functools.partial(pop, entry.data))
                    except ScreenError as exc:
                        log.warning("alarm %s not shown on the wall: %s", entry.id, exc)
                        continue
                    if changed:
                        self.stats.alarms_popped += 1
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.errors += 1
                delay = backoff.delay()
                log.warning("wall screens alarm tail failed (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
