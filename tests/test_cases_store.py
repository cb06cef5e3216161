"""CaseStore on both backends (a real SQLite file and a real PostgreSQL 15 database, fixture ``cases_url``): round
trip, pagination and filters, case numbers, alarm index, outbox, migrations, optimistic versions."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from cases.migrations import MIGRATIONS
from cases.store import CASE_KEYS, SCHEMA_VERSION, CaseStore, StoreConflict, StoreError, VersionConflict

pytestmark = pytest.mark.every_backend

T0 = 1_773_198_000.0  # 2026-03-11 11:00 +08:00


def _case(n: int, *, camera: str = "cam-a", state: str = "dispatched", at: float | None = None) -> dict:
    at = T0 + n * 60 if at is None else at
    return {
        "id": f"case-{n:03d}", "case_no": f"CW20260311-{n:04d}", "source": "camera", "kind": "事件", "code": "0501",
        "category_name": "无照经营游商", "title": f"title {n}", "state": state, "urgency": "一般",
        "camera_id": camera, "camera_name": "解放路人行道", "zone_id": "pavement", "event": "vending",
        "address": "解放路88号", "street": "湖滨街道", "community": "东坡社区", "grid_code": "33010200100101",
        "unit_id": "hubin-squad", "unit_name": "湖滨街道城管中队", "reported_at": at, "deadline_at": at + 7200,
        "deadline_iso": "2026-03-11T13:00:00+08:00", "time_limit": {"value": 2, "unit": "work_hours", "calendar": "x"},
    }


def _insert(store: CaseStore, case: dict, alarm_id: str | None = None) -> None:
    with store.transaction() as tx:
        tx.insert_case(case)
        tx.append_timeline(case["id"], at=case["reported_at"], state="reported", action="report", actor="system")
        tx.append_timeline(case["id"], at=case["reported_at"], state=case["state"], action="dispatch", actor="system",
                           note="派遣")
        tx.link_alarm(alarm_id or f"alarm-{case['id']}", "raised", case["id"], case["reported_at"])
        tx.add_evidence(case["id"], f"2026/03/11/{case['id']}.jpg", kind="snapshot", at=case["reported_at"])


def test_round_trip_has_the_contract_keys(store):
    _insert(store, _case(1))
    got = store.get_case("case-001", now=T0 + 100)
    assert list(got)[: len(CASE_KEYS)] == list(CASE_KEYS)
    assert got["state_label"] == "派遣"
    assert got["alarm_ids"] == ["alarm-case-001"]
    assert got["evidence"] == ["2026/03/11/case-001.jpg"]
    assert [e["action"] for e in got["timeline"]] == ["report", "dispatch"]
    assert got["timeline"][1] == {"at": T0 + 60, "state": "dispatched", "action": "dispatch", "actor": "system",
                                  "note": "派遣"}
    assert got["time_limit"] == {"value": 2, "unit": "work_hours", "calendar": "x"}
    assert got["overdue"] is False
    assert store.get_case("case-001", now=T0 + 60 + 7201)["overdue"] is True
    assert store.get_case("nope") is None
    assert store.get_case_by_no("CW20260311-0001")["id"] == "case-001"


def test_pagination_filters_and_order(store):
    for n in range(1, 13):
        _insert(store, _case(n, camera="cam-a" if n % 3 else "cam-b", state="closed" if n == 5 else "dispatched"))
    page, total = store.list_cases(limit=5)
    assert total == 12 and [c["id"] for c in page] == [f"case-{n:03d}" for n in (12, 11, 10, 9, 8)]
    page, total = store.list_cases(limit=5, offset=10)
    assert total == 12 and [c["id"] for c in page] == ["case-002", "case-001"]
    page, total = store.list_cases(camera_id="cam-b")
    assert total == 4 and {c["camera_id"] for c in page} == {"cam-b"}
    page, total = store.list_cases(state="closed")
    assert total == 1 and page[0]["id"] == "case-005" and page[0]["state_label"] == "结案"
    assert store.list_cases(camera_id="cam-z") == ([], 0)
    assert all(len(c["timeline"]) == 2 and len(c["evidence"]) == 1 for c in store.list_cases()[0])
    with pytest.raises(ValueError):
        store.list_cases(state="lost")
    with pytest.raises(ValueError):
        store.list_cases(limit=-1)


def test_case_numbers_per_day(store):
    with store.transaction() as tx:
        numbers = [tx.next_case_no("20261122") for _ in range(3)] + [tx.next_case_no("20261123")]
    assert numbers == ["CW20261122-0001", "CW20261122-0002", "CW20261122-0003", "CW20261123-0001"]


def test_alarm_index_is_unique_and_rollback_keeps_nothing(store):
    _insert(store, _case(1), alarm_id="a-1")
    with pytest.raises(StoreConflict), store.transaction() as tx:
        tx.insert_case(_case(2))
        tx.link_alarm("a-1", "raised", "case-002", T0)
    assert store.get_case("case-002") is None  # the whole transaction rolled back
    with store.transaction() as tx:
        assert tx.case_for_alarm("a-1") == "case-001"
        assert tx.case_for_alarm("a-1", "cleared") is None
        tx.link_alarm("a-1", "cleared", "case-001", T0 + 5)


def test_update_case_tracks_open_and_closed(store):
    _insert(store, _case(1))
    with store.transaction() as tx:
        assert tx.find_open_case("cam-a", "pavement", "事件", "0501") == "case-001"
        tx.update_case("case-001", T0 + 9000, state="closed")
        assert tx.find_open_case("cam-a", "pavement", "事件", "0501") is None
    closed = store.get_case("case-001", now=T0 + 99999)
    assert closed["state"] == "closed" and closed["overdue"] is True  # closed after its deadline (超期结案)
    assert closed["updated_at"] == T0 + 9000


def test_evidence_must_stay_relative(store):
    _insert(store, _case(1))
    for bad in ("/etc/passwd", "../secrets.jpg", "a/../../b.jpg"):
        with pytest.raises(StoreError, match="relative"), store.transaction() as tx:
            tx.add_evidence("case-001", bad, kind="snapshot", at=T0)


def test_outbox(store):
    _insert(store, _case(1))
    with store.transaction() as tx:
        tx.enqueue_event("case-001", {"case_id": "case-001", "n": 1}, T0)
        tx.enqueue_event("case-001", {"case_id": "case-001", "n": 2}, T0)
    pending = store.pending_events()
    assert [e["n"] for _, e in pending] == [1, 2]
    store.mark_published([pending[0][0]])
    assert [e["n"] for _, e in store.pending_events()] == [2]


def test_reopen_keeps_data_and_schema(cases_url):
    url = cases_url
    s = CaseStore.open(url)
    _insert(s, _case(1))
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.get_case("case-001")
    s = CaseStore.open(url)
    assert s.schema_version() == SCHEMA_VERSION
    assert s.get_case("case-001")["case_no"] == "CW20260311-0001"
    if s.backend == "sqlite":
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


def test_sqlite_folders_are_created(tmp_path):
    s = CaseStore.open(f"sqlite:///{tmp_path}/nested/dir/cases.sqlite")
    assert (tmp_path / "nested/dir/cases.sqlite").exists() and s.backend == "sqlite"
    s.close()


def test_migrations_are_numbered_and_recorded(cases_url):
    s = CaseStore.open(cases_url)
    rows = s._conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [tuple(r) for r in rows] == [(m.version, m.name) for m in MIGRATIONS]
    s.close()
    s = CaseStore.open(cases_url)  # reopening applies nothing twice
    assert len(s._conn.execute("SELECT version FROM schema_migrations").fetchall()) == len(MIGRATIONS)
    s.close()


def test_a_v1_store_is_upgraded_in_place(tmp_path):
    # A store written by the first release: only migration 1 and a bare schema_version table.
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0].statements("INTEGER PRIMARY KEY AUTOINCREMENT"):
        conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.commit()
    conn.close()
    s = CaseStore.open(f"sqlite:///{path}")
    _insert(s, _case(1))
    assert s.schema_version() == SCHEMA_VERSION and s.get_case("case-001")["version"] == 1
    s.close()


def test_versions_detect_concurrent_changes(store):
    _insert(store, _case(1))
    assert store.get_case("case-001")["version"] == 1
    with store.transaction() as tx:
        assert tx.update_case("case-001", T0 + 10, expected_version=1, state="handling") == 2
    with pytest.raises(VersionConflict) as info, store.transaction() as tx:
        tx.update_case("case-001", T0 + 20, expected_version=1, state="handled")
    assert info.value.current["state"] == "handling" and info.value.current["version"] == 2
    assert store.get_case("case-001")["state"] == "handling"


def test_newer_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/cases.sqlite"
    CaseStore.open(url).close()
    conn = sqlite3.connect(tmp_path / "cases.sqlite")
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)",
                 (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this code"):
        CaseStore.open(url)


@pytest.mark.parametrize(
    "url, says",
    [
        ("postgresql://user:pw@127.0.0.1:1/citywall", "cannot open case store postgresql://user:\\*\\*\\*@"),
        ("mysql://db/x", "unsupported case store URL"),
        ("var/cases.sqlite", "unsupported case store URL"),
        ("sqlite:///", "has no path"),
    ],
)
def test_bad_urls(url, says):
    with pytest.raises(StoreError, match=says) as info:
        CaseStore.open(url)
    assert "pw" not in str(info.value)


def test_threads_share_one_store(store):
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(20):
                n = k * 100 + i
                _insert(store, _case(n))
                store.list_cases(limit=5)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert store.list_cases()[1] == 80


def test_search_by_number_and_text_with_wildcards_literal(store):
    _insert(store, _case(1))
    _insert(store, {**_case(2), "title": "河坊街 100%_占道", "address": "河坊街\\1号"})
    assert [c["id"] for c in store.list_cases(q="0002")[0]] == ["case-002"]
    assert [c["id"] for c in store.list_cases(q="河坊")[0]] == ["case-002"]
    assert [c["id"] for c in store.list_cases(q="100%_")[0]] == ["case-002"]
    assert store.list_cases(q="%")[1] == 1 and store.list_cases(q="_占")[1] == 1
    assert store.list_cases(q="街\\1")[1] == 1
    assert store.list_cases(q="湖滨街道城管中队")[1] == 2
    assert store.list_cases(q="nowhere")[1] == 0


def test_postgres_store_reconnects_after_losing_its_connection(postgres_url):
    import psycopg

    s = CaseStore.open(postgres_url)
    _insert(s, _case(1))
    pid = s._conn.info.backend_pid
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError) as info:  # the call that finds the connection gone fails, naming the store
        s.get_case("case-001")
    assert "postgresql://" in str(info.value) and not isinstance(info.value, StoreConflict)
    assert s.get_case("case-001")["id"] == "case-001"  # the next one reconnects
    _insert(s, _case(2))
    assert s.list_cases()[1] == 2 and s._conn.info.backend_pid != pid
    s.close()


def test_counts_by_state_and_overdue(store):
    _insert(store, _case(1))                      # deadline T0 + 60 + 7200
    _insert(store, _case(2, state="handling"))    # deadline T0 + 120 + 7200
    _insert(store, _case(3))
    with store.transaction() as tx:
        tx.update_case("case-003", T0 + 500, state="closed")
    assert store.counts(T0) == {"by_state": {"dispatched": 1, "handling": 1, "closed": 1}, "overdue": 0}
    assert store.counts(T0 + 60 + 7201)["overdue"] == 1
    assert store.counts(T0 + 10**6)["overdue"] == 2  # the closed case is never overdue


def test_a_write_transaction_holds_the_write_lock_until_commit(cases_url):
    """Begin takes the store's write lock (SQLite BEGIN IMMEDIATE; PostgreSQL BEGIN and the advisory lock, sent
    together in one round trip): a second writer in another connection waits until the first commits."""
    a, b = CaseStore.open(cases_url), CaseStore.open(cases_url)
    entered = threading.Event()

    def second_writer() -> None:
        with b.transaction() as tx:
            entered.set()
            tx.next_case_no("20260311")

    try:
        with a.transaction() as tx:
            assert tx.next_case_no("20260311") == "CW20260311-0001"
            t = threading.Thread(target=second_writer)
            t.start()
            assert not entered.wait(0.5), "the second writer got in while the first held the lock"
        assert entered.wait(10)
        t.join(10)
        with a.transaction() as tx:
            assert tx.next_case_no("20260311") == "CW20260311-0003"
    finally:
        a.close()
        b.close()
