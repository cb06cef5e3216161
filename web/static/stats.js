// Leader's statistics view over GET /api/stats: filters in the URL (so a view can be bookmarked), KPI tiles,
// an SVG bar chart of 结案率 and 按期结案率 per group, the full table, CSV/XLSX downloads of the same query.

import { getJSON } from "./api.js";
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

async function show() {
  const params = query();
  history.replaceState(null, "", `?${params}`);
  for (const fmt of ["csv", "xlsx"]) $(fmt).href = `/api/stats?${params}&format=${fmt}`;
  $("daily").href = `/report/daily?date=${params.get("to")}`;
  try {
    const body = await getJSON(`/api/stats?${params}`);
    $("message").textContent = body.cases ? "" : "该时段没有案件 (no cases in this period)";
    renderKpis(body.total);
    renderChart(body.rows);
    renderTable(body);
    document.body.dataset.ready = "1";
  } catch (err) {
    $("message").textContent = err.message;
  }
}

async function main() {
  const me = await getJSON("/api/me").catch(() => null);
  if (!me) return;
  installChrome(me);
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
