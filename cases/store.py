"""CaseStore: cases in SQLite (WAL), their timelines, evidence, the alarm → case index and the event outbox.

Every write happens inside :meth:`CaseStore.transaction` (``BEGIN IMMEDIATE``), so a filing decision — is this
alarm known, is there an open case at this place, allocate a case number — is atomic even across processes; the
``(alarm_id, phase)`` primary key makes filing idempotent even if two filers race. Events are written to an outbox
in the same transaction as the case and published afterwards, so a case is always written before it is announced
and an announcement survives a crash between the two.

All methods are synchronous and thread-safe (one connection behind a lock); async callers use
``asyncio.to_thread``. PostgreSQL is the production target later; the SQL here stays portable on purpose.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cases.workflow import OPEN_STATES, STATE_LABELS, State, TERMINAL_STATES

# Case dict keys in the order the API returns them (the wall renders these).
CASE_KEYS = (
    "id", "case_no", "source", "kind", "code", "category_name", "title", "state", "state_label", "urgency",
    "camera_id", "camera_name", "zone_id", "event", "address", "street", "community", "grid_code", "unit_id",
    "unit_name", "reported_at", "deadline_at", "deadline_iso", "time_limit", "alarm_ids", "evidence", "timeline",
    "overdue",
)
_COLUMNS = ("id", "case_no", "state", "camera_id", "zone_id", "kind", "code", "reported_at", "deadline_at")
_DERIVED = {"state_label", "alarm_ids", "evidence", "timeline", "overdue"}

MIGRATIONS: tuple[str, ...] = (
    # v1
    """
    CREATE TABLE cases (
        id TEXT PRIMARY KEY,
        case_no TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        is_open INTEGER NOT NULL,
        camera_id TEXT NOT NULL,
        zone_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        code TEXT NOT NULL,
        reported_at REAL NOT NULL,
        deadline_at REAL NOT NULL,
        closed_at REAL,
        updated_at REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX cases_open_place ON cases(camera_id, zone_id, kind, code) WHERE is_open = 1;
    CREATE INDEX cases_reported ON cases(reported_at DESC, id);
    CREATE INDEX cases_state ON cases(state, reported_at DESC);
    CREATE INDEX cases_camera ON cases(camera_id, reported_at DESC);
    CREATE TABLE case_timeline (
        case_id TEXT NOT NULL REFERENCES cases(id),
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        state TEXT NOT NULL,
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (case_id, seq)
    );
    CREATE TABLE case_alarms (
        alarm_id TEXT NOT NULL,
        phase TEXT NOT NULL,
        case_id TEXT NOT NULL REFERENCES cases(id),
        at REAL NOT NULL,
        PRIMARY KEY (alarm_id, phase)
    );
    CREATE INDEX case_alarms_case ON case_alarms(case_id);
    CREATE TABLE case_evidence (
        case_id TEXT NOT NULL REFERENCES cases(id),
        seq INTEGER NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        alarm_id TEXT NOT NULL DEFAULT '',
        at REAL NOT NULL,
        PRIMARY KEY (case_id, seq)
    );
    CREATE TABLE case_numbers (day TEXT PRIMARY KEY, last INTEGER NOT NULL);
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id TEXT NOT NULL,
        event TEXT NOT NULL,
        created_at REAL NOT NULL,
        published_at REAL
    );
    CREATE INDEX outbox_pending ON outbox(seq) WHERE published_at IS NULL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """The case store cannot be opened or used as asked."""


class CaseTx:
    """The operations available inside one write transaction (see :meth:`CaseStore.transaction`)."""

    def __init__(self, conn: sqlite3.Connection):
        self._c = conn

    def case_for_alarm(self, alarm_id: str, phase: str = "raised") -> str | None:
        row = self._c.execute("SELECT case_id FROM case_alarms WHERE alarm_id = ? AND phase = ?", (alarm_id, phase)).fetchone()
        return row[0] if row else None

    def link_alarm(self, alarm_id: str, phase: str, case_id: str, at: float) -> None:
        """Record that ``alarm_id``/``phase`` was handled for ``case_id``; raises ``sqlite3.IntegrityError`` twice."""
        self._c.execute("INSERT INTO case_alarms (alarm_id, phase, case_id, at) VALUES (?, ?, ?, ?)",
                        (alarm_id, phase, case_id, at))

    def find_open_case(self, camera_id: str, zone_id: str, kind: str, code: str) -> str | None:
        """The newest open case at this camera + zone for this category."""
        row = self._c.execute(
            "SELECT id FROM cases WHERE is_open = 1 AND camera_id = ? AND zone_id = ? AND kind = ? AND code = ? "
            "ORDER BY reported_at DESC LIMIT 1", (camera_id, zone_id, kind, code)).fetchone()
        return row[0] if row else None

    def next_case_no(self, day: str, prefix: str = "CW") -> str:
        """``CW20261122-0001``: a per-day sequence (``day`` is YYYYMMDD in the calendar's zone)."""
        self._c.execute("INSERT INTO case_numbers (day, last) VALUES (?, 1) "
                        "ON CONFLICT(day) DO UPDATE SET last = last + 1", (day,))
        (last,) = self._c.execute("SELECT last FROM case_numbers WHERE day = ?", (day,)).fetchone()
        return f"{prefix}{day}-{last:04d}"

    def insert_case(self, case: dict[str, Any]) -> None:
        """Insert a new case from its dict (derived keys such as timeline are ignored; append them separately)."""
        data = {k: v for k, v in case.items() if k not in _DERIVED}
        missing = [k for k in _COLUMNS if k not in data]
        if missing:
            raise StoreError(f"case is missing {', '.join(missing)}")
        state = State(data["state"])
        self._c.execute(
            "INSERT INTO cases (id, case_no, state, is_open, camera_id, zone_id, kind, code, reported_at, deadline_at,"
            " closed_at, updated_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
            (data["id"], data["case_no"], state.value, int(state in OPEN_STATES), data["camera_id"], data["zone_id"],
             data["kind"], data["code"], float(data["reported_at"]), float(data["deadline_at"]),
             float(data.get("updated_at", data["reported_at"])), json.dumps(data, ensure_ascii=False)))

    def update_case(self, case_id: str, at: float, **changes: Any) -> None:
        """Change stored fields (state, deadline_at, deadline_iso, time_limit, ...) of an existing case."""
        row = self._c.execute("SELECT data, closed_at FROM cases WHERE id = ?", (case_id,)).fetchone()
        if row is None:
            raise StoreError(f"no case {case_id!r}")
        data = json.loads(row[0])
        data.update({k: v for k, v in changes.items() if k not in _DERIVED})
        data["updated_at"] = at
        state = State(data["state"])
        closed_at = row[1]
        if state in TERMINAL_STATES and closed_at is None:
            closed_at = at
        elif state not in TERMINAL_STATES:
            closed_at = None
        self._c.execute(
            "UPDATE cases SET state = ?, is_open = ?, deadline_at = ?, closed_at = ?, updated_at = ?, data = ? "
            "WHERE id = ?",
            (state.value, int(state in OPEN_STATES), float(data["deadline_at"]), closed_at, at,
             json.dumps(data, ensure_ascii=False), case_id))

    def append_timeline(self, case_id: str, *, at: float, state: str, action: str, actor: str, note: str = "") -> None:
        self._c.execute(
            "INSERT INTO case_timeline (case_id, seq, at, state, action, actor, note) VALUES "
            "(?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM case_timeline WHERE case_id = ?), ?, ?, ?, ?, ?)",
            (case_id, case_id, at, State(state).value, action, actor, note))

    def add_evidence(self, case_id: str, path: str, *, kind: str, alarm_id: str = "", at: float) -> None:
        """Attach an evidence file (a path relative to the evidence directory); a repeated path is kept once."""
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise StoreError(f"evidence path must be relative to the evidence directory: {path!r}")
        exists = self._c.execute("SELECT 1 FROM case_evidence WHERE case_id = ? AND path = ?", (case_id, path)).fetchone()
        if exists:
            return
        self._c.execute(
            "INSERT INTO case_evidence (case_id, seq, path, kind, alarm_id, at) VALUES "
            "(?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM case_evidence WHERE case_id = ?), ?, ?, ?, ?)",
            (case_id, case_id, path, kind, alarm_id, at))

    def enqueue_event(self, case_id: str, event: dict[str, Any], at: float) -> None:
        """Queue an event for publication after commit (transactional outbox)."""
        self._c.execute("INSERT INTO outbox (case_id, event, created_at) VALUES (?, ?, ?)",
                        (case_id, json.dumps(event, ensure_ascii=False), at))

    def get_case(self, case_id: str, *, now: float | None = None) -> dict[str, Any] | None:
        cases = _read_cases(self._c, [case_id], now)
        return cases[0] if cases else None


class CaseStore:
    """Cases in SQLite. ``open("sqlite:///var/cases.sqlite")`` creates the file, its folder and the schema."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        self._closed = False

    @classmethod
    def open(cls, url: str) -> "CaseStore":
        """``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``sqlite:///:memory:``."""
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme in ("postgresql", "postgres"):
            raise StoreError(f"{scheme}:// case stores are not supported yet (PostgreSQL comes later); use sqlite:///path")
        if scheme != "sqlite" or not url.lower().startswith("sqlite:///"):
            raise StoreError(f"unsupported case store URL {url.split('@')[-1]!r}; use sqlite:///path/to/cases.sqlite")
        raw = url[len("sqlite:///"):]
        if not raw:
            raise StoreError("sqlite:/// URL has no path; use sqlite:///path/to/cases.sqlite")
        path = Path(raw)
        if raw != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(raw, isolation_level=None, check_same_thread=False, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open case store {raw}: {exc}") from None
        store = cls(path, conn)
        store._migrate()
        return store

    def _migrate(self) -> None:
        with self.transaction() as tx:
            c = tx._c
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise StoreError(f"case store {self.path} has schema version {current}, newer than this code "
                                 f"({SCHEMA_VERSION}); upgrade citywall")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def schema_version(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[CaseTx]:
        """One write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on any exception."""
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield CaseTx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get_case(self, case_id: str, *, now: float | None = None) -> dict[str, Any] | None:
        """The case dict, or None; ``overdue`` is judged at ``now`` (default: the wall clock)."""
        with self._lock:
            self._check_open()
            cases = _read_cases(self._conn, [case_id], now)
        return cases[0] if cases else None

    def get_case_by_no(self, case_no: str, *, now: float | None = None) -> dict[str, Any] | None:
        with self._lock:
            self._check_open()
            row = self._conn.execute("SELECT id FROM cases WHERE case_no = ?", (case_no,)).fetchone()
            return _read_cases(self._conn, [row[0]], now)[0] if row else None

    def list_cases(self, *, state: str | None = None, camera_id: str | None = None, limit: int = 100,
                   offset: int = 0, now: float | None = None) -> tuple[list[dict[str, Any]], int]:
        """A page of cases, newest reported first, and the total matching the filters."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        if state is not None:
            State(state)  # ValueError naming the bad state
        where, args = [], []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if camera_id is not None:
            where.append("camera_id = ?")
            args.append(camera_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            self._check_open()
            total = self._conn.execute(f"SELECT COUNT(*) FROM cases {clause}", args).fetchone()[0]
            ids = [r[0] for r in self._conn.execute(
                f"SELECT id FROM cases {clause} ORDER BY reported_at DESC, case_no DESC LIMIT ? OFFSET ?",
                [*args, limit, offset])]
            return _read_cases(self._conn, ids, now), total

    def pending_events(self, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        """Outbox entries not yet published, oldest first, as (seq, CaseEvent dict)."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT seq, event FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(seq, json.loads(event)) for seq, event in rows]

    def mark_published(self, seqs: list[int], at: float | None = None) -> None:
        if not seqs:
            return
        with self.transaction() as tx:
            tx._c.executemany("UPDATE outbox SET published_at = ? WHERE seq = ?",
                              [(at if at is not None else time.time(), s) for s in seqs])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the case store is closed")


def _read_cases(c: sqlite3.Connection, ids: list[str], now: float | None) -> list[dict[str, Any]]:
    if not ids:
        return []
    now = time.time() if now is None else now
    marks = ",".join("?" * len(ids))
    rows = {r[0]: r for r in c.execute(
        f"SELECT id, state, deadline_at, closed_at, data FROM cases WHERE id IN ({marks})", ids)}
    timeline: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for case_id, at, st, action, actor, note in c.execute(
            f"SELECT case_id, at, state, action, actor, note FROM case_timeline WHERE case_id IN ({marks}) "
            "ORDER BY case_id, seq", ids):
        timeline[case_id].append({"at": at, "state": st, "action": action, "actor": actor, "note": note})
    alarms: dict[str, list[str]] = {i: [] for i in ids}
    for case_id, alarm_id in c.execute(
            f"SELECT case_id, alarm_id FROM case_alarms WHERE phase = 'raised' AND case_id IN ({marks}) "
            "ORDER BY case_id, at, alarm_id", ids):
        alarms[case_id].append(alarm_id)
    evidence: dict[str, list[str]] = {i: [] for i in ids}
    for case_id, path in c.execute(
            f"SELECT case_id, path FROM case_evidence WHERE case_id IN ({marks}) ORDER BY case_id, seq", ids):
        evidence[case_id].append(path)
    out = []
    for case_id in ids:
        row = rows.get(case_id)
        if row is None:
            continue
        _, state, deadline_at, closed_at, data = row
        stored = json.loads(data)
        st = State(state)
        if st in (State.REJECTED, State.VOIDED):
            overdue = False
        elif st is State.CLOSED:
            overdue = closed_at is not None and closed_at > deadline_at
        else:
            overdue = now > deadline_at
        stored.update(state=st.value, state_label=STATE_LABELS[st], deadline_at=deadline_at,
                      alarm_ids=alarms[case_id], evidence=evidence[case_id], timeline=timeline[case_id], overdue=overdue)
        case = {k: stored.get(k) for k in CASE_KEYS}
        case.update({k: v for k, v in stored.items() if k not in case})
        out.append(case)
    return out
