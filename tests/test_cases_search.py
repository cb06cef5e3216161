"""The case list's text search through its gram index (migrations 13 and 15), on SQLite and PostgreSQL: one- and
two-character Chinese searches, case numbers, wildcards taken literally, an edited title found by its new words and
not its old ones, cases written before the index back-filled, and the index actually used by the query plan; a
search the index answers alone (SQLite) finds and counts what the row-by-row search does, through state changes,
paging and deletion."""

from __future__ import annotations

import string
from collections import Counter

import pytest

from cases.listing import CaseQuery, query_grams, search_grams, search_key, search_terms, search_text
from cases.migrations import MIGRATIONS, SEARCH_STATE_CODES
from cases.store import CaseStore
from cases.workflow import State
from tests.fixtures.cases import insert_case

pytestmark = pytest.mark.every_backend
NOW = 1_773_300_000.0


def test_grams_drop_ascii_punctuation_and_fold_ascii_case_only():
    assert search_key("CW2026-0001 解放路12号，垃圾!") == "cw20260001解放路12号，垃圾"
    assert search_grams("Ab 解放") == ["a", "b", "解", "放", "ab", "b解", "解放"]
    assert query_grams("垃圾") == ["垃圾"] and query_grams("圾") == ["圾"]
    assert query_grams("解放路1") == ["解放", "放路", "路1"]
    assert query_grams("--%_") == []  # nothing indexed: the LIKE alone decides
    assert search_terms("Ab-c 解放") == ["a", "b", "c", "解", "放", "ab", "解放"]  # PostgreSQL's: pairs within runs


def found(store: CaseStore, q: str) -> set[str]:
    return {c["id"] for c in store.query_cases(CaseQuery(q=q, limit=500), now=NOW).cases}


def test_search_finds_substrings_of_every_length(store):
    for n in range(1, 13):
        insert_case(store, n)
    with store.transaction() as tx:
        tx.update_case("case-003", NOW, title="河坊街 暴露垃圾 50%_off")
        tx.update_case("case-004", NOW, title="Vending at Gate B")
    assert found(store, "垃圾") == {"case-003"}                    # two characters
    assert found(store, "圾") == {"case-003"}                      # one
    assert found(store, "河坊街 暴露") == {"case-003"}              # a space inside the words
    assert found(store, "50%_") == {"case-003"}                    # wildcards taken literally
    assert found(store, "50%x") == set()
    assert found(store, "CW20260311-0010") == {"case-010"}         # the case number
    assert found(store, "CW20260311-001") == {"case-010", "case-011", "case-012"}
    assert found(store, "gate b") == ({"case-004"} if store.backend == "sqlite" else set())  # each DB's LIKE case rule
    assert len(found(store, "解放路88号")) == 12                    # the address every case has
    assert found(store, "case 3") == set()                        # the old title left the index
    assert found(store, "1解") == set()  # "case 1 解放路": the pair is indexed, the LIKE wants the text as typed
    page = store.query_cases(CaseQuery(q="垃圾", states=("closed",)), now=NOW)
    assert page.total == 0 and page.counts == {"dispatched": 1}


def test_the_search_index_is_what_the_plan_reads(store):
    for n in range(1, 4):
        insert_case(store, n)
    db = store._db
    if store.backend == "sqlite":
        plan = " ".join(str(r[-1]) for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM cases WHERE id IN (SELECT k.case_id FROM case_search_keys k "
            "WHERE k.n IN (SELECT rowid FROM case_search WHERE case_search MATCH ?))", ['"垃圾"']).fetchall())
        assert "VIRTUAL TABLE INDEX" in plan
    else:
        db.execute("SET enable_seqscan = off")  # three rows: the planner would rather read them all
        plan = " ".join(r[0] for r in db.execute(
            "EXPLAIN SELECT case_id FROM case_search_rows WHERE case_search_terms(search) @> ?::text[]",
            [["解放"]]).fetchall())
        db.execute("RESET enable_seqscan")
        assert "case_search_rows_terms" in plan
        for text in ("CW20260311-0001 解放路12号 Vending AT gate·B", "", "--", "ÄÖ ｆｕｌｌ　宽", "a", "xab-bcy 垃 圾"):
            (sql_terms,) = db.execute("SELECT case_search_terms(?)", [text]).fetchone()
            assert sorted(sql_terms) == sorted(search_terms(text)), text
        # the SQL function makes the grams the store's Python makes (the query's pairs are made in Python)
        for text in ("CW20260311-0001 解放路12号 Vending AT gate·B", "", "--", "ÄÖ ｆｕｌｌ　宽", "a"):
            (sql_grams,) = db.execute("SELECT case_search_grams(?)", [text]).fetchone()
            assert sorted(sql_grams) == sorted(search_grams(text)), text


def test_cases_written_before_the_index_are_back_filled(store, tmp_path, request):
    """A store written before the search index (migrations 13 and 15) opens with every case searchable."""
    url = (f"sqlite:///{tmp_path}/old.sqlite" if store.backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    versions = [m.version for m in MIGRATIONS if m.name.startswith("case list text search")]
    assert len(versions) == 2
    old = CaseStore.open(url)
    try:
        for n in range(1, 4):
            insert_case(old, n)
        # undo what this migration made, as if the store had been written before it
        with old.transaction() as tx:
            if old.backend == "sqlite":
                tx.execute("DROP TRIGGER case_search_state")
                tx.execute("DROP TRIGGER case_search_forget")
                tx.execute("DROP TABLE case_search")
                tx.execute("DROP TABLE case_search_keys")
                tx.execute("DROP INDEX cases_search_cover")
            else:
                tx.execute("DROP TABLE case_search_rows")
                tx.execute("DROP FUNCTION case_search_row() CASCADE")
                tx.execute("DROP FUNCTION case_search_terms(text)")
                tx.execute("DROP FUNCTION case_search_grams(text)")
            # migration 15's shared part: its indexes out, the covering index it replaced back (by name)
            tx.execute("DROP INDEX cases_list_filters")
            tx.execute("DROP INDEX cases_list_open_state_deadline")
            tx.execute("CREATE INDEX cases_list_cover ON cases(state)")
            for version in versions:
                tx.execute("DELETE FROM schema_migrations WHERE version = ?", (version,))
    finally:
        old.close()
    reopened = CaseStore.open(url)
    try:
        with reopened.transaction() as tx:
            tx.update_case("case-002", NOW, title="河坊街 暴露垃圾")
        assert found(reopened, "垃圾") == {"case-002"}
        assert found(reopened, "case 1") == {"case-001"}
    finally:
        reopened.close()


def test_the_unfiltered_counts_follow_every_state_change(store):
    for n in range(1, 5):
        insert_case(store, n)
    with store.transaction() as tx:
        tx.update_case("case-001", NOW, state="handling")
        tx.update_case("case-002", NOW, state="handling")
        tx.update_case("case-002", NOW + 1, state="handled")
        tx.update_case("case-003", NOW, title="only the title")  # no state change
    page = store.query_cases(CaseQuery(limit=2), now=NOW)  # no filter: the kept counts
    assert page.counts == {"dispatched": 2, "handling": 1, "handled": 1} and page.total == 4
    filtered = store.query_cases(CaseQuery(unit_ids=("hubin-squad",)), now=NOW)  # a filter: counted
    assert filtered.counts == page.counts
    with store.transaction() as tx:
        tx.execute("DELETE FROM case_timeline WHERE case_id = 'case-004'")
        tx.execute("DELETE FROM case_evidence WHERE case_id = 'case-004'")
        tx.execute("DELETE FROM case_alarms WHERE case_id = 'case-004'")
        if store.backend == "sqlite":
            tx.execute("DELETE FROM case_search_keys WHERE case_id = 'case-004'")
        tx.execute("DELETE FROM cases WHERE id = 'case-004'")
    assert store.query_cases(CaseQuery(), now=NOW).counts == {"dispatched": 1, "handling": 1, "handled": 1}


def test_every_state_has_its_own_range_of_the_search_index():
    assert set(SEARCH_STATE_CODES) == {s.value for s in State}
    assert len(set(SEARCH_STATE_CODES.values())) == len(State) and 0 not in SEARCH_STATE_CODES.values()


def _walk(store: CaseStore, query: CaseQuery) -> list[str]:
    """Every page of ``query`` by cursor, its ids in order."""
    ids, cursor = [], None
    while True:
        page = store.query_cases(CaseQuery(**{**query.__dict__, "cursor": cursor}) if cursor else query, now=NOW)
        ids += [c["id"] for c in page.cases]
        cursor = page.next_cursor
        if cursor is None:
            return ids


def test_a_search_answered_by_the_index_alone_agrees_with_the_row_by_row_search(store):
    titles = {1: "河坊街 暴露垃圾 50%_off", 2: "Vending at Gate B", 3: "xab-bcy 垃 圾", 4: "垃圾箱满溢 垃圾",
              5: "abc", 6: "ÄBC äbc", 7: "延安路 垃圾", 8: "圾垃"}
    for n in range(1, 21):
        insert_case(store, n)
    with store.transaction() as tx:
        for n, title in titles.items():
            tx.update_case(f"case-{n:03d}", NOW, title=title)
        for n, state in ((1, "handling"), (4, "handling"), (4, "handled"), (7, "closed"), (8, "voided"),
                         (12, "handling")):
            tx.update_case(f"case-{n:03d}", NOW, state=state)
    queries = ["垃圾", "圾", "垃", "abc", "ABC", "bc", "äbc", "gate", "Gate", "解放路88号", "0001", "放", "满溢",
               "圾垃", "88", "case", "nothing"]
    # the truth: each database's LIKE '%q%' (SQLite folds ASCII case, PostgreSQL none), by Python over every case
    fold = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
    cases = store.query_cases(CaseQuery(limit=500), now=NOW).cases
    texts = {c["id"]: (search_text(c), c["state"]) for c in cases}
    # a filter every case passes sends the same search down the other path (matches counted and sorted)
    everything = {"reported_from": 0.0}
    for q in queries:
        if store.backend == "sqlite":
            truth = {i for i, (t, _) in texts.items() if q.translate(fold) in t.translate(fold)}
        else:
            truth = {i for i, (t, _) in texts.items() if q in t}
        page = store.query_cases(CaseQuery(q=q, limit=500), now=NOW)
        assert {c["id"] for c in page.cases} == truth, q
        assert page.counts == dict(Counter(texts[i][1] for i in truth)), q
        for states in ((), ("handling",), ("dispatched", "handling", "handled")):
            for limit in (500, 2):
                fast = CaseQuery(q=q, states=states, limit=limit)
                slow = CaseQuery(q=q, states=states, limit=limit, **everything)
                a, b = store.query_cases(fast, now=NOW), store.query_cases(slow, now=NOW)
                assert (a.counts, a.total) == (b.counts, b.total), (q, states)
                assert [c["id"] for c in a.cases] == [c["id"] for c in b.cases], (q, states, limit)
                if limit == 2:
                    assert _walk(store, fast) == _walk(store, slow), (q, states)
        for sort in ("oldest", "deadline"):
            assert _walk(store, CaseQuery(q=q, sort=sort, limit=3)) == _walk(
                store, CaseQuery(q=q, sort=sort, limit=3, **everything)), (q, sort)
    if store.backend == "sqlite":
        assert store._db.search_counts("垃圾") == {"handling": 1, "handled": 1, "closed": 1}  # not "xab-bcy 垃 圾"
        assert store._db.search_counts("ABC") == {"dispatched": 1}  # 5, not "xab-bcy" nor "ÄBC äbc" (ASCII folded only)
        assert store._db.search_counts("a-b") is None  # ASCII punctuation: the LIKE decides
        # a case's key removed: gone from the index's counts too
        with store.transaction() as tx:
            for table in ("case_timeline", "case_evidence", "case_alarms", "case_search_keys"):
                tx.execute(f"DELETE FROM {table} WHERE case_id = 'case-007'")
            tx.execute("DELETE FROM cases WHERE id = 'case-007'")
        assert store._db.search_counts("垃圾") == {"handling": 1, "handled": 1}
