"""The case store's schema as numbered migrations, one SQL text for SQLite and PostgreSQL.

Each migration is applied once, in order, inside one transaction at :meth:`cases.store.CaseStore.open`, and
recorded in ``schema_migrations (version, name, applied_at)``. Never edit a released migration; append a new one.

Portable SQL only: ``DOUBLE PRECISION`` for times (SQLite reads it as REAL; PostgreSQL's ``REAL`` would be 4 bytes
and lose seconds), partial indexes, ``ON CONFLICT``. The one dialect difference is the auto-increment key, written
``{serial}`` and filled in by the backend. Statements a dialect writes its own way (triggers: SQLite's
``BEGIN ... END`` bodies, PostgreSQL's PL/pgSQL functions) go in ``per_backend``, each one whole statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    per_backend: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Backend name (``sqlite``, ``postgresql``) → extra statements run after ``sql``, not split on ``;``."""

    def statements(self, serial: str, backend: str = "") -> list[str]:
        shared = [s.strip() for s in self.sql.replace("{serial}", serial).split(";") if s.strip()]
        return shared + [s.strip() for s in self.per_backend.get(backend, ())]


_APPEND_ONLY = "audit_log is append-only"

SEARCH_STATE_CODES: dict[str, int] = {
    "reported": 1, "accepted": 2, "registered": 3, "dispatched": 4, "handling": 5, "handled": 6, "verifying": 7,
    "closed": 8, "rejected": 9, "voided": 10, "returned": 11, "suspended": 12,
}
"""Migration 15: a case's state as the high half of its SQLite search-index rowid (``code << 32 | n``), so a search is
counted per state by rowid ranges of the index alone. Every state has one (a test checks); 0 for any other."""
SEARCH_ROWID_BITS = 32


def _search_code(column: str) -> str:
    whens = " ".join(f"WHEN '{state}' THEN {code}" for state, code in SEARCH_STATE_CODES.items())
    return f"(CASE {column} {whens} ELSE 0 END)"



MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "cases, timeline, alarm index, evidence, case numbers, outbox", """
    CREATE TABLE cases (
        id TEXT PRIMARY KEY,
        case_no TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        is_open INTEGER NOT NULL,
        camera_id TEXT NOT NULL,
        zone_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        code TEXT NOT NULL,
        reported_at DOUBLE PRECISION NOT NULL,
        deadline_at DOUBLE PRECISION NOT NULL,
        closed_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX cases_open_place ON cases(camera_id, zone_id, kind, code) WHERE is_open = 1;
    CREATE INDEX cases_reported ON cases(reported_at DESC, id);
    CREATE INDEX cases_state ON cases(state, reported_at DESC);
    CREATE INDEX cases_camera ON cases(camera_id, reported_at DESC);
    CREATE TABLE case_timeline (
        case_id TEXT NOT NULL REFERENCES cases(id),
        seq INTEGER NOT NULL,
        at DOUBLE PRECISION NOT NULL,
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
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (alarm_id, phase)
    );
    CREATE INDEX case_alarms_case ON case_alarms(case_id);
    CREATE TABLE case_evidence (
        case_id TEXT NOT NULL REFERENCES cases(id),
        seq INTEGER NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        alarm_id TEXT NOT NULL DEFAULT '',
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (case_id, seq)
    );
    CREATE TABLE case_numbers (day TEXT PRIMARY KEY, last INTEGER NOT NULL);
    CREATE TABLE outbox (
        seq {serial},
        case_id TEXT NOT NULL,
        event TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        published_at DOUBLE PRECISION
    );
    CREATE INDEX outbox_pending ON outbox(seq) WHERE published_at IS NULL
    """),
    Migration(2, "case version for optimistic concurrency", """
    ALTER TABLE cases ADD COLUMN version INTEGER NOT NULL DEFAULT 1
    """),
    Migration(3, "outbound webhook deliveries", """
    CREATE TABLE webhook_cursors (
        target TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        id {serial},
        target TEXT NOT NULL,
        outbox_seq INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at DOUBLE PRECISION NOT NULL,
        delivered_at DOUBLE PRECISION,
        last_error TEXT NOT NULL DEFAULT '',
        UNIQUE (target, outbox_seq)
    );
    CREATE INDEX webhook_due ON webhook_deliveries(next_at) WHERE delivered_at IS NULL
    """),
    Migration(4, "review queue claims", """
    CREATE TABLE review_claims (
        item_id TEXT PRIMARY KEY,
        reviewer TEXT NOT NULL,
        until_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE review_decisions (
        item_id TEXT PRIMARY KEY,
        decision TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        case_id TEXT,
        at DOUBLE PRECISION NOT NULL
    )
    """),
    Migration(5, "deadline alarms raised, supervision (督办) count", """
    CREATE TABLE case_deadline_alarms (
        case_id TEXT NOT NULL REFERENCES cases(id),
        stage TEXT NOT NULL,
        deadline_at DOUBLE PRECISION NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (case_id, stage, deadline_at)
    );
    ALTER TABLE cases ADD COLUMN supervise_count INTEGER NOT NULL DEFAULT 0
    """),
    Migration(6, "append-only audit log of control actions", """
    CREATE TABLE audit_log (
        seq {serial},
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        outcome INTEGER NOT NULL,
        client TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_at ON audit_log(at DESC, seq);
    CREATE INDEX audit_actor ON audit_log(actor, at DESC);
    CREATE INDEX audit_action ON audit_log(action, at DESC)
    """, per_backend={
        "sqlite": (
            f"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END",
            f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END",
        ),
        "postgresql": (
            f"CREATE OR REPLACE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            f"$fn$ BEGIN RAISE EXCEPTION USING MESSAGE = '{_APPEND_ONLY}: ' || TG_OP || ' refused'; END $fn$",
            "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse()",
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse()",
        ),
    }),
    Migration(7, "held alarms: raised alarms the filing policy keeps for review, durable", """
    CREATE TABLE held_alarms (
        alarm_id TEXT PRIMARY KEY,
        camera_id TEXT NOT NULL,
        event TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        alarm_json TEXT NOT NULL,
        cleared_json TEXT,
        held_at DOUBLE PRECISION NOT NULL,
        decided_at DOUBLE PRECISION
    );
    CREATE INDEX held_alarms_undecided ON held_alarms(at, alarm_id) WHERE decided_at IS NULL
    """),
    Migration(8, "audit log hash chain: each row carries sha256(previous row's hash + this row)", """
    ALTER TABLE audit_log ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit_log ADD COLUMN hash TEXT NOT NULL DEFAULT ''
    """),
    Migration(9, "recording segments: the index of every camera's recorded files (recording/)", """
    CREATE TABLE recording_segments (
        path TEXT PRIMARY KEY,
        camera_id TEXT NOT NULL,
        start_at DOUBLE PRECISION NOT NULL,
        end_at DOUBLE PRECISION NOT NULL,
        bytes BIGINT NOT NULL,
        codec TEXT NOT NULL,
        complete INTEGER NOT NULL
    );
    CREATE INDEX recording_segments_camera ON recording_segments(camera_id, start_at);
    CREATE INDEX recording_segments_start ON recording_segments(start_at)
    """),
    Migration(10, "case office list: unit, place, deadline start and search text as columns; keyset indexes", """
    ALTER TABLE cases ADD COLUMN unit_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE cases ADD COLUMN street TEXT NOT NULL DEFAULT '';
    ALTER TABLE cases ADD COLUMN community TEXT NOT NULL DEFAULT '';
    ALTER TABLE cases ADD COLUMN grid_code TEXT NOT NULL DEFAULT '';
    ALTER TABLE cases ADD COLUMN deadline_from DOUBLE PRECISION;
    ALTER TABLE cases ADD COLUMN search TEXT NOT NULL DEFAULT '';
    CREATE INDEX cases_list_reported ON cases(reported_at, case_no);
    CREATE INDEX cases_list_deadline ON cases(deadline_at, case_no);
    CREATE INDEX cases_list_unit ON cases(unit_id, reported_at, case_no);
    CREATE INDEX cases_list_state ON cases(state, reported_at, case_no);
    CREATE INDEX cases_list_street ON cases(street, reported_at, case_no);
    CREATE INDEX cases_list_open_deadline ON cases(deadline_at) WHERE is_open = 1;
    CREATE INDEX cases_list_unit_state ON cases(unit_id, state);
    CREATE INDEX cases_list_supervised ON cases(state, reported_at, case_no) WHERE supervise_count > 0;
    CREATE INDEX cases_list_cover ON cases(state, is_open, deadline_at, deadline_from, reported_at, supervise_count,
        unit_id, street, community, grid_code, camera_id, kind, code, case_no, id, search)
    """, per_backend={
        # Cases written before this migration: the columns from their stored JSON (the store writes both since).
        "sqlite": (
            "UPDATE cases SET unit_id = COALESCE(json_extract(data, '$.unit_id'), ''), "
            "street = COALESCE(json_extract(data, '$.street'), ''), "
            "community = COALESCE(json_extract(data, '$.community'), ''), "
            "grid_code = COALESCE(json_extract(data, '$.grid_code'), ''), "
            "deadline_from = json_extract(data, '$.deadline_from'), "
            "search = case_no || ' ' || COALESCE(json_extract(data, '$.title'), '') || ' ' || "
            "COALESCE(json_extract(data, '$.address'), '') || ' ' || COALESCE(json_extract(data, '$.description'), '')",
        ),
        "postgresql": (
            "UPDATE cases SET unit_id = COALESCE(data::jsonb->>'unit_id', ''), "
            "street = COALESCE(data::jsonb->>'street', ''), "
            "community = COALESCE(data::jsonb->>'community', ''), "
            "grid_code = COALESCE(data::jsonb->>'grid_code', ''), "
            "deadline_from = (data::jsonb->>'deadline_from')::double precision, "
            "search = case_no || ' ' || COALESCE(data::jsonb->>'title', '') || ' ' || "
            "COALESCE(data::jsonb->>'address', '') || ' ' || COALESCE(data::jsonb->>'description', '')",
        ),
    }),
    Migration(11, "review labels: reviewers' boxes and classes on decided alarms' clean snapshots (learning/)", """
    CREATE TABLE review_labels (
        alarm_id TEXT PRIMARY KEY,
        camera_id TEXT NOT NULL,
        frame_at DOUBLE PRECISION NOT NULL,
        decision TEXT NOT NULL,
        decided_by TEXT NOT NULL,
        decided_at DOUBLE PRECISION NOT NULL,
        snapshot TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        bytes BIGINT NOT NULL,
        boxes TEXT NOT NULL,
        event TEXT NOT NULL,
        alarm_boxes TEXT NOT NULL
    );
    CREATE INDEX review_labels_frame ON review_labels(frame_at)
    """),
    Migration(12, "shadow detections: a candidate site model's would-be detections on live cameras (learning/)", """
    CREATE TABLE shadow_detections (
        version TEXT NOT NULL,
        camera_id TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        boxes TEXT NOT NULL,
        PRIMARY KEY (version, camera_id, at)
    );
    CREATE INDEX shadow_detections_at ON shadow_detections(version, at)
    """),
    Migration(13, "case list text search: an index of the search text's characters and character pairs", "",
              per_backend={
        # SQLite: an FTS5 table of the grams (cases.listing.search_grams, space-separated), written by the store;
        # its rowid is a stable number per case (case_search_keys, with a copy of the search text for the exact
        # check), not the cases table's rowid (VACUUM may renumber it). case_search_grams is the store's Python
        # function, registered on every connection.
        "sqlite": (
            "CREATE TABLE case_search_keys (n INTEGER PRIMARY KEY, case_id TEXT NOT NULL UNIQUE REFERENCES cases(id), "
            "search TEXT NOT NULL)",
            "CREATE VIRTUAL TABLE case_search USING fts5(grams, tokenize = 'unicode61 remove_diacritics 0')",
            "INSERT INTO case_search_keys (case_id, search) SELECT id, search FROM cases ORDER BY reported_at",
            "INSERT INTO case_search (rowid, grams) SELECT n, case_search_grams(search) FROM case_search_keys",
            # the matches' state and sort keys without reading their (wide) rows: counts and order of a search
            "CREATE INDEX cases_search_cover ON cases(id, state, reported_at, deadline_at, case_no)",
        ),
        # PostgreSQL: the same grams by a SQL function (the same characters dropped, ASCII lower-cased without the
        # locale's help) and a GIN index over it, which the server keeps in step with every write.
        "postgresql": (
            "CREATE FUNCTION case_search_grams(t text) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS "
            "$fn$ WITH s AS (SELECT translate("
            "regexp_replace(t, '[\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f]', '', 'g'), "
            "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') AS k) "
            "SELECT COALESCE(array_agg(DISTINCT g), '{}'::text[]) FROM ("
            "SELECT substr(k, i, 1) FROM s, generate_series(1, length(k)) AS i UNION ALL "
            "SELECT substr(k, i, 2) FROM s, generate_series(1, length(k) - 1) AS i) AS x(g) $fn$",
            "CREATE INDEX cases_search_grams ON cases USING gin (case_search_grams(search))",
        ),
    }),
    Migration(14, "cases per state kept by triggers (the list's tabs without a filter); street + category and "
                  "open deadline + state indexes (counts read no case row)",
              """
    CREATE TABLE case_state_counts (state TEXT PRIMARY KEY, n BIGINT NOT NULL);
    INSERT INTO case_state_counts (state, n) SELECT state, COUNT(*) FROM cases GROUP BY state;
    CREATE INDEX cases_list_street_category ON cases(street, kind, code, state);
    CREATE INDEX cases_list_open_deadline_state ON cases(deadline_at, state) WHERE is_open = 1
    """, per_backend={
        "sqlite": (
            "CREATE TRIGGER cases_count_insert AFTER INSERT ON cases BEGIN "
            "INSERT INTO case_state_counts (state, n) VALUES (new.state, 1) "
            "ON CONFLICT (state) DO UPDATE SET n = n + 1; END",
            "CREATE TRIGGER cases_count_update AFTER UPDATE OF state ON cases WHEN old.state <> new.state BEGIN "
            "UPDATE case_state_counts SET n = n - 1 WHERE state = old.state; "
            "INSERT INTO case_state_counts (state, n) VALUES (new.state, 1) "
            "ON CONFLICT (state) DO UPDATE SET n = n + 1; END",
            "CREATE TRIGGER cases_count_delete AFTER DELETE ON cases BEGIN "
            "UPDATE case_state_counts SET n = n - 1 WHERE state = old.state; END",
        ),
        "postgresql": (
            "CREATE FUNCTION case_state_count() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN "
            "IF TG_OP = 'UPDATE' AND OLD.state = NEW.state THEN RETURN NULL; END IF; "
            "IF TG_OP <> 'INSERT' THEN UPDATE case_state_counts SET n = n - 1 WHERE state = OLD.state; END IF; "
            "IF TG_OP <> 'DELETE' THEN INSERT INTO case_state_counts (state, n) VALUES (NEW.state, 1) "
            "ON CONFLICT (state) DO UPDATE SET n = case_state_counts.n + 1; END IF; "
            "RETURN NULL; END $fn$",
            "CREATE TRIGGER cases_state_count AFTER INSERT OR DELETE OR UPDATE OF state ON cases "
            "FOR EACH ROW EXECUTE FUNCTION case_state_count()",
        ),
    }),
    Migration(15, "case list text search: SQLite's pairs kept in order run by run (a one-run search exact from the "
                  "index alone), the case's state in the index's rowid (counted per state from the index); "
                  "PostgreSQL's index on a narrow copy of state and text; narrower covering indexes", """
    DROP INDEX cases_list_cover;
    CREATE INDEX cases_list_filters ON cases(state, is_open, deadline_at, deadline_from, reported_at, supervise_count,
        unit_id, street, community, grid_code, camera_id, kind, code, case_no, id);
    CREATE INDEX cases_list_open_state_deadline ON cases(state, deadline_at, is_open) WHERE is_open = 1
    """, per_backend={
        # Shared: migration 10's covering index without the search text (searches have their own index now): a
        # third of its size, so the counts that read it read a third of the pages; and the open cases by state and
        # deadline, whose counts per state of the overdue (or any deadline range) read one narrow range per state.
        # The index of migration 13 again, now (a) two columns: ``pairs``, each run's neighbouring pairs in order,
        # runs kept apart by a one-character token no query phrase holds, and ``chars``, the characters once each;
        # (b) the ascii tokenizer: tokens split only where cases.listing leaves characters out, ASCII case folded —
        # what SQLite's LIKE folds, nothing more; (c) rowid = state code << 32 | case_search_keys.n, moved by a
        # trigger when the state changes (every writer of cases.state, not only the store's update_case); removed
        # with the case's key.
        # case_search_pairs and case_search_chars are the store's Python functions, registered on every connection.
        "sqlite": (
            "DROP TABLE case_search",
            "CREATE VIRTUAL TABLE case_search USING fts5(pairs, chars, tokenize = 'ascii')",
            f"INSERT INTO case_search (rowid, pairs, chars) SELECT ({_search_code('c.state')} << "
            f"{SEARCH_ROWID_BITS}) | k.n, case_search_pairs(k.search), case_search_chars(k.search) "
            "FROM case_search_keys k JOIN cases c ON c.id = k.case_id",
            f"CREATE TRIGGER case_search_state AFTER UPDATE OF state ON cases WHEN old.state <> new.state BEGIN "
            f"UPDATE case_search SET rowid = ({_search_code('new.state')} << {SEARCH_ROWID_BITS}) | "
            f"(SELECT n FROM case_search_keys WHERE case_id = new.id) "
            f"WHERE rowid = ({_search_code('old.state')} << {SEARCH_ROWID_BITS}) | "
            f"(SELECT n FROM case_search_keys WHERE case_id = new.id); END",
            # a case's key removed (before its row: the foreign key): its index row goes too, or it stays counted
            f"CREATE TRIGGER case_search_forget AFTER DELETE ON case_search_keys BEGIN "
            f"DELETE FROM case_search WHERE rowid = ("
            f"{_search_code('(SELECT state FROM cases WHERE id = old.case_id)')} << {SEARCH_ROWID_BITS}) | old.n; END",
        ),
        # PostgreSQL: the GIN of migration 13 moves off the wide cases table onto a narrow copy of each case's state
        # and search text, kept by a trigger: a search's matches are counted per state from a few small pages, not
        # 40,000 fat rows; and a case's update no longer recomputes its grams (the copy changes only with the state
        # or the text; a state change alone is a HOT update — fillfactor leaves the room — that touches no index).
        "postgresql": (
            "CREATE TABLE case_search_rows (case_id TEXT PRIMARY KEY REFERENCES cases(id) ON DELETE CASCADE, "
            "state TEXT NOT NULL, search TEXT NOT NULL) WITH (fillfactor = 70)",
            "INSERT INTO case_search_rows (case_id, state, search) SELECT id, state, search FROM cases",
            # the grams run by run (cases.listing.search_terms): no pair across punctuation or a space, so a search
            # of one or two characters, one run without ASCII letters, is exact from the index without the LIKE
            "CREATE FUNCTION case_search_terms(t text) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS "
            "$fn$ WITH r AS (SELECT run FROM regexp_split_to_table(translate(t, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', "
            "'abcdefghijklmnopqrstuvwxyz'), '[\\x01-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7f]+') AS run "
            "WHERE run <> '') "
            "SELECT COALESCE(array_agg(DISTINCT g), '{}'::text[]) FROM ("
            "SELECT substr(run, i, 1) FROM r, generate_series(1, length(run)) AS i UNION ALL "
            "SELECT substr(run, i, 2) FROM r, generate_series(1, length(run) - 1) AS i) AS x(g) $fn$",
            "CREATE INDEX case_search_rows_terms ON case_search_rows USING gin (case_search_terms(search))",
            "DROP INDEX cases_search_grams",
            "CREATE FUNCTION case_search_row() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN "
            "IF TG_OP = 'INSERT' THEN "
            "INSERT INTO case_search_rows (case_id, state, search) VALUES (NEW.id, NEW.state, NEW.search); "
            "ELSIF NEW.state IS DISTINCT FROM OLD.state OR NEW.search IS DISTINCT FROM OLD.search THEN "
            "UPDATE case_search_rows SET state = NEW.state, search = NEW.search WHERE case_id = NEW.id; END IF; "
            "RETURN NULL; END $fn$",
            "CREATE TRIGGER cases_search_row AFTER INSERT OR UPDATE OF state, search ON cases "
            "FOR EACH ROW EXECUTE FUNCTION case_search_row()",
        ),
    }),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
_versions = [m.version for m in MIGRATIONS]
assert _versions == sorted(set(_versions)) and _versions[0] == 1, "migrations must be numbered upwards from 1"
