"""CaseStore: cases in SQLite (WAL, the embedded default) or PostgreSQL (production) through the same code —
their timelines, evidence, the alarm → case index and the event outbox.

Every write happens inside :meth:`CaseStore.transaction`, which takes the store's write lock first (SQLite
``BEGIN IMMEDIATE``; PostgreSQL ``pg_advisory_xact_lock``), so a filing decision — is this alarm known, is there an
open case at this place, allocate a case number — is atomic even across processes; the ``(alarm_id, phase)``
primary key makes filing idempotent even if two filers race. Events are written to an outbox in the same
transaction as the case and published afterwards, so a case is always written before it is announced and an
announcement survives a crash between the two.

The schema is built by numbered migrations (``cases.migrations``) applied at open and recorded in
``schema_migrations``; the SQL is shared and the few dialect differences live in :class:`_Backend` subclasses.
Driver errors never leave this module as driver types: a unique-key clash is :class:`StoreConflict`, anything else
:class:`StoreError` (with credentials redacted from URLs).

All methods are synchronous and thread-safe (one connection behind a lock); async callers use
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cases import listing
from cases.audit import COLUMNS as AUDIT_COLUMNS
from cases.audit import AuditEntry, AuditQuery, ChainCheck, chain_hash, entry_from_row
from cases.listing import CaseQuery
from cases.migrations import MIGRATIONS, SCHEMA_VERSION, SEARCH_ROWID_BITS, SEARCH_STATE_CODES
from cases.workflow import OPEN_STATES, STATE_LABELS, TERMINAL_STATES, State
from config import redact_url

# Case dict keys in the order the API returns them (the wall renders these).
CASE_KEYS = (
    "id", "case_no", "source", "kind", "code", "category_name", "title", "state", "state_label", "urgency",
    "camera_id", "camera_name", "zone_id", "event", "address", "street", "community", "grid_code", "unit_id",
    "unit_name", "reported_at", "deadline_at", "deadline_iso", "time_limit", "alarm_ids", "evidence", "timeline",
    "overdue", "supervised", "supervise_count", "last_supervision",
)
_COLUMNS = ("id", "case_no", "state", "camera_id", "zone_id", "kind", "code", "reported_at", "deadline_at")
_DERIVED = {"state_label", "alarm_ids", "evidence", "timeline", "overdue", "version", "closed_at", "supervised",
            "supervise_count", "last_supervision"}
STATS_EVERY_S = 600.0
SEARCH_SCAN_ROWS = 4000
"""An exact search whose page is expected within a quarter of this many rows in list order is read that way (at most
this many rows, the rest of its matches never touched); otherwise its matches are fetched and sorted."""
_SEARCH_N_MASK = (1 << SEARCH_ROWID_BITS) - 1
"""How often the case list refreshes SQLite's planner statistics (``ANALYZE`` on a sample)."""
SUPERVISE_ACTION = "supervise"
"""The timeline action of a leader's 督办 (not a workflow transition: the state stays)."""



@dataclass(frozen=True)
class CasePage:
    """One page of :meth:`CaseStore.query_cases`."""

    cases: list[dict[str, Any]]
    total: int
    """How many cases match (all pages)."""
    counts: dict[str, int]
    """Matching cases per state, the state filter left out (the tabs of the list)."""
    next_cursor: str | None
    """Give it back as ``cursor`` for the next page; None on the last page."""


class StoreError(RuntimeError):
    """The case store cannot be opened or used as asked."""


class StoreConflict(StoreError):
    """A write clashed with a unique key (an alarm filed twice, a case number reused); the transaction rolled back."""


class VersionConflict(StoreError):
    """The case changed since the caller read it (optimistic concurrency); ``current`` is the case as it is now."""

    def __init__(self, case_id: str, expected: int, current: dict[str, Any]):
        self.case_id, self.expected, self.current = case_id, expected, current
        super().__init__(f"case {case_id} is at version {current.get('version')}, not {expected}: "
                         f"someone else changed it (now {current.get('state')})")


@dataclass(frozen=True)
class HeldAlarm:
    """A raised alarm the filing policy held for review (``held_alarms``, migration 7): kept until a reviewer
    decides it, however far the bus's history has moved on."""

    alarm: dict[str, Any]
    """The alarm as the case worker held it (``Alarm.to_dict()``; guidance's broadcasts in ``extra`` when guidance
    answered it first)."""
    cleared: dict[str, Any] | None
    """Its ``cleared`` message, once the scene cleared (the confirm files it: the case's video check)."""
    held_at: float
    decided_at: float | None

    @property
    def alarm_id(self) -> str:
        return str(self.alarm["alarm_id"])


def _held(row: Sequence[Any]) -> HeldAlarm:
    alarm, cleared, held_at, decided_at = row
    return HeldAlarm(json.loads(alarm), json.loads(cleared) if cleared else None, float(held_at),
                     None if decided_at is None else float(decided_at))


class _Backend:
    """One database connection and the dialect around it. SQL is written with ``?`` placeholders."""

    name = ""
    serial = ""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        raise NotImplementedError

    def execute_planned(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Execute planned for these very values (the case list: a LIMIT or a filter's selectivity changes the plan)."""
        return self.execute(sql, args)

    def begin(self) -> None:
        raise NotImplementedError

    def ensure(self) -> None:
        """Reconnect if the connection was lost (called outside transactions)."""

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    def close(self) -> None:
        raise NotImplementedError

    def translate(self, exc: BaseException) -> StoreError | None:
        """The driver's exception as a StoreError (None: not a driver error)."""
        raise NotImplementedError

    def has_table(self, name: str) -> bool:
        raise NotImplementedError

    def refresh_stats(self) -> None:
        """Keep the planner's table statistics current (PostgreSQL's autovacuum does; SQLite needs asking)."""

    def index_search(self, case_id: str, text: str, *, new: bool, state: str) -> None:
        """Keep the list's text-search index in step with a case's search text (migrations 13, 15)."""

    def grams_condition(self, text: str) -> tuple[str, list[Any]]:
        """SQL for "the case's search text holds ``text``" led by the search index, and its arguments
        (``cases.listing.GramCondition``)."""
        raise NotImplementedError

    def search_counts(self, text: str) -> dict[str, int] | None:
        """The cases whose search text holds ``text``, counted per state from the search index alone; None when the
        index cannot say it exactly (the caller counts the matching rows)."""
        return None

    def search_ids_condition(self, text: str) -> tuple[str, list[Any]]:
        """SQL for "the case is one the index finds for ``text``" where :meth:`search_counts` answered (exact)."""
        raise NotImplementedError


class _Sqlite(_Backend):
    name = "sqlite"
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, raw: str):
        if raw != ":memory:":
            Path(raw).parent.mkdir(parents=True, exist_ok=True)
        self.where = raw
        self.conn = sqlite3.connect(raw, isolation_level=None, check_same_thread=False, timeout=10.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=10000")
        # For the back-fills of the search index by migrations 13 and 15 (the store writes the grams itself since).
        self.conn.create_function("case_search_grams", 1, _grams_text, deterministic=True)
        self.conn.create_function("case_search_pairs", 1, _pairs_text, deterministic=True)
        self.conn.create_function("case_search_chars", 1, _chars_text, deterministic=True)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, args)

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write (no upgrade deadlocks)

    def close(self) -> None:
        self.conn.close()

    def translate(self, exc: BaseException) -> StoreError | None:
        if isinstance(exc, sqlite3.IntegrityError):
            return StoreConflict(f"case store {self.where}: {exc}")
        if isinstance(exc, sqlite3.Error):
            return StoreError(f"case store {self.where}: {type(exc).__name__}: {exc}")
        return None

    def has_table(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (name,)).fetchone() is not None

    _stats_at = -1e9

    def refresh_stats(self) -> None:
        # Without sqlite_stat1 the planner takes a street index plus a row fetch per case where the narrow covering
        # index is 4x faster at 100,000 cases (bench/bench_case_list.py). A sampled ANALYZE costs milliseconds.
        if time.monotonic() - self._stats_at < STATS_EVERY_S:
            return
        self._stats_at = time.monotonic()
        self.conn.execute("PRAGMA analysis_limit = 20000")
        self.conn.execute("ANALYZE cases")

    def index_search(self, case_id: str, text: str, *, new: bool, state: str) -> None:
        # migration 15: rowid = the state's code << 32 | the case's stable number (a trigger moves it on a state
        # change; the caller writes the case row, and so its state, first)
        high = SEARCH_STATE_CODES.get(state, 0) << SEARCH_ROWID_BITS
        if new:
            (n,) = self.execute("INSERT INTO case_search_keys (case_id, search) VALUES (?, ?) RETURNING n",
                                (case_id, text)).fetchone()
            self.execute("INSERT INTO case_search (rowid, pairs, chars) VALUES (?, ?, ?)",
                         (high | n, _pairs_text(text), _chars_text(text)))
        else:
            (n,) = self.execute("UPDATE case_search_keys SET search = ? WHERE case_id = ? RETURNING n",
                                (text, case_id)).fetchone()
            self.execute("UPDATE case_search SET pairs = ?, chars = ? WHERE rowid = ?",
                         (_pairs_text(text), _chars_text(text), high | n))

    def grams_condition(self, text: str) -> tuple[str, list[Any]]:
        # The LIKE (where the index is not exact) reads the keys' small copy of the text: the case row's own sits
        # behind its JSON, often on overflow pages.
        match, exact = _fts_query(text)
        found = (f"id IN (SELECT k.case_id FROM case_search_keys k WHERE k.n IN "
                 f"(SELECT rowid & {_SEARCH_N_MASK} FROM case_search WHERE case_search MATCH ?)")
        if exact:
            return found + ")", [match]
        return found + " AND k.search LIKE ? ESCAPE '\\')", [match, listing.like(text)]

    def search_counts(self, text: str) -> dict[str, int] | None:
        if not listing.exact_search(text):
            return None
        # one range of the index's rowids per state (its code << 32): each count reads only that part of the
        # query's posting lists, the whole a single pass over them
        match, _ = _fts_query(text)
        parts = " UNION ALL ".join(
            f"SELECT {code}, COUNT(*) FROM case_search WHERE case_search MATCH ?1 "
            f"AND rowid >= {code << SEARCH_ROWID_BITS} AND rowid < {(code + 1) << SEARCH_ROWID_BITS}"
            for code in sorted(SEARCH_STATE_CODES.values()))
        names = {code: state for state, code in SEARCH_STATE_CODES.items()}
        return {names[code]: int(n) for code, n in self.execute(parts, (match,)).fetchall() if n}

    def search_ids_condition(self, text: str) -> tuple[str, list[Any]]:
        return self.grams_condition(text)


# Every writer takes this advisory lock first, so PostgreSQL writers serialise like SQLite's BEGIN IMMEDIATE: the
# filing decision (known alarm? open case here? next number) cannot interleave with another process's.
_PG_WRITE_LOCK = 0x63697479_77616C6C & 0x7FFFFFFFFFFFFFFF  # "citywall"


class _Postgres(_Backend):
    name = "postgresql"
    serial = "BIGSERIAL PRIMARY KEY"

    def __init__(self, url: str):
        import psycopg  # only needed for PostgreSQL stores

        self._psycopg = psycopg
        self.url = url
        self.where = redact_url(url)
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self._sql: dict[str, str] = {}

    def _q(self, sql: str) -> str:
        q = self._sql.get(sql)
        if q is None:  # our SQL has no literal ? or %: placeholders are the only ones
            q = self._sql[sql] = sql.replace("?", "%s")
        return q

    def ensure(self) -> None:
        if self.conn.broken:  # the server restarted or dropped us: reconnect (outside any transaction)
            self.conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._q(sql), tuple(args))  # psycopg prepares statements used often

    def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self._q(sql), rows)

    def execute_planned(self, sql: str, args: Sequence[Any] = ()) -> Any:
        # psycopg prepares a statement run often; PostgreSQL then may keep a generic plan that knows neither the
        # LIMIT nor how selective the filter is (a full sort of 100,000 cases for a page of 50).
        return self.conn.execute(self._q(sql), tuple(args), prepare=False)

    def begin(self) -> None:
        # One round trip: without parameters psycopg sends both statements as one simple query.
        self.conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({_PG_WRITE_LOCK})")

    def rollback(self) -> None:
        if not self.conn.broken and not self.conn.closed:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def translate(self, exc: BaseException) -> StoreError | None:
        errors = self._psycopg.errors
        if isinstance(exc, errors.UniqueViolation):
            return StoreConflict(f"case store {self.where}: {exc}")
        if isinstance(exc, self._psycopg.Error):
            return StoreError(f"case store {self.where}: {type(exc).__name__}: {redact_url(str(exc))}")
        return None

    def has_table(self, name: str) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _matches(text: str) -> tuple[str, list[Any]]:
        """The GIN index of migration 15 on the narrow copy the server keeps (index_search has nothing to do), and
        the LIKE where the index is not exact (PostgreSQL's minds case), on the copy's text: a few small pages."""
        found = "case_search_terms(search) @> ?::text[]"
        if listing.exact_term(text):
            return found, [listing.query_terms(text)]
        return f"{found} AND search LIKE ? ESCAPE '\\'", [listing.query_terms(text), listing.like(text)]

    def grams_condition(self, text: str) -> tuple[str, list[Any]]:
        sql, args = self._matches(text)
        return f"id IN (SELECT case_id FROM case_search_rows WHERE {sql})", args

    def search_counts(self, text: str) -> dict[str, int] | None:
        if not listing.query_terms(text):
            return None
        sql, args = self._matches(text)
        return {str(st): int(n) for st, n in self.execute_planned(
            f"SELECT state, COUNT(*) FROM case_search_rows WHERE {sql} GROUP BY state", args).fetchall()}

    def search_ids_condition(self, text: str) -> tuple[str, list[Any]]:
        return self.grams_condition(text)


class CaseTx:
    """The operations available inside one write transaction (see :meth:`CaseStore.transaction`)."""

    def __init__(self, db: _Backend):
        self._db = db
        self._c = db  # ``execute``/``executemany`` like a DB-API connection, with ? placeholders

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """One statement on another room's tables in this transaction (``?`` placeholders; the recording index)."""
        return self._c.execute(sql, args)

    def case_for_alarm(self, alarm_id: str, phase: str = "raised") -> str | None:
        row = self._c.execute("SELECT case_id FROM case_alarms WHERE alarm_id = ? AND phase = ?",
                              (alarm_id, phase)).fetchone()
        return row[0] if row else None

    def link_alarm(self, alarm_id: str, phase: str, case_id: str, at: float) -> None:
        """Record that ``alarm_id``/``phase`` was handled for ``case_id``; the second time the transaction fails
        with :class:`StoreConflict`."""
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
        (last,) = self._c.execute("INSERT INTO case_numbers (day, last) VALUES (?, 1) "
                                  "ON CONFLICT(day) DO UPDATE SET last = case_numbers.last + 1 RETURNING last",
                                  (day,)).fetchone()
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
            " closed_at, updated_at, data, unit_id, street, community, grid_code, deadline_from, search) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
            (data["id"], data["case_no"], state.value, int(state in OPEN_STATES), data["camera_id"], data["zone_id"],
             data["kind"], data["code"], float(data["reported_at"]), float(data["deadline_at"]),
             float(data.get("updated_at", data["reported_at"])), json.dumps(data, ensure_ascii=False),
             *_list_columns(data)))
        self._db.index_search(data["id"], listing.search_text(data), new=True, state=state.value)

    def update_case(self, case_id: str, at: float, *, expected_version: int | None = None, **changes: Any) -> int:
        """Change stored fields (state, deadline_at, deadline_iso, time_limit, ...) of an existing case; returns
        its new version. With ``expected_version``, :class:`VersionConflict` when the case is at another one."""
        row = self._c.execute("SELECT data, closed_at, version FROM cases WHERE id = ?", (case_id,)).fetchone()
        if row is None:
            raise StoreError(f"no case {case_id!r}")
        if expected_version is not None and row[2] != expected_version:
            current = self.get_case(case_id, now=at)
            assert current is not None
            raise VersionConflict(case_id, expected_version, current)
        data = json.loads(row[0])
        searched = listing.search_text(data)
        data.update({k: v for k, v in changes.items() if k not in _DERIVED})
        data["updated_at"] = at
        state = State(data["state"])
        closed_at = row[1]
        if state in TERMINAL_STATES and closed_at is None:
            closed_at = at
        elif state not in TERMINAL_STATES:
            closed_at = None
        self._c.execute(
            "UPDATE cases SET state = ?, is_open = ?, deadline_at = ?, closed_at = ?, updated_at = ?, data = ?, "
            "unit_id = ?, street = ?, community = ?, grid_code = ?, deadline_from = ?, search = ?, "
            "version = version + 1 WHERE id = ?",
            (state.value, int(state in OPEN_STATES), float(data["deadline_at"]), closed_at, at,
             json.dumps(data, ensure_ascii=False), *_list_columns(data), case_id))
        if listing.search_text(data) != searched:
            self._db.index_search(case_id, listing.search_text(data), new=False, state=state.value)
        return int(row[2]) + 1

    def append_timeline(self, case_id: str, *, at: float, state: str, action: str, actor: str, note: str = "") -> None:
        self.append_timeline_entries(case_id, [(at, state, action, actor, note)])

    def append_timeline_entries(self, case_id: str, entries: list[tuple[float, str, str, str, str]]) -> None:
        """Append ``(at, state, action, actor, note)`` entries in order, in one statement (one round trip)."""
        if not entries:
            return
        rows = ", ".join(f"(?, (SELECT COALESCE(MAX(seq), 0) + {k} FROM case_timeline WHERE case_id = ?), "
                         f"?, ?, ?, ?, ?)" for k in range(1, len(entries) + 1))
        args: list[Any] = []
        for at, state, action, actor, note in entries:
            args += [case_id, case_id, at, State(state).value, action, actor, note]
        self._c.execute(f"INSERT INTO case_timeline (case_id, seq, at, state, action, actor, note) VALUES {rows}", args)

    def add_evidence(self, case_id: str, path: str, *, kind: str, alarm_id: str = "", at: float) -> None:
        """Attach an evidence file (a path relative to the evidence directory); a repeated path is kept once."""
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise StoreError(f"evidence path must be relative to the evidence directory: {path!r}")
        self._c.execute(  # one statement: the repeat check and the insert
            "INSERT INTO case_evidence (case_id, seq, path, kind, alarm_id, at) "
            "SELECT ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM case_evidence WHERE case_id = ?), ?, ?, ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM case_evidence WHERE case_id = ? AND path = ?)",
            (case_id, case_id, path, kind, alarm_id, at, case_id, path))

    def enqueue_event(self, case_id: str, event: dict[str, Any], at: float) -> None:
        """Queue an event for publication after commit (transactional outbox)."""
        self._c.execute("INSERT INTO outbox (case_id, event, created_at) VALUES (?, ?, ?)",
                        (case_id, json.dumps(event, ensure_ascii=False), at))

    def case_state(self, case_id: str) -> str | None:
        """Just the state of a case (one light query, where the whole case with its timeline is not needed)."""
        row = self._c.execute("SELECT state FROM cases WHERE id = ?", (case_id,)).fetchone()
        return row[0] if row else None

    def supervise(self, case_id: str, *, at: float, state: str, actor: str, note: str = "") -> None:
        """A leader's 督办: count it on the case and put who/when/what on the timeline (the state does not change;
        the caller bumps the version with :meth:`update_case`)."""
        self._c.execute("UPDATE cases SET supervise_count = supervise_count + 1 WHERE id = ?", (case_id,))
        self.append_timeline(case_id, at=at, state=state, action=SUPERVISE_ACTION, actor=actor, note=note)

    def decide_held_alarm(self, alarm_id: str, at: float) -> None:
        """A reviewer decided ``alarm_id``: if it was held, it leaves the queue of held alarms (kept, decided)."""
        self._c.execute("UPDATE held_alarms SET decided_at = ? WHERE alarm_id = ? AND decided_at IS NULL",
                        (at, alarm_id))

    def get_case(self, case_id: str, *, now: float | None = None) -> dict[str, Any] | None:
        cases = _read_cases(self._c, [case_id], now)
        return cases[0] if cases else None


class CaseStore:
    """Cases in SQLite or PostgreSQL. ``open(url)`` connects, creates what is missing and applies migrations."""

    def __init__(self, path: Path | None, db: _Backend):
        self.path = path
        self.backend = db.name
        self._db = db
        self._lock = threading.RLock()
        self._closed = False

    @property
    def _conn(self) -> Any:
        """The driver connection (tests and diagnostics only)."""
        return self._db.conn  # type: ignore[attr-defined]

    @classmethod
    def open(cls, url: str) -> CaseStore:
        """``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``sqlite:///:memory:`` or
        ``postgresql://user[:password]@host:port/database`` (any libpq URL)."""
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        db: _Backend
        if scheme in ("postgresql", "postgres"):
            try:
                db = _Postgres(url)
            except ImportError:
                raise StoreError("PostgreSQL case stores need psycopg: pip install 'psycopg[binary]'") from None
            except Exception as exc:
                raise StoreError(f"cannot open case store {redact_url(url)}: {redact_url(str(exc)).strip()}") from None
            path = None
        elif scheme == "sqlite" and url.lower().startswith("sqlite:///"):
            raw = url[len("sqlite:///"):]
            if not raw:
                raise StoreError("sqlite:/// URL has no path; use sqlite:///path/to/cases.sqlite")
            try:
                db = _Sqlite(raw)
            except (sqlite3.Error, OSError) as exc:
                raise StoreError(f"cannot open case store {raw}: {exc}") from None
            path = Path(raw)
        else:
            raise StoreError(f"unsupported case store URL {redact_url(url)!r}; use sqlite:///path/to/cases.sqlite or "
                             "postgresql://user@host:port/database")
        store = cls(path, db)
        try:
            store._migrate()
        except BaseException:
            db.close()
            raise
        return store

    def _migrate(self) -> None:
        with self.transaction() as tx:
            c = tx._c
            c.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                      "applied_at DOUBLE PRECISION NOT NULL)")
            current = c.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0
            if current == 0 and self._db.has_table("schema_version"):
                # Stores made before schema_migrations existed recorded only a number (their schema is v1).
                legacy = c.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
                for m in MIGRATIONS[:legacy]:
                    c.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                              (m.version, m.name, time.time()))
                current = legacy
            if current > SCHEMA_VERSION:
                raise StoreError(f"case store {self._where()} has schema version {current}, newer than this code "
                                 f"({SCHEMA_VERSION}); upgrade citywall")
            applied = {row[0] for row in c.execute("SELECT version FROM schema_migrations").fetchall()}
            for m in MIGRATIONS:
                if m.version in applied:
                    continue
                for statement in m.statements(self._db.serial, self._db.name):
                    c.execute(statement)
                c.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                          (m.version, m.name, time.time()))

    def _where(self) -> str:
        return str(self.path) if self.path is not None else self._db.where  # type: ignore[attr-defined]

    def schema_version(self) -> int:
        with self._guard():
            return self._db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]

    @contextlib.contextmanager
    def _guard(self) -> Iterator[_Backend]:
        """The connection under the lock, driver errors translated."""
        with self._lock:
            self._check_open()
            try:
                self._db.ensure()
                yield self._db
            except StoreError:
                raise
            except Exception as exc:
                translated = self._db.translate(exc)
                if translated is None:
                    raise
                raise translated from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[CaseTx]:
        """One write transaction, holding the store's write lock: committed on success, rolled back on any
        exception (driver errors come out as :class:`StoreError` / :class:`StoreConflict`)."""
        with self._guard() as db:
            db.begin()
            try:
                yield CaseTx(db)
            except BaseException:
                with contextlib.suppress(Exception):
                    db.rollback()
                raise
            db.commit()

    def get_case(self, case_id: str, *, now: float | None = None) -> dict[str, Any] | None:
        """The case dict, or None; ``overdue`` is judged at ``now`` (default: the wall clock)."""
        with self._guard() as db:
            cases = _read_cases(db, [case_id], now)
        return cases[0] if cases else None

    def get_case_by_no(self, case_no: str, *, now: float | None = None) -> dict[str, Any] | None:
        with self._guard() as db:
            row = db.execute("SELECT id FROM cases WHERE case_no = ?", (case_no,)).fetchone()
            return _read_cases(db, [row[0]], now)[0] if row else None

    def list_cases(self, *, state: str | None = None, camera_id: str | None = None, limit: int = 100,
                   offset: int = 0, now: float | None = None, reported_from: float | None = None,
                   reported_to: float | None = None, category: str | None = None,
                   unit_id: str | None = None, open_only: bool = False,
                   q: str | None = None) -> tuple[list[dict[str, Any]], int]:
        """A page of cases, newest reported first, and the total matching the filters (``category`` is a
        ``kind/code`` ref such as ``事件/0501``)."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        if state is not None:
            State(state)  # ValueError naming the bad state
        where, args = [], []
        for sql, value in (("state = ?", state), ("camera_id = ?", camera_id), ("reported_at >= ?", reported_from),
                           ("reported_at < ?", reported_to)):
            if value is not None:
                where.append(sql)
                args.append(value)
        if category is not None:
            kind, _, code = category.partition("/")
            where.append("kind = ? AND code = ?")
            args.extend((kind, code))
        if open_only:
            where.append("is_open = 1")
        if q:  # search: case number, or any stored text (title, address, unit, category); LIKE wildcards escaped
            where.append("(case_no LIKE ? ESCAPE '\\' OR data LIKE ? ESCAPE '\\')")
            args.extend((_like(q), _like(json.dumps(q, ensure_ascii=False)[1:-1])))  # data holds JSON text
        if unit_id is not None:
            where.append("unit_id = ?")
            args.append(unit_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._guard() as db:
            total = db.execute(f"SELECT COUNT(*) FROM cases {clause}", args).fetchone()[0]
            ids = [r[0] for r in db.execute(
                f"SELECT id FROM cases {clause} ORDER BY reported_at DESC, case_no DESC LIMIT ? OFFSET ?",
                [*args, limit, offset]).fetchall()]
            return _read_cases(db, ids, now), total

    def query_cases(self, query: CaseQuery, *, now: float) -> CasePage:
        """The desk's list: one page of ``query`` (keyset-paged), how many match in each state, the next cursor."""
        # Only fixed SQL and ? marks are joined here (cases.listing builds conditions from constants).
        grams = self._db.grams_condition
        order_by, after, after_args = listing.order(query)
        count_conditions, count_args = listing.where(query.without_state(), now, grams)
        with self._guard() as db:
            db.refresh_stats()
            exact = (db.search_counts(query.q) if query.q and listing.only_search(query, now) else None)
            if exact is not None:
                counts, ids = exact, self._exact_search_page(db, query, exact, now)
            elif query.q:
                counts, ids = self._search_page(db, query, count_conditions, count_args, now)
            else:
                conditions, args = listing.where(query, now, grams)
                page_conditions = [*conditions, *([after] if after else [])]
                page_clause = f"WHERE {' AND '.join(page_conditions)}" if page_conditions else ""
                if count_conditions:
                    clause = f"WHERE {' AND '.join(count_conditions)}"
                    counts = {str(st): int(n) for st, n in db.execute_planned(
                        f"SELECT state, COUNT(*) FROM cases {clause} GROUP BY state", count_args).fetchall()}
                else:  # no filter: the counts the triggers of migration 12 keep, not a count of every case
                    counts = {str(st): int(n) for st, n in db.execute(
                        "SELECT state, n FROM case_state_counts WHERE n > 0").fetchall()}
                ids = [r[0] for r in db.execute_planned(
                    f"SELECT id FROM cases {page_clause} ORDER BY {order_by} LIMIT ? OFFSET ?",
                    [*args, *after_args, query.limit, query.offset]).fetchall()]
            cases = _read_cases(db, ids, now)
        total = sum(n for st, n in counts.items() if not query.states or st in query.states)
        cursor = listing.next_cursor(query, cases[-1] if cases else None, len(ids) == query.limit)
        return CasePage(cases, total, counts, cursor)

    @staticmethod
    def _exact_search_page(db: _Backend, query: CaseQuery, counts: dict[str, int], now: float) -> list[str]:
        """The page of a search the index answers exactly (``counts``: its matches per state, from the index). When
        many cases match, the first rows in list order hold the page: read them in the sort's index order, at most
        SEARCH_SCAN_ROWS, and keep those whose text matches (LIKE: the same answer as the index's). Otherwise, or
        when those rows did not fill the page, the matches are fetched through the index and sorted."""
        assert query.q is not None
        wanted = [st for st in counts if not query.states or st in query.states]
        matches = sum(counts[st] for st in wanted)
        if not matches:
            return []
        total = sum(int(n) for _, n in db.execute("SELECT state, n FROM case_state_counts WHERE n > 0").fetchall())
        state_conditions, state_args = listing.where(CaseQuery(states=query.states), now)
        # "state || ''": the state filter never takes the index that serves the order (cases_list_reported/_deadline)
        state_conditions = [c.replace("state IN", "state || '' IN", 1) for c in state_conditions]
        if (query.offset + query.limit) * total / matches <= SEARCH_SCAN_ROWS / 4:
            by, after, after_args = listing.order(query, in_order=True)
            conditions = [*state_conditions, *([after] if after else [])]
            clause = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            ids = [str(r[0]) for r in db.execute_planned(
                f"SELECT id FROM (SELECT id, search FROM cases {clause} ORDER BY {by} LIMIT ?) AS s "
                f"WHERE search LIKE ? ESCAPE '\\' LIMIT ? OFFSET ?",
                [*state_args, *after_args, SEARCH_SCAN_ROWS, listing.like(query.q), query.limit,
                 query.offset]).fetchall()]
            if len(ids) == query.limit:
                return ids
        by, after, after_args = listing.order(query)
        found, found_args = db.search_ids_condition(query.q)
        conditions = [found, *state_conditions, *([after] if after else [])]
        return [str(r[0]) for r in db.execute_planned(
            f"SELECT id FROM cases WHERE {' AND '.join(conditions)} ORDER BY {by} LIMIT ? OFFSET ?",
            [*found_args, *state_args, *after_args, query.limit, query.offset]).fetchall()]

    @staticmethod
    def _search_page(db: _Backend, query: CaseQuery, conditions: list[str], args: list[Any],
                     now: float) -> tuple[dict[str, int], list[str]]:
        """A text search's counts and page in one statement: the matches are found once (through the gram index)
        and both counted per state and sorted, where two statements would each fetch every matching row."""
        order_by, after, after_args = listing.order(query)
        column, direction = listing.SORTS[query.sort]
        state_conditions, state_args = listing.where(CaseQuery(states=query.states), now)
        page_conditions = [*state_conditions, *([after] if after else [])]
        page_clause = f"WHERE {' AND '.join(page_conditions)}" if page_conditions else ""
        clause = f"WHERE {' AND '.join(conditions)}"
        rows = db.execute_planned(
            f"WITH m AS MATERIALIZED (SELECT id, state, reported_at, deadline_at, case_no FROM cases {clause}) "
            f"SELECT 0, state, COUNT(*), '' FROM m GROUP BY state UNION ALL "
            f"SELECT 1, id, {column}, case_no FROM (SELECT id, {column}, case_no FROM m {page_clause} "
            f"ORDER BY {order_by} LIMIT ? OFFSET ?) AS page",
            [*args, *state_args, *after_args, query.limit, query.offset]).fetchall()
        counts = {str(key): int(n) for part, key, n, _ in rows if part == 0}
        # a UNION ALL promises no order: the page is put in its order again here
        page = sorted(((value, case_no, key) for part, key, value, case_no in rows if part == 1),
                      reverse=direction == "DESC")
        return counts, [str(key) for _, _, key in page]

    def evidence_case_units(self, path: str) -> set[str]:
        """The units of the cases that hold evidence file ``path`` (a unit user may read only their own)."""
        with self._guard() as db:
            rows = db.execute("SELECT DISTINCT c.unit_id FROM case_evidence e JOIN cases c ON c.id = e.case_id "
                              "WHERE e.path = ?", (path,)).fetchall()
        return {str(r[0]) for r in rows}

    def counts(self, now: float) -> dict[str, Any]:
        """``{"by_state": {state: n}, "overdue": n}`` (open past their deadline at ``now``), for metrics."""
        with self._guard() as db:
            by_state = {str(state): int(n) for state, n in  # kept by the triggers of migration 12
                        db.execute("SELECT state, n FROM case_state_counts WHERE n > 0").fetchall()}
            overdue = db.execute("SELECT COUNT(*) FROM cases WHERE is_open = 1 AND deadline_at < ?",
                                 (now,)).fetchone()[0]
        return {"by_state": by_state, "overdue": int(overdue)}

    # -- deadline watch (cases.deadlines): the open cases' deadlines and the alarms already raised ------------
    def open_case_deadlines(self) -> list[dict[str, Any]]:
        """Every open, not suspended case as a light dict (no timeline): id, case_no, state, reported_at,
        deadline_at and the stored fields the wall alarm shows (title, unit_name, camera, deadline_iso)."""
        with self._guard() as db:
            rows = db.execute("SELECT id, case_no, state, reported_at, deadline_at, data FROM cases "
                              "WHERE is_open = 1 AND state <> ?", (State.SUSPENDED.value,)).fetchall()
        out = []
        for case_id, case_no, st, reported_at, deadline_at, data in rows:
            stored = json.loads(data)
            out.append({**{k: stored.get(k) for k in ("title", "unit_id", "unit_name", "camera_id", "camera_name",
                                                      "zone_id", "address", "deadline_iso", "category_name",
                                                      "deadline_from")},
                        "id": case_id, "case_no": case_no, "state": st, "reported_at": reported_at,
                        "deadline_at": deadline_at})
        return out

    def deadline_alarms_raised(self) -> set[tuple[str, str, float]]:
        """``(case_id, stage, deadline_at)`` of every deadline alarm raised for a case that is still open."""
        with self._guard() as db:
            rows = db.execute("SELECT a.case_id, a.stage, a.deadline_at FROM case_deadline_alarms a "
                              "JOIN cases c ON c.id = a.case_id WHERE c.is_open = 1").fetchall()
        return {(case_id, stage, float(deadline_at)) for case_id, stage, deadline_at in rows}

    def record_deadline_alarm(self, case_id: str, stage: str, deadline_at: float, at: float) -> None:
        """Remember that ``stage`` was raised for this case and deadline (a repeat is a no-op)."""
        with self.transaction() as tx:
            tx._c.execute("INSERT INTO case_deadline_alarms (case_id, stage, deadline_at, at) VALUES (?, ?, ?, ?) "
                          "ON CONFLICT (case_id, stage, deadline_at) DO NOTHING", (case_id, stage, deadline_at, at))

    def pending_events(self, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        """Outbox entries not yet published, oldest first, as (seq, CaseEvent dict)."""
        with self._guard() as db:
            rows = db.execute(
                "SELECT seq, event FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(seq, json.loads(event)) for seq, event in rows]

    def mark_published(self, seqs: list[int], at: float | None = None) -> None:
        if not seqs:
            return
        # One autocommit statement per 500, without the write lock: it adds no outbox rows, so the commit order
        # the lock guarantees is not at stake, and PostgreSQL is spared three round trips per flush.
        when = at if at is not None else time.time()
        with self._guard() as db:
            for start in range(0, len(seqs), 500):
                chunk = seqs[start:start + 500]
                db.execute(f"UPDATE outbox SET published_at = ? WHERE seq IN ({','.join('?' * len(chunk))})",
                           [when, *chunk])

    # -- held alarms: raised alarms the filing policy keeps for a reviewer (cases.policy), durable ------------
    def hold_alarm(self, alarm: dict[str, Any], *, held_at: float) -> bool:
        """Keep a held raised alarm (``Alarm.to_dict()``) until a reviewer decides it; False when it was held
        already (the worker may see an alarm twice: the first record stays)."""
        with self.transaction() as tx:
            row = tx._c.execute(
                "INSERT INTO held_alarms (alarm_id, camera_id, event, at, alarm_json, held_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (alarm_id) DO NOTHING RETURNING alarm_id",
                (alarm["alarm_id"], alarm["camera_id"], alarm["event"], float(alarm["at"]),
                 json.dumps(alarm, ensure_ascii=False), held_at)).fetchone()
        return row is not None

    def clear_held_alarm(self, cleared: dict[str, Any]) -> bool:
        """Record the ``cleared`` message of a held alarm (the first one stays); False when the alarm is not held."""
        with self.transaction() as tx:
            row = tx._c.execute(
                "UPDATE held_alarms SET cleared_json = ? WHERE alarm_id = ? AND cleared_json IS NULL "
                "RETURNING alarm_id", (json.dumps(cleared, ensure_ascii=False), cleared["alarm_id"])).fetchone()
        return row is not None

    def held_alarms(self) -> list[HeldAlarm]:
        """Every held alarm no reviewer has decided yet, oldest (alarm time) first, whatever its age."""
        with self._guard() as db:
            rows = db.execute("SELECT alarm_json, cleared_json, held_at, decided_at FROM held_alarms "
                              "WHERE decided_at IS NULL ORDER BY at, alarm_id").fetchall()
        return [_held(r) for r in rows]

    def held_alarm(self, alarm_id: str) -> HeldAlarm | None:
        """The held alarm ``alarm_id``, decided or not; None if the policy never held it."""
        with self._guard() as db:
            row = db.execute("SELECT alarm_json, cleared_json, held_at, decided_at FROM held_alarms "
                             "WHERE alarm_id = ?", (alarm_id,)).fetchone()
        return _held(row) if row else None

    # -- review queue: claims with a lease (two reviewers never hold the same item) and decisions ------------
    def review_claim(self, reviewer: str, candidates: list[str], *, now: float, lease_s: float) -> str | None:
        """Claim the first of ``candidates`` that is undecided and not held by someone else (an expired lease is
        free again) for ``lease_s``; ``reviewer``'s other claims are released. None when nothing is free."""
        with self.transaction() as tx:
            c = tx._c
            c.execute("DELETE FROM review_claims WHERE until_at <= ?", (now,))
            for item in candidates:
                if c.execute("SELECT 1 FROM review_decisions WHERE item_id = ?", (item,)).fetchone():
                    continue
                holder = c.execute("SELECT reviewer FROM review_claims WHERE item_id = ?", (item,)).fetchone()
                if holder is not None and holder[0] != reviewer:
                    continue
                c.execute("DELETE FROM review_claims WHERE reviewer = ? AND item_id <> ?", (reviewer, item))
                c.execute("INSERT INTO review_claims (item_id, reviewer, until_at) VALUES (?, ?, ?) "
                          "ON CONFLICT (item_id) DO UPDATE SET reviewer = excluded.reviewer, "
                          "until_at = excluded.until_at",
                          (item, reviewer, now + lease_s))
                return item
            return None

    def review_release(self, reviewer: str) -> None:
        with self.transaction() as tx:
            tx._c.execute("DELETE FROM review_claims WHERE reviewer = ?", (reviewer,))

    def review_holder(self, item_id: str, *, now: float) -> str | None:
        """Who holds a live claim on ``item_id``."""
        with self._guard() as db:
            row = db.execute("SELECT reviewer FROM review_claims WHERE item_id = ? AND until_at > ?",
                             (item_id, now)).fetchone()
        return row[0] if row else None

    def review_states(self, item_ids: list[str], *, now: float) -> dict[str, dict[str, Any]]:
        """Claims, decisions and the case filed (``{"case": {"id", "case_no"}}``, automatically or by a confirm)
        of ``item_ids`` (only those that have any)."""
        out: dict[str, dict[str, Any]] = {}
        if not item_ids:
            return out
        with self._guard() as db:
            for start in range(0, len(item_ids), 500):
                chunk = item_ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for item, reviewer, until in db.execute(
                        f"SELECT item_id, reviewer, until_at FROM review_claims "
                        f"WHERE until_at > ? AND item_id IN ({marks})",
                        [now, *chunk]).fetchall():
                    out.setdefault(item, {})["claim"] = {"reviewer": reviewer, "until_at": until}
                for item, decision, reviewer, reason, case_id, at in db.execute(
                        f"SELECT item_id, decision, reviewer, reason, case_id, at FROM review_decisions "
                        f"WHERE item_id IN ({marks})", chunk).fetchall():
                    out.setdefault(item, {})["decision"] = {"decision": decision, "reviewer": reviewer,
                                                            "reason": reason, "case_id": case_id, "at": at}
                for item, case_id, case_no in db.execute(
                        f"SELECT a.alarm_id, c.id, c.case_no FROM case_alarms a JOIN cases c ON c.id = a.case_id "
                        f"WHERE a.phase = 'raised' AND a.alarm_id IN ({marks})", chunk).fetchall():
                    out.setdefault(item, {})["case"] = {"id": case_id, "case_no": case_no}
        return out

    # -- the audit log (append-only: no method changes or removes an entry; triggers refuse it in the DB) ----
    def append_audit(self, entry: AuditEntry) -> int:
        """Record one control action; returns its sequence number."""
        with self.transaction() as tx:
            cols = ", ".join(AUDIT_COLUMNS[1:])
            marks = ", ".join("?" * (len(AUDIT_COLUMNS) - 1))
            # Writers are serialised (BEGIN IMMEDIATE / the advisory lock), so the last hash is the chain's end.
            last = tx._c.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            prev = last[0] if last else ""
            values = entry.row()
            row = tx._c.execute(f"INSERT INTO audit_log ({cols}, prev_hash, hash) VALUES ({marks}, ?, ?) RETURNING seq",
                                (*values, prev, chain_hash(prev, values))).fetchone()
            return int(row[0])  # this row's own number (MAX(seq) could be another writer's on PostgreSQL)

    def verify_audit(self, batch: int = 1000) -> ChainCheck:
        """Walk the audit log's hash chain in order: a row changed, inserted or removed (e.g. after ``DROP TRIGGER``)
        is found by its hash or by the next row's ``prev_hash``."""
        cols = ", ".join(AUDIT_COLUMNS)
        checked = unchained = 0
        prev_hash: str | None = None
        after = -1
        with self._guard() as db:
            while True:
                rows = db.execute(f"SELECT {cols}, prev_hash, hash FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                                  (after, batch)).fetchall()
                if not rows:
                    return ChainCheck(ok=True, rows=checked, unchained=unchained)
                for *values, prev, digest in rows:
                    seq, stored = int(values[0]), tuple(values[1:])
                    after = seq
                    if not digest and prev_hash is None:  # written before the chain existed
                        unchained += 1
                        continue
                    expected_prev = prev_hash or ""
                    if prev != expected_prev:
                        return ChainCheck(False, checked, unchained, seq, "the row before it was removed or changed "
                                                                          "(prev_hash does not match)")
                    if chain_hash(prev, stored) != digest:
                        return ChainCheck(False, checked, unchained, seq, "this row was changed (hash does not match)")
                    prev_hash = digest
                    checked += 1

    def search_audit(self, query: AuditQuery) -> tuple[list[AuditEntry], int]:
        """A page of entries matching ``query``, newest first, and how many match in all."""
        where: list[str] = []
        args: list[str | int | float] = []
        for column, value in (("actor", query.actor), ("action", query.action), ("outcome", query.outcome)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.target is not None:
            where.append("target LIKE ? ESCAPE '\\'")
            args.append(_like(query.target)[1:])
        if query.since is not None:
            where.append("at >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("at < ?")
            args.append(query.until)
        if query.q is not None:
            where.append("(target LIKE ? ESCAPE '\\' OR details LIKE ? ESCAPE '\\' OR actor LIKE ? ESCAPE '\\' "
                         "OR action LIKE ? ESCAPE '\\')")
            args.extend([_like(query.q)] * 4)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._guard() as db:
            total = db.execute(f"SELECT COUNT(*) FROM audit_log{clause}", args).fetchone()[0]
            rows = db.execute(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log{clause} ORDER BY at DESC, seq DESC "
                              f"LIMIT ? OFFSET ?", [*args, query.limit, query.offset]).fetchall()
        return [entry_from_row(r) for r in rows], int(total)

    # -- outbound webhooks: one delivery row per (target, outbox event), made from the outbox by a cursor ----
    def webhook_expand(self, target: str, wanted: frozenset[str] | None, at: float, limit: int = 500) -> int:
        """Create deliveries for ``target`` of the outbox events written since its cursor (only actions in
        ``wanted`` when given); a target seen for the first time starts at the current end of the outbox."""
        with self.transaction() as tx:
            c = tx._c
            row = c.execute("SELECT last_seq FROM webhook_cursors WHERE target = ?", (target,)).fetchone()
            if row is None:
                end = c.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
                c.execute("INSERT INTO webhook_cursors (target, last_seq) VALUES (?, ?)", (target, end))
                return 0
            rows = c.execute("SELECT seq, case_id, event FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                             (row[0], limit)).fetchall()
            made = 0
            for seq, case_id, event in rows:
                if wanted is None or json.loads(event).get("action") in wanted:
                    c.execute("INSERT INTO webhook_deliveries (target, outbox_seq, case_id, idempotency_key, next_at) "
                              "VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, outbox_seq) DO NOTHING",
                              (target, seq, case_id, f"citywall-{case_id}-{seq}", at))
                    made += 1
            if rows:
                c.execute("UPDATE webhook_cursors SET last_seq = ? WHERE target = ?", (rows[-1][0], target))
            return made

    def webhook_queue(self, target: str, limit: int = 50) -> list[dict[str, Any]]:
        """Undelivered deliveries of ``target`` in event order, each with its event."""
        with self._guard() as db:
            rows = db.execute(
                "SELECT d.id, d.outbox_seq, d.case_id, d.idempotency_key, d.attempts, d.next_at, d.last_error, o.event "
                "FROM webhook_deliveries d JOIN outbox o ON o.seq = d.outbox_seq "
                "WHERE d.target = ? AND d.delivered_at IS NULL ORDER BY d.outbox_seq LIMIT ?",
                (target, limit)).fetchall()
        return [{"id": r[0], "seq": r[1], "case_id": r[2], "key": r[3], "attempts": r[4], "next_at": r[5],
                 "last_error": r[6], "event": json.loads(r[7])} for r in rows]

    def webhook_result(self, delivery_id: int, *, at: float, ok: bool, error: str = "",
                       next_at: float | None = None) -> None:
        """Record one attempt: delivered, or failed with ``error`` and retried at ``next_at``."""
        with self.transaction() as tx:
            if ok:
                tx._c.execute("UPDATE webhook_deliveries SET attempts = attempts + 1, delivered_at = ?, "
                              "last_error = '' "
                              "WHERE id = ?", (at, delivery_id))
            else:
                tx._c.execute("UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = ?, next_at = ? "
                              "WHERE id = ?", (error[:500], next_at if next_at is not None else at, delivery_id))

    def webhook_status(self, limit: int = 100) -> dict[str, Any]:
        """Per target: pending and delivered counts, the oldest pending event; and the oldest pending deliveries."""
        with self._guard() as db:
            per = db.execute(
                "SELECT target, SUM(CASE WHEN delivered_at IS NULL THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END), "
                "MIN(CASE WHEN delivered_at IS NULL THEN outbox_seq END) FROM webhook_deliveries GROUP BY target "
                "ORDER BY target").fetchall()
            pending = db.execute(
                "SELECT d.target, d.case_id, d.outbox_seq, d.idempotency_key, d.attempts, d.next_at, d.last_error, "
                "o.created_at, o.event FROM webhook_deliveries d JOIN outbox o ON o.seq = d.outbox_seq "
                "WHERE d.delivered_at IS NULL ORDER BY d.outbox_seq, d.target LIMIT ?", (limit,)).fetchall()
        targets = {t: {"pending": int(p or 0), "delivered": int(d or 0), "oldest_pending_seq": o}
                   for t, p, d, o in per}
        items = []
        for target, case_id, seq, key, attempts, next_at, error, created, event in pending:
            ev = json.loads(event)
            items.append({"target": target, "case_id": case_id, "case_no": ev.get("case_no"),
                          "action": ev.get("action"),
                          "seq": seq, "idempotency_key": key, "attempts": attempts, "next_at": next_at,
                          "last_error": error, "created_at": created})
        return {"targets": targets, "pending": items}

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the case store is closed")


def _list_columns(data: dict[str, Any]) -> tuple[Any, ...]:
    """The list's columns (migration 10) from a case dict: unit, place, deadline start, search text."""
    start = data.get("deadline_from")
    return (str(data.get("unit_id") or ""), str(data.get("street") or ""), str(data.get("community") or ""),
            str(data.get("grid_code") or ""), None if start is None else float(start), listing.search_text(data))


def _grams_text(text: str) -> str:
    """A case's search grams as migration 13's FTS5 table held them (space-separated tokens)."""
    return " ".join(listing.search_grams(text or ""))


_RUN_GAP = " 0 "
"""Between two runs' pairs in the ``pairs`` column: a one-character token, which no query phrase (pairs only) holds,
so a phrase never spans two runs."""


def _pairs_text(text: str) -> str:
    """The ``pairs`` column of migration 15: each run's neighbouring pairs in order, runs kept apart."""
    return _RUN_GAP.join(" ".join(r[i:i + 2] for i in range(len(r) - 1))
                         for r in listing.search_runs(text or "") if len(r) > 1)


def _chars_text(text: str) -> str:
    """The ``chars`` column of migration 15: every indexed character once."""
    return " ".join(dict.fromkeys(listing.search_key(text or "")))


def _fts_query(text: str) -> tuple[str, bool]:
    """The FTS5 query of migration 15's index for a search of ``text`` and whether it alone is exact: each run of
    the text as a phrase of its pairs (its character, for a one-character run), all of them required. Runs hold no
    double quote (punctuation is what separates them), so quoting is enough to keep FTS5 syntax out."""
    parts = [f'pairs : "{" ".join(r[i:i + 2] for i in range(len(r) - 1))}"' if len(r) > 1 else f'chars : "{r}"'
             for r in listing.search_runs(text)]
    return " AND ".join(parts), listing.exact_search(text)


def _like(text: str) -> str:
    """``%text%`` for LIKE ... ESCAPE '\\', with the wildcards in ``text`` taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _read_cases(c: Any, ids: list[str], now: float | None) -> list[dict[str, Any]]:
    if not ids:
        return []
    now = time.time() if now is None else now
    marks = ",".join("?" * len(ids))
    rows = {r[0]: r for r in c.execute(
        f"SELECT id, state, deadline_at, closed_at, data, version, supervise_count FROM cases WHERE id IN ({marks})",
        ids).fetchall()}
    timeline: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    alarms: dict[str, list[str]] = {i: [] for i in ids}
    evidence: dict[str, list[str]] = {i: [] for i in ids}
    # The three child tables in one query (PostgreSQL pays a round trip per statement), told apart by the first
    # column and each in its own order: timeline and evidence by seq, alarm ids by time then id.
    for part, case_id, _seq, at, text, action, actor, note in c.execute(
            f"SELECT 0, case_id, seq, at, state, action, actor, note FROM case_timeline WHERE case_id IN ({marks}) "
            f"UNION ALL SELECT 1, case_id, 0, at, alarm_id, '', '', '' FROM case_alarms "
            f"WHERE phase = 'raised' AND case_id IN ({marks}) "
            f"UNION ALL SELECT 2, case_id, seq, at, path, '', '', '' FROM case_evidence WHERE case_id IN ({marks}) "
            "ORDER BY 1, 2, 3, 4, 5", [*ids, *ids, *ids]).fetchall():
        if part == 0:
            timeline[case_id].append({"at": at, "state": text, "action": action, "actor": actor, "note": note})
        elif part == 1:
            alarms[case_id].append(text)
        else:
            evidence[case_id].append(text)
    out = []
    for case_id in ids:
        row = rows.get(case_id)
        if row is None:
            continue
        _, state, deadline_at, closed_at, data, version, supervise_count = row
        stored = json.loads(data)
        st = State(state)
        if st in (State.REJECTED, State.VOIDED):
            overdue = False
        elif st is State.CLOSED:
            overdue = closed_at is not None and closed_at > deadline_at
        else:
            overdue = now > deadline_at
        stored.update(state=st.value, state_label=STATE_LABELS[st], deadline_at=deadline_at,
                      alarm_ids=alarms[case_id], evidence=evidence[case_id], timeline=timeline[case_id],
                      overdue=overdue,
                      version=version, closed_at=closed_at, supervised=bool(supervise_count),
                      supervise_count=int(supervise_count),
                      last_supervision=next((t for t in reversed(timeline[case_id])
                                             if t["action"] == SUPERVISE_ACTION), None))
        case = {k: stored.get(k) for k in CASE_KEYS}
        case.update({k: v for k, v in stored.items() if k not in case})
        out.append(case)
    return out
