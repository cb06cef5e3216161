"""The desk list's query core (cases.listing), pure: validation naming the bad value, cursors bound to their sort,
deadline stages by the deadline watch's rule, and SQL made only of fixed fragments and ? marks."""

from __future__ import annotations

import pytest

from cases.listing import CaseQuery, CursorError, deadline_stage, encode_cursor, order, search_text, where


@pytest.mark.parametrize("kwargs, message", [
    ({"states": ("lost",)}, "lost"),
    ({"sort": "random"}, "sort must be one of newest, oldest, deadline"),
    ({"deadline": "late"}, "deadline must be one of normal, near, overdue"),
    ({"limit": 0}, "limit must be 1..500"),
    ({"offset": 5, "cursor": encode_cursor("newest", 1.0, "CW1")}, "offset"),
    ({"cursor": "!!"}, "not a cursor"),
    ({"cursor": encode_cursor("deadline", 1.0, "CW1")}, "belongs to sort 'deadline'"),
])
def test_bad_queries_are_refused_naming_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CaseQuery(**kwargs)


def test_cursor_errors_are_their_own_type():
    with pytest.raises(CursorError):
        CaseQuery(cursor="bm90IGpzb24")  # base64 of "not json"


def test_keyset_condition_follows_the_sort_direction():
    by, after, args = order(CaseQuery(cursor=encode_cursor("newest", 100.0, "CW9")))
    assert by == "reported_at DESC, case_no DESC" and after == "(reported_at, case_no) < (?, ?)"
    assert args == [100.0, "CW9"]
    by, after, args = order(CaseQuery(sort="deadline", cursor=encode_cursor("deadline", 5.0, "CW1")))
    assert by == "deadline_at ASC, case_no ASC" and after == "(deadline_at, case_no) > (?, ?)"
    by, _, _ = order(CaseQuery(q="解放路"))
    assert by == "reported_at + 0 DESC, case_no DESC"  # a search sorts its matches, off the date index


def test_where_binds_every_value_and_scopes_units():
    conditions, args = where(CaseQuery(states=("handling", "closed"), unit_ids=("a", "b"), street="湖滨街道",
                                       grid_code="3301", q="50%_off", supervised=True), now=1000.0)
    sql = " AND ".join(conditions)
    assert "湖滨街道" not in sql and "50%" not in sql and "?" in sql
    assert args == ["handling", "closed", "a", "b", "湖滨街道", "3301%", "%50\\%\\_off%"]
    assert where(CaseQuery(unit_ids=()), now=0)[0] == ["1 = 0"]  # a unit user without units sees nothing


@pytest.mark.parametrize("state, start, deadline, now, expected", [
    ("dispatched", 0, 100, 50, "normal"),
    ("dispatched", 0, 100, 80, "near"),        # 80 % of the limit gone
    ("handling", 0, 100, 101, "overdue"),
    ("closed", 0, 100, 500, None),             # finished: no stage
    ("returned", 0, 100, 79.9, "normal"),
])
def test_deadline_stages(state, start, deadline, now, expected):
    case = {"state": state, "reported_at": start, "deadline_at": deadline}
    assert deadline_stage(case, now, 0.8, None) == expected


def test_near_by_remaining_seconds_and_a_redispatch_restarts_the_limit():
    case = {"state": "dispatched", "reported_at": 0, "deadline_at": 10_000, "deadline_from": 9_000}
    assert deadline_stage(case, 9_500, 0.8, None) == "normal"    # half of the new limit
    assert deadline_stage(case, 9_500, None, 600) == "near"      # 500 s left
    assert search_text({"case_no": "CW1", "title": "t", "address": "a"}) == "CW1 t a "
