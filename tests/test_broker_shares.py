"""The pure assignment of cameras to workers (broker/shares.py): fair, deterministic, stable, and the lease plan."""

from __future__ import annotations

import itertools

import pytest

from broker.shares import LeasePlan, assign, plan

CAMS = [f"cam-{i:02d}" for i in range(12)]


@pytest.mark.parametrize("n_items,n_workers", [(0, 1), (1, 3), (6, 2), (7, 2), (12, 5), (100, 7), (3, 5)])
def test_every_item_gets_exactly_one_worker_and_the_split_is_fair(n_items: int, n_workers: int) -> None:
    items = [f"cam-{i}" for i in range(n_items)]
    workers = [f"w{i}" for i in range(n_workers)]
    out = assign(items, workers)
    assert sorted(out) == sorted(items)
    loads = [list(out.values()).count(w) for w in workers]
    assert max(loads) - min(loads) <= 1 if n_items >= n_workers else max(loads) <= 1


def test_assignment_does_not_depend_on_input_order() -> None:
    workers = ["a", "b", "c"]
    first = assign(CAMS, workers)
    for perm in itertools.islice(itertools.permutations(workers), 6):
        assert assign(reversed(CAMS), perm) == first


def test_no_workers_means_no_assignment() -> None:
    assert assign(CAMS, []) == {}


def test_a_joining_worker_takes_its_share_and_moves_few_others() -> None:
    before = assign(CAMS, ["a", "b", "c"])
    after = assign(CAMS, ["a", "b", "c", "d"])
    moved = [c for c in CAMS if before[c] != after[c]]
    assert sum(1 for c in CAMS if after[c] == "d") == 3
    # Only what d took (plus a little rebalancing from the load bound) moves.
    assert len(moved) <= 5


def test_a_leaving_worker_spreads_only_its_own_items() -> None:
    before = assign(CAMS, ["a", "b", "c"])
    after = assign(CAMS, ["a", "b"])
    assert sorted(after.values()).count("a") == 6
    unmoved = [c for c in CAMS if before[c] != "c"]
    assert sum(1 for c in unmoved if after[c] == before[c]) >= len(unmoved) - 2


def test_plan_acquires_free_items_assigned_to_me() -> None:
    p = plan("a", CAMS, ["a"], {c: None for c in CAMS})
    assert p == LeasePlan(acquire=tuple(CAMS))


def test_plan_keeps_mine_releases_what_belongs_elsewhere_and_waits_for_live_holders() -> None:
    target = assign(CAMS, ["a", "b"])
    mine = [c for c in CAMS if target[c] == "a"]
    theirs = [c for c in CAMS if target[c] == "b"]
    # a holds everything (b just joined); b holds nothing yet.
    p = plan("a", CAMS, ["a", "b"], {c: "a" for c in CAMS})
    assert p.keep == tuple(mine) and p.release == tuple(theirs) and not p.acquire and not p.take_over
    # b's view of the same moment: its items are held by a live worker, so it waits.
    q = plan("b", CAMS, ["a", "b"], {c: "a" for c in CAMS})
    assert q == LeasePlan()


def test_plan_takes_over_from_a_dead_holder() -> None:
    # c died: its heartbeat is gone, its leases have not lapsed yet.
    holders = {cam: "c" for cam in CAMS}
    p = plan("a", CAMS, ["a", "b"], holders)
    target = assign(CAMS, ["a", "b"])
    assert p.take_over == tuple((cam, "c") for cam in CAMS if target[cam] == "a")
    assert not p.acquire and not p.release


def test_plan_drops_leases_on_items_no_longer_configured() -> None:
    p = plan("a", ["cam-01"], ["a"], {"cam-01": "a", "cam-gone": "a"})
    assert p.keep == ("cam-01",) and p.release == ("cam-gone",)
