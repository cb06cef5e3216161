"""``GET /report/daily?date=YYYY-MM-DD``: the daily operations report (城市运行日报) as a printable HTML page; and
``GET /stats``, the leader's statistics page (web/static/stats.*, over ``/api/stats``).

Server-rendered (every value through ``html.escape``) so it prints the same from any browser (A4 portrait,
``@media print``). Figures: the day's cases by unit and by category with the five evaluation figures
(``cases.stats``), the day's totals, and the open cases that are overdue at the time the report is made.
Login required: without a session the browser is sent to ``/login?next=...``.
"""

from __future__ import annotations

import asyncio
import html
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web

import web as web_assets
from cases.stats import COUNT_COLUMNS, RATE_COLUMNS, StatsTable, compute_stats
from wall import state
from wall.auth import SESSION
from wall.errors import BadRequest
from wall.pages import PAGE_HEADERS

WEEKDAYS = "一二三四五六日"
MAX_OVERDUE = 30

_CSS = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; color: #111; background: #fff; margin: 2rem;
  font-size: 15px; }
h1 { font-size: 1.8rem; margin: 0 0 0.2rem; text-align: center; letter-spacing: 0.1em; }
.sub { text-align: center; color: #444; margin-bottom: 1.2rem; }
h2 { font-size: 1.2rem; border-left: 6px solid #b91c1c; padding-left: 0.5rem; margin: 1.4rem 0 0.5rem; }
.kpis { display: grid; grid-template-columns: repeat(5, 1fr); gap: 0.6rem; }
.kpi { border: 1px solid #999; padding: 0.5rem; text-align: center; }
.kpi b { display: block; font-size: 1.8rem; }
table { width: 100%; border-collapse: collapse; }
th, td { border: 1px solid #888; padding: 0.25rem 0.4rem; text-align: right; }
th { background: #eee; }
td:first-child, th:first-child { text-align: left; }
tr.total td { font-weight: 700; background: #f6f6f6; }
.none { color: #666; }
.foot { margin-top: 1.5rem; color: #555; font-size: 0.85rem; display: flex; justify-content: space-between; }
.print { position: fixed; top: 1rem; right: 1rem; font-size: 1rem; padding: 0.4rem 1rem; }
@media print { .print { display: none; } body { margin: 0; } @page { size: A4 portrait; margin: 15mm; } }
"""


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def _table(table: StatsTable, first: str) -> str:
    if not table.rows:
        return '<p class="none">当日无立案 (no cases registered)</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [first, *(h for _, h, _ in COUNT_COLUMNS),
                                                         *(h for _, h, _ in RATE_COLUMNS)])
    body = []
    for row in [*table.rows, table.total]:
        cells = [html.escape(row.label), *(str(getattr(row, k)) for k, _, _ in COUNT_COLUMNS),
                 *(_pct(getattr(row, k)) for k, _, _ in RATE_COLUMNS)]
        cls = ' class="total"' if row is table.total else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render(site: str, day: date, cases: list[dict[str, Any]], overdue: list[dict[str, Any]], open_total: int,
           now: float, tz: ZoneInfo) -> str:
    """The report page for ``day`` from the day's cases and the open overdue ones, judged at ``now``."""
    by_unit = compute_stats(cases, now=now, by="unit", tz=tz)
    by_cat = compute_stats(cases, now=now, by="category", tz=tz)
    t = by_unit.total
    made = datetime.fromtimestamp(now, tz)
    kpis = [("新增立案", str(t.registered)), ("结案", str(t.closed)), ("结案率", _pct(t.close_rate)),
            ("办理中（全部）", str(open_total)), ("超期未结（全部）", str(len(overdue)))]
    rows = []
    for c in overdue[:MAX_OVERDUE]:
        due = datetime.fromtimestamp(float(c["deadline_at"]), tz)
        late_h = (now - float(c["deadline_at"])) / 3600
        href = f'/cases/{quote(str(c.get("id") or ""), safe="")}'
        link = f'<td><a href="{href}">{html.escape(str(c.get("case_no")))}</a></td>'
        rows.append("<tr>" + link + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            c.get("title"), c.get("state_label"), c.get("unit_name"),
            due.strftime("%m-%d %H:%M"), f"{late_h:.1f} 小时")) + "</tr>")
    overdue_html = ('<table><thead><tr><th>案件编号</th><th>案件</th><th>状态</th><th>责任单位</th><th>截止</th>'
                    f"<th>已超期</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
                    if rows else '<p class="none">无超期未结案件 (none overdue)</p>')
    more = (f'<p class="none">另有 {len(overdue) - MAX_OVERDUE} 件未列出</p>' if len(overdue) > MAX_OVERDUE else "")
    title = f"{site} 城市运行日报"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)} {day.isoformat()}</title>
<style>{_CSS}</style></head>
<body data-date="{day.isoformat()}">
<button class="print" type="button" onclick="window.print()">打印 Print</button>
<h1>{html.escape(title)}</h1>
<div class="sub">{day.year}年{day.month}月{day.day}日 星期{WEEKDAYS[day.weekday()]} · Daily operations report</div>
<h2>当日概况</h2>
<div class="kpis">{''.join(f'<div class="kpi"><b>{html.escape(v)}</b>{html.escape(k)}</div>' for k, v in kpis)}</div>
<h2>按责任单位</h2>
<div id="by-unit">{_table(by_unit, "责任单位")}</div>
<h2>按案件类别</h2>
<div id="by-category">{_table(by_cat, "案件类别")}</div>
<h2>超期未结案件</h2>
<div id="overdue">{overdue_html}{more}</div>
<p class="none"><a href="/cases?from={day.isoformat()}&amp;to={day.isoformat()}">当日全部案件 →</a>
  <a href="/cases?deadline=overdue&amp;sort=deadline">全部超期案件 →</a></p>
<div class="foot"><span>统计口径：当日上报并立案的案件；结案率 = 结案数/应结案数，按期结案率 = 按期结案数/应结案数，
处置率 = 处置数/应处置数，返工率 = 返工数/处置数。</span><span>生成时间 {made.strftime('%Y-%m-%d %H:%M')}</span></div>
</body></html>"""


def _gather(store: Any, start: float, end: float, now: float) -> tuple[list[dict], list[dict], int]:
    day_cases: list[dict] = []
    while True:
        page, _ = store.list_cases(reported_from=start, reported_to=end, limit=500, offset=len(day_cases), now=now)
        day_cases.extend(page)
        if len(page) < 500:
            break
    open_cases: list[dict] = []
    while True:
        page, total = store.list_cases(open_only=True, limit=500, offset=len(open_cases), now=now)
        open_cases.extend(page)
        if len(page) < 500 or len(open_cases) >= 20_000:
            break
    overdue = sorted((c for c in open_cases if c["overdue"] and c["state"] != "suspended"),
                     key=lambda c: c["deadline_at"])
    return day_cases, overdue, total


async def stats_page(request: web.Request) -> web.StreamResponse:
    """The leader's statistics view (web/static/stats.html); login required."""
    if request.get(SESSION) is None:
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
    return web.FileResponse(web_assets.STATIC_DIR / "stats.html",
                            headers={**PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"})


async def daily_report(request: web.Request) -> web.StreamResponse:
    if request.get(SESSION) is None:
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")
    app = request.app
    settings = app[state.SETTINGS]
    tz = ZoneInfo(settings.timezone)
    now = app[state.CLOCK]()
    raw = request.query.get("date")
    if raw:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise BadRequest("date", f"must be a date YYYY-MM-DD, got {raw[:40]!r}") from None
        if not date(1970, 1, 2) <= day <= date(9998, 12, 31):  # no day after 9999-12-31 (once a 500)
            raise BadRequest("date", f"must be between 1970-01-02 and 9998-12-31, got {raw[:40]}")
    else:
        day = datetime.fromtimestamp(now, tz).date()
    start = datetime.combine(day, dt_time(0), tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), dt_time(0), tz).timestamp()
    day_cases, overdue, open_total = await asyncio.to_thread(_gather, app[state.CASES], start, end, now)
    page = render(settings.site_name, day, day_cases, overdue, open_total, now, tz)
    return web.Response(text=page, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/report/daily", daily_report)
    app.router.add_get("/stats", stats_page)
