"""Who should hold what: a pure, deterministic assignment of items (cameras) to live workers.

Every worker computes the same assignment from the same inputs, so no coordinator is needed: the lease keeper of
each worker (``broker.leases``) acquires what the assignment gives it and releases what it gives to someone else.

The assignment is rendezvous (highest-random-weight) hashing with bounded load: each item prefers workers in the
order of ``hash(item, worker)`` and takes the first one still under its share (``items // workers``, one more for
the first ``items % workers`` to fill up). Rendezvous hashing moves few items when a worker joins or leaves (only
those whose preferred worker changed); the load bound makes the split exact even for a handful of cameras, where
plain hashing is lumpy (6 cameras on 2 workers can come out 5/1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def weight(item: str, worker: str) -> int:
    """The rendezvous weight of ``worker`` for ``item`` (stable across processes and Python versions)."""
    digest = hashlib.blake2b(f"{item}\x00{worker}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(items: Iterable[str], workers: Iterable[str]) -> dict[str, str]:
    """item → worker for every item; {} when there are no workers. Deterministic in its inputs' contents."""
    pool = sorted(set(workers))
    names = sorted(set(items))
    if not pool:
        return {}
    base, extra = divmod(len(names), len(pool))  # every worker gets base items, ``extra`` of them one more
    load = dict.fromkeys(pool, 0)
    out: dict[str, str] = {}
    for item in names:
        for worker in sorted(pool, key=lambda w: (-weight(item, w), w)):
            if load[worker] < base or (load[worker] == base and extra > 0):
                if load[worker] == base:
                    extra -= 1
                out[item] = worker
                load[worker] += 1
                break
    return out


@dataclass(frozen=True)
class LeasePlan:
    """What one worker does this round. ``take_over`` maps an item to the dead holder whose lease it replaces."""

    acquire: tuple[str, ...] = ()
    take_over: tuple[tuple[str, str], ...] = ()
    release: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()


def plan(me: str, items: Iterable[str], live: Iterable[str], holders: Mapping[str, str | None]) -> LeasePlan:
    """The plan for worker ``me``.

    ``live``: workers with a fresh heartbeat (``me`` counts as live). ``holders``: item → current lease holder (None
    when free). An item held by ``me`` and assigned elsewhere is released (its new owner picks it up on its next
    round); an item assigned to ``me`` is acquired when free, taken over when its holder is dead, and left alone
    while another live worker still holds it (that worker releases it on its own round).
    """
    alive = set(live) | {me}
    target = assign(items, alive)
    acquire: list[str] = []
    take_over: list[tuple[str, str]] = []
    release: list[str] = []
    keep: list[str] = []
    for item in sorted(target):
        holder = holders.get(item)
        mine = target[item] == me
        if holder == me:
            (keep if mine else release).append(item)
        elif not mine:
            continue
        elif holder is None:
            acquire.append(item)
        elif holder not in alive:
            take_over.append((item, holder))
    # Leases on items no longer configured are ours to drop.
    release += sorted(i for i, h in holders.items() if h == me and i not in target)
    return LeasePlan(tuple(acquire), tuple(take_over), tuple(release), tuple(keep))
