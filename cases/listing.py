"""The desk's case list as a query: filters, sort and a keyset cursor, turned into SQL for the case store (pure).

A :class:`CaseQuery` says which cases (state, category, unit, place, camera, deadline stage, 督办, reporting
period, search text) in which order (newest, oldest, nearest deadline); :func:`where` and :func:`order` turn it into
a WHERE clause with ``?`` arguments and an ORDER BY that an index of migration 10 serves, and the keyset condition that
continues after the last row of the previous page. Keyset paging (``(reported_at, case_no) < (?, ?)``) costs the
same on page 1,000 as on page 1, where OFFSET would read and drop every earlier row. Deadline stages follow the
deadline watch (``cases.deadlines``): 超期 past the deadline, 即将超期 once ``near_fraction`` of the time limit
(from filing or the last re-dispatch) has passed or at most ``near_remaining_s`` remain, 正常 otherwise; only open
cases have a deadline stage.

Text search is a substring search (``LIKE '%text%'``) over the ``search`` column, led by an index of *grams*: every
character and every two neighbouring characters of the text, ASCII punctuation and spaces left out and ASCII letters
lower-cased (:func:`search_grams`). A query's pairs (its one character, for a one-character query) must all be
among a case's grams, and the LIKE then checks the exact text. Pairs, not the trigrams of SQLite's and pg_trgm's own
tokenizers: Chinese searches are often two characters (垃圾, 游商, 占道), which trigrams cannot serve, and pg_trgm
ignores Chinese in a database with the C locale. The store keeps the index (SQLite: an FTS5 table; PostgreSQL: a GIN
index over the same grams computed by a SQL function of migration 13; since migration 15, the grams of each run
on a narrow copy of the cases: :func:`search_terms`).

SQLite's index (migration 15) keeps the pairs *in order*, run by run (:func:`search_runs`: the stretches of indexed
characters between ASCII punctuation and spaces), so a query that is one run is found exactly by the index alone: its
pairs as an FTS5 phrase (consecutive pairs ab, bc ⇔ the text holds abc within a run; runs are kept apart), its
character for one character (:func:`exact_search`). SQLite's LIKE ignores ASCII case and nothing else, as the index
does. Such a search is counted per state from the index alone and its page read in list order (:mod:`cases.store`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cases.workflow import State

SORTS: dict[str, tuple[str, str]] = {
    "newest": ("reported_at", "DESC"),
    "oldest": ("reported_at", "ASC"),
    "deadline": ("deadline_at", "ASC"),
}
"""Sort name → (column, direction); ``case_no`` breaks ties in the same direction."""
DEADLINE_STAGES = ("normal", "near", "overdue")
DEADLINE_LABELS = {"normal": "正常", "near": "即将超期", "overdue": "超期"}
MAX_SEARCH = 64


@dataclass(frozen=True)
class CaseQuery:
    """Which cases, in which order, how many, from where (``cursor`` from the previous page's ``next_cursor``)."""

    states: tuple[str, ...] = ()
    category: str | None = None
    """``事件/0501``-style ref."""
    unit_ids: tuple[str, ...] | None = None
    """None: any unit; a tuple: only these (a unit user's scope; empty means none)."""
    street: str | None = None
    community: str | None = None
    grid_code: str | None = None
    """A grid-code prefix (a cell or all cells under it)."""
    camera_id: str | None = None
    deadline: str | None = None
    """``normal`` | ``near`` | ``overdue`` (open cases only)."""
    supervised: bool | None = None
    reported_from: float | None = None
    reported_to: float | None = None
    q: str | None = None
    """Search text: case number, title, address, description."""
    sort: str = "newest"
    limit: int = 50
    offset: int = 0
    """Rows to skip (no cursor only): fine for the first pages, slow deep down — the desk pages by cursor."""
    cursor: str | None = None
    near_fraction: float | None = 0.8
    near_remaining_s: float | None = None
    _after: tuple[Any, str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for s in self.states:
            State(s)  # ValueError naming the state
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {self.sort!r}")
        if self.deadline is not None and self.deadline not in DEADLINE_STAGES:
            raise ValueError(f"deadline must be one of {', '.join(DEADLINE_STAGES)}, got {self.deadline!r}")
        if not 1 <= self.limit <= 500:
            raise ValueError(f"limit must be 1..500, got {self.limit}")
        if self.offset < 0 or (self.offset and self.cursor is not None):
            raise ValueError("offset must be >= 0 and not given with a cursor")
        if self.cursor is not None:
            object.__setattr__(self, "_after", decode_cursor(self.cursor, self.sort))

    def without_state(self) -> CaseQuery:
        """The same filters for any state (the per-state counts of the list's tabs)."""
        return replace(self, states=(), cursor=None, offset=0)


class CursorError(ValueError):
    """A cursor that is not one this server made for this sort."""


def encode_cursor(sort: str, value: float, case_no: str) -> str:
    raw = json.dumps([sort, value, case_no], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, sort: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        made_for, value, case_no = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise CursorError("not a cursor from a previous page (next_cursor)") from None
    if made_for != sort:
        raise CursorError(f"the cursor belongs to sort {made_for!r}, not {sort!r}; start again without it")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not isinstance(case_no, str):
        raise CursorError("not a cursor from a previous page (next_cursor)")
    return float(value), case_no


def like(text: str) -> str:
    """``%text%`` for LIKE ... ESCAPE '\\', with the wildcards in ``text`` taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search_text(case: dict[str, Any]) -> str:
    """What the list's search looks in (the ``search`` column): number, title, address, description."""
    return " ".join(str(case.get(k) or "") for k in ("case_no", "title", "address", "description"))


# ASCII controls, spaces and punctuation; the PostgreSQL function of migration 11 drops the same range.
_NOT_INDEXED = re.compile(r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]")
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def search_key(text: str) -> str:
    """``text`` as the gram index sees it: ASCII punctuation and spaces dropped, ASCII letters lower-cased (the
    rest as is, so the SQL side needs no locale)."""
    return _NOT_INDEXED.sub("", text).translate(_LOWER)


def search_grams(text: str) -> list[str]:
    """The index terms of a case's search text: each character and each pair of neighbours of :func:`search_key`,
    once each."""
    key = search_key(text)
    return list(dict.fromkeys([*key, *(key[i:i + 2] for i in range(len(key) - 1))]))


def query_grams(text: str) -> list[str]:
    """The terms a case must hold to contain ``text``: its pairs (its character when it has one); [] when nothing
    of it is indexed (punctuation only: the LIKE alone decides)."""
    key = search_key(text)
    if len(key) == 1:
        return [key]
    return list(dict.fromkeys(key[i:i + 2] for i in range(len(key) - 1)))


def search_runs(text: str) -> list[str]:
    """The stretches of indexed characters of ``text`` (ASCII letters lower-cased), in order: what ASCII punctuation
    and spaces separate."""
    return [r for r in _NOT_INDEXED.split(text.translate(_LOWER)) if r]


def search_terms(text: str) -> list[str]:
    """PostgreSQL's index terms (migration 15): each run's characters and neighbouring pairs, once each."""
    runs = search_runs(text)
    return list(dict.fromkeys([*(c for r in runs for c in r), *(r[i:i + 2] for r in runs for i in range(len(r) - 1))]))


def query_terms(text: str) -> list[str]:
    """The terms of :func:`search_terms` a case must hold to contain ``text``: each run's pairs (its character, for
    a one-character run)."""
    return list(dict.fromkeys(t for r in search_runs(text)
                              for t in ([r] if len(r) == 1 else [r[i:i + 2] for i in range(len(r) - 1)])))


def exact_term(text: str) -> bool:
    """Whether PostgreSQL's index alone answers a search for ``text`` exactly: one term (one or two characters, one
    run) without ASCII letters (its LIKE minds their case; the terms are folded)."""
    return exact_search(text) and len(text) <= 2 and not any(c in string.ascii_letters for c in text)


def exact_search(text: str) -> bool:
    """Whether the index alone answers a search for ``text`` exactly (SQLite, migration 15): one run, nothing the
    index leaves out."""
    return bool(text) and _NOT_INDEXED.search(text) is None


GramCondition = Callable[[str], tuple[str, list[Any]]]
"""The store's SQL for "a case whose search text holds this text" led by its gram index (the text's grams all among
the case's, then ``LIKE`` where the index alone is not exact), and its arguments."""
_START = "COALESCE(deadline_from, reported_at)"


def where(query: CaseQuery, now: float, grams: GramCondition | None = None) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of ``query`` at ``now`` (without the cursor), and their arguments; ``grams`` leads a
    text search through the store's gram index (without it the LIKE reads every row)."""
    out: list[str] = []
    args: list[Any] = []
    if query.states:
        out.append(f"state IN ({','.join('?' * len(query.states))})")
        args.extend(query.states)
    if query.unit_ids is not None:
        if not query.unit_ids:
            out.append("1 = 0")
        else:
            out.append(f"unit_id IN ({','.join('?' * len(query.unit_ids))})")
            args.extend(query.unit_ids)
    for column, value in (("street", query.street), ("community", query.community), ("camera_id", query.camera_id)):
        if value is not None:
            out.append(f"{column} = ?")
            args.append(value)
    if query.grid_code is not None:
        out.append("grid_code LIKE ? ESCAPE '\\'")
        args.append(like(query.grid_code)[1:])
    if query.category is not None:
        kind, _, code = query.category.partition("/")
        out.append("kind = ? AND code = ?")
        args.extend((kind, code))
    if query.reported_from is not None:
        out.append("reported_at >= ?")
        args.append(query.reported_from)
    if query.reported_to is not None:
        out.append("reported_at < ?")
        args.append(query.reported_to)
    if query.supervised is not None:
        out.append("supervise_count > 0" if query.supervised else "supervise_count = 0")
    if query.deadline is not None:
        near, near_args = _near(query, now)
        if query.deadline == "overdue":
            out.append("is_open = 1 AND deadline_at < ?")
            args.append(now)
        elif query.deadline == "near":
            out.append(f"is_open = 1 AND deadline_at >= ? AND ({near})")
            args.extend((now, *near_args))
        else:
            out.append(f"is_open = 1 AND deadline_at >= ? AND NOT ({near})")
            args.extend((now, *near_args))
    if query.q:
        if grams is not None and query_grams(query.q):
            sql, sql_args = grams(query.q)
        else:
            sql, sql_args = "search LIKE ? ESCAPE '\\'", [like(query.q)]
        out.append(sql)
        args.extend(sql_args)
    return out, args


def _near(query: CaseQuery, now: float) -> tuple[str, list[Any]]:
    parts: list[str] = []
    args: list[Any] = []
    if query.near_fraction is not None:
        parts.append(f"? - {_START} >= ? * (deadline_at - {_START})")
        args.extend((now, query.near_fraction))
    if query.near_remaining_s is not None:
        parts.append("deadline_at - ? <= ?")
        args.extend((now, query.near_remaining_s))
    return (" OR ".join(parts) or "1 = 0"), args


def only_search(query: CaseQuery, now: float) -> bool:
    """Whether ``query`` filters by nothing but its text and states (the store may then answer from its index)."""
    return bool(query.q) and where(replace(query, q=None, states=(), cursor=None, offset=0), now) == ([], [])


def order(query: CaseQuery, in_order: bool = False) -> tuple[str, str, list[Any]]:
    """(ORDER BY text, the keyset condition after the cursor or "", its arguments). ``in_order``: read in the sort's
    index order even for a text search (a search most cases match, whose page is found in the first rows)."""
    column, direction = SORTS[query.sort]
    # A text search otherwise reads every match: "+ 0" keeps the planner off the date index (which would fetch each
    # fat row in date order) and on the narrow covering index, sorting only the matches.
    by = f"{column}{' + 0' if query.q and not in_order else ''} {direction}, case_no {direction}"
    if query._after is None:
        return by, "", []
    op = "<" if direction == "DESC" else ">"
    return by, f"({column}, case_no) {op} (?, ?)", list(query._after)


def next_cursor(query: CaseQuery, last: dict[str, Any] | None, full_page: bool) -> str | None:
    """The cursor of the page after one ending at ``last`` (None when this page was the last)."""
    if last is None or not full_page:
        return None
    column, _ = SORTS[query.sort]
    return encode_cursor(query.sort, float(last[column]), str(last["case_no"]))


def deadline_stage(case: dict[str, Any], now: float, near_fraction: float | None,
                   near_remaining_s: float | None) -> str | None:
    """``normal`` / ``near`` / ``overdue`` for an open case at ``now``; None for a finished one."""
    if State(case["state"]) in (State.CLOSED, State.REJECTED, State.VOIDED):
        return None
    deadline = float(case["deadline_at"])
    if now > deadline:
        return "overdue"
    start = float(case.get("deadline_from") or case["reported_at"])
    if near_fraction is not None and now - start >= near_fraction * (deadline - start):
        return "near"
    if near_remaining_s is not None and deadline - now <= near_remaining_s:
        return "near"
    return "normal"
