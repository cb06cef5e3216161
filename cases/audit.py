"""The audit log's record and query shapes: who did which control action to what, from where, when, with which
outcome. Stored append-only in the case store (``audit_log``, migration 6; triggers refuse UPDATE and DELETE on
SQLite and PostgreSQL); written by the wall server's access middleware and searched by the admin
(``GET /api/audit``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_TEXT = 200
"""Longest actor/action/target/client text kept (longer is cut)."""
MAX_DETAILS = 4000
"""Longest details JSON kept (longer is replaced by a note saying so)."""
MAX_PAGE = 500


@dataclass(frozen=True)
class AuditEntry:
    """One control action. ``outcome`` is the HTTP status answered (200 done, 403 refused, 409 conflict …)."""

    at: float
    actor: str
    role: str
    action: str
    target: str = ""
    outcome: int = 200
    client: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None

    def row(self) -> tuple[Any, ...]:
        """Column values for ``INSERT`` (texts cut to :data:`MAX_TEXT`, details to :data:`MAX_DETAILS`)."""
        details = json.dumps(self.details, ensure_ascii=False, separators=(",", ":"), default=str)
        if len(details) > MAX_DETAILS:
            details = json.dumps({"truncated": True, "chars": len(details)})
        return (self.at, self.actor[:MAX_TEXT], self.role[:MAX_TEXT], self.action[:MAX_TEXT],
                self.target[:MAX_TEXT], int(self.outcome), self.client[:MAX_TEXT], details)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditQuery:
    """Filters for a search: exact actor/action/outcome, target prefix, time range, free text."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None
    q: str | None = None
    outcome: int | None = None
    """HTTP status answered (403: refused)."""
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit: must be 1..{MAX_PAGE}, got {self.limit}")
        if self.offset < 0:
            raise ValueError(f"offset: must be >= 0, got {self.offset}")
        if self.since is not None and self.until is not None and self.until < self.since:
            raise ValueError(f"until: {self.until} is before since ({self.since})")


COLUMNS = ("seq", "at", "actor", "role", "action", "target", "outcome", "client", "details")


def chain_hash(prev_hash: str, row: tuple[Any, ...]) -> str:
    """The row's link in the hash chain (migration 8): sha256 of the previous row's hash and this row's stored
    values (``AuditEntry.row()``), so a row changed or removed behind the triggers' back breaks the chain."""
    body = json.dumps([prev_hash, *row], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """What :meth:`cases.store.CaseStore.verify_audit` found."""

    ok: bool
    rows: int
    """Rows checked (chained ones; rows written before migration 8 carry no hash and are counted in ``unchained``)."""
    unchained: int = 0
    first_bad_seq: int | None = None
    reason: str = ""


def entry_from_row(row: tuple[Any, ...]) -> AuditEntry:
    seq, at, actor, role, action, target, outcome, client, details = row
    return AuditEntry(seq=int(seq), at=float(at), actor=actor, role=role, action=action, target=target,
                      outcome=int(outcome), client=client, details=json.loads(details or "{}"))
