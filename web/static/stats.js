// Leader's statistics view over GET /api/stats: filters in the URL (so a view can be bookmarked), KPI tiles,
// an SVG bar chart of 结案率 and 按期结案率 per group, the full table, CSV/XLSX downloads of the same query.

import { ApiError, getJSON } from "./api.js";
import { installChrome } from "./chrome.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const COUNTS = [["registered", "立案数"], ["due", "应结案数"], ["closed", "结案数"], ["closed_on_time", "按期结案数"],
                ["to_handle", "应处置数"], ["handled", "处置数"], ["reworked", "返工数"]];
const RATES = [["close_rate", "结案率"], ["on_time_rate", "按期结案率"], ["handle_rate", "处置率"],
               ["rework_rate", "返工率"]];
const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function query() {
  const form = new FormData($("filters"));
  const params = new URLSearchParams();
  for (const key of ["by", "period", "from", "to"]) params.set(key, form.get(key));
  return params;
}

function renderKpis(total) {
  $("kpis").replaceChildren(...[["立案数", String(total.registered)], ...RATES.map(([k, label]) => [label, pct(total[k])])]
    .map(([label, value]) => el("div", "kpi", el("div", "v", value), el("div", "k", label))));
}

function renderChart(rows) {
  const chart = $("chart");
  const barH = 16, gap = 14, left = 260, width = 1000, top = 10;
  const height = Math.max(60, top + rows.length * (2 * barH + gap) + 20);
  chart.setAttribute("viewBox", `0 0 ${width + 80} ${height}`);
  const nodes = [];
  for (const tick of [0, 0.5, 1]) {
    const x = left + tick * (width - left);
    nodes.push(svg("line", { class: "grid", x1: x, x2: x, y1: 0, y2: height - 18 }),
               svg("text", { x, y: height - 2, "text-anchor": "middle" }, `${tick * 100}%`));
  }
  rows.forEach((row, i) => {
    const y = top + i * (2 * barH + gap);
    nodes.push(svg("text", { x: left - 10, y: y + barH + 4, "text-anchor": "end" }, row.label.slice(0, 18)));
    [["close_rate", "bar-close", 0], ["on_time_rate", "bar-ontime", barH]].forEach(([key, cls, dy]) => {
      const v = row[key];
      const w = v === null ? 0 : v * (width - left);
      const bar = svg("rect", { class: `bar ${cls}`, x: left, y: y + dy, width: w, height: barH - 2 });
      bar.dataset.key = row.key;
      bar.dataset.rate = key;
      nodes.push(bar, svg("text", { x: left + w + 6, y: y + dy + barH - 4 }, pct(v)));
    });
  });
  chart.replaceChildren(...nodes);
}

function renderTable(body) {
  const table = $("table");
  table.tHead.replaceChildren(el("tr", "", el("th", "", body.by_label),
    ...COUNTS.map(([, h]) => el("th", "", h)), ...RATES.map(([, h]) => el("th", "", h))));
  table.tBodies[0].replaceChildren(...[...body.rows, body.total].map((row) => {
    const tr = el("tr", row === body.total ? "total" : "", el("td", "", row.label),
      ...COUNTS.map(([k]) => el("td", "", String(row[k]))), ...RATES.map(([k]) => el("td", "", pct(row[k]))));
    tr.dataset.key = row.key;
    return tr;
  }));
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const ALARM_PAGES = 20;          // at most 20 × 500 alarms counted per query (the figure says "≥" past that)

/** Midnight of a YYYY-MM-DD day in the site's timezone, as unix seconds (the server's own reading). */
function dayStart(text, tz) {
  const guess = Date.parse(`${text}T00:00:00Z`) / 1000;
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", hour: "numeric", minute: "numeric" })
    .formatToParts(new Date(guess * 1000));
  const h = +parts.find((p) => p.type === "hour").value;
  const m = +parts.find((p) => p.type === "minute").value;
  const offset = (h >= 12 ? h - 24 : h) * 3600 + m * 60;   // the zone's offset from UTC at that moment
  return guess - offset;
}

/** Alarms, false positives and broadcasts in the period: the alarm stream paged by time (/api/alarms?since&until),
 *  the review desk's rejections among recent items, the broadcast log. */
async function renderEventFigures(from, to) {
  const since = dayStart(from, tz);
  const until = dayStart(to, tz) + 86400 - 0.001;
  let raised = 0;
  let cleared = 0;
  let cursor = "";
  let capped = false;
  try {
    for (let i = 0; ; i += 1) {
      if (i === ALARM_PAGES) { capped = true; break; }
      const body = await getJSON(`/api/alarms?limit=500&since=${since}&until=${until}${cursor}`);
      for (const a of body.alarms) {
        if (a.phase === "cleared") cleared += 1; else raised += 1;
      }
      if (!body.older) break;
      cursor = `&before=${encodeURIComponent(body.older)}`;
    }
  } catch (err) {
    raised = null;
  }
  let rejected = null;
  try { rejected = (await getJSON("/api/review")).counts.rejected; } catch (_) { /* not a reviewer's role */ }
  let broadcasts = null;
  let manual = null;
  try {
    const log = (await getJSON("/api/broadcasts?limit=500")).broadcasts.filter((b) => b.at >= since && b.at <= until);
    broadcasts = log.filter((b) => b.status === "played" || b.status === "partial").length;
    manual = log.filter((b) => b.source === "manual").length;
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 503)) console.warn(err);
  }
  const show = (v) => (v === null ? "—" : String(v));
  $("event-kpis").replaceChildren(
    kpiTile(raised === null ? "—" : `${capped ? "≥" : ""}${raised}`, "告警数", "alarms"),
    kpiTile(show(cleared), "现场已恢复", "cleared"),
    kpiTile(show(rejected), "误报驳回（近期）", "false positives (recent)"),
    kpiTile(show(broadcasts), "语音广播", "broadcasts played"),
    kpiTile(show(manual), "人工喊话", "manual"));
}

function kpiTile(value, label, en) {
  const tile = el("div", "kpi", el("div", "v", value), el("div", "k", label, el("span", "en", ` ${en}`)));
  tile.dataset.k = en;
  return tile;
}

let tz = "Asia/Shanghai";

async function show() {
  const params = query();
  if (!DATE.test(params.get("from")) || !DATE.test(params.get("to"))) {
    $("message").textContent = "日期格式应为 年-月-日，例 2026-03-01";
    return;
  }
  history.replaceState(null, "", `?${params}`);
  for (const fmt of ["csv", "xlsx"]) $(fmt).href = `/api/stats?${params}&format=${fmt}`;
  $("daily").href = `/report/daily?date=${params.get("to")}`;
  try {
    const body = await getJSON(`/api/stats?${params}`);
    $("message").textContent = body.cases ? "" : "该时段没有案件 (no cases in this period)";
    renderKpis(body.total);
    renderChart(body.rows);
    renderTable(body);
    await renderEventFigures(params.get("from"), params.get("to"));
    document.body.dataset.ready = "1";
  } catch (err) {
    $("message").textContent = err.message;
  }
}

async function main() {
  const me = await getJSON("/api/me").catch(() => null);
  if (!me) return;
  installChrome(me);
  tz = me.timezone || tz;
  const form = $("filters");
  const url = new URLSearchParams(location.search);
  const today = new Intl.DateTimeFormat("en-CA", { timeZone: me.timezone }).format(new Date());
  const monthAgo = new Date(Date.now() - 29 * 86400000);
  form.elements.from.value = url.get("from") || new Intl.DateTimeFormat("en-CA", { timeZone: me.timezone }).format(monthAgo);
  form.elements.to.value = url.get("to") || today;
  form.elements.by.value = url.get("by") || "unit";
  form.elements.period.value = url.get("period") || "day";
  form.addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
  form.addEventListener("change", () => show());
  await show();
}

main();
