// 案件办理 /cases: the desk's case list. Filters live in the URL (a list can be bookmarked and shared); tabs per
// state with the counts of the same filters; keyset pages (加载更多 asks for the rows after the last one); J/K move,
// Enter opens the case, / searches; case events on the event socket refresh the loaded rows in place.

import { getJSON, checkSession } from "./api.js";
import { installChrome, linkState } from "./chrome.js";
import { el } from "./dom.js";
import { EventSocket } from "./events.js";
import { dateTimeText, setTimeZone } from "./format.js";
import { countdown, FINISHED, loadWorkCalendar, stageBadge } from "./case-common.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const FIELDS = ["q", "category", "unit_id", "street", "community", "grid", "camera_id", "deadline", "from", "to", "sort",
  "supervised"];
const state = { options: null, tab: "", cases: [], cursor: null, selected: 0, counts: {}, total: 0, loading: null,
  refreshTimer: 0, fresh: new Set() };
const now = () => Date.now() / 1000;

function say(text, kind = "warn") {
  $("message").textContent = text;
  $("message").dataset.kind = kind;
}

function fill(select, items) {
  for (const item of items) {
    const o = el("option", "", typeof item === "string" ? item : item.label);
    o.value = typeof item === "string" ? item : item.value;
    select.append(o);
  }
}

/** The form and tab as the API's query (only what is set). */
function query() {
  const form = $("filters");
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const input = form.elements[name];
    const value = input.type === "checkbox" ? (input.checked ? "1" : "") : input.value.trim();
    if (value) params.set(name, value);
  }
  if (state.tab) params.set("state", state.tab);
  return params;
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  const form = $("filters");
  for (const name of FIELDS) {
    const input = form.elements[name];
    const value = params.get(name) || "";
    if (input.type === "checkbox") input.checked = value === "1";
    else if (value) input.value = value;
  }
  state.tab = params.get("state") || "";
}

async function load({ keep = false } = {}) {
  const params = query();
  history.replaceState(null, "", `/cases${params.toString() ? `?${params}` : ""}`);
  const wanted = keep ? Math.min(500, Math.max(PAGE, state.cases.length)) : PAGE;
  params.set("limit", String(wanted));
  const selectedId = keep && state.cases[state.selected] ? state.cases[state.selected].id : null;
  const run = getJSON(`/api/cases?${params}`);
  state.loading = run;
  let body;
  try {
    body = await run;
  } catch (err) {
    if (state.loading === run) say(`案件列表读取失败：${err.message}`);
    return;
  }
  if (state.loading !== run) return;  // a newer query answered first
  await loadWorkCalendar(body.cases, Date.now() / 1000);
  if (state.loading !== run) return;
  say("");
  state.cases = body.cases;
  state.cursor = body.next_cursor;
  state.counts = body.counts;
  state.total = body.total;
  const again = selectedId ? state.cases.findIndex((c) => c.id === selectedId) : -1;
  state.selected = again >= 0 ? again : 0;
  render();
}

async function more() {
  if (!state.cursor) return;
  const params = query();
  params.set("limit", String(PAGE));
  params.set("cursor", state.cursor);
  try {
    const body = await getJSON(`/api/cases?${params}`);
    await loadWorkCalendar(body.cases, Date.now() / 1000);
    state.cases = state.cases.concat(body.cases);
    state.cursor = body.next_cursor;
    render();
  } catch (err) {
    say(`加载更多失败：${err.message}`);
  }
}

function renderTabs() {
  const all = Object.values(state.counts).reduce((a, b) => a + b, 0);
  const tabs = [["", "全部", all], ...state.options.states.map((s) => [s.value, s.label, state.counts[s.value] || 0])];
  $("tabs").replaceChildren(...tabs.map(([value, label, n], i) => {
    const b = el("button", "co-tab", i < 9 ? el("kbd", "", String(i + 1)) : null, ` ${label}`, el("b", "", String(n)));
    b.type = "button";
    b.dataset.state = value;
    b.setAttribute("aria-pressed", String(state.tab === value));
    b.addEventListener("click", () => { state.tab = value; load(); });
    return b;
  }));
}

function render() {
  renderTabs();
  const t = now();
  $("rows").replaceChildren(...state.cases.map((c, i) => {
    const row = el("tr", "row",
      el("td", "no", c.case_no),
      el("td", "", el("span", "title", c.title || c.category_name || ""),
        el("span", "sub", `${c.kind || ""} ${c.code || ""} ${c.category_name || ""}${c.urgency === "紧急" ? " · 紧急" : ""}`)),
      el("td", "", el("span", "badge state", c.state_label || c.state),
        c.supervised ? el("span", "badge supervised", ` 督办×${c.supervise_count}`) : null),
      el("td", "", stageBadge(c), el("span", "sub", countdown(c, t))),
      el("td", "", c.unit_name || "未派遣"),
      el("td", "", c.address || "", el("span", "sub", [c.street, c.community].filter(Boolean).join(" · "))),
      el("td", "", dateTimeText(c.reported_at)));
    row.dataset.caseId = c.id;
    row.dataset.state = c.state;
    row.classList.toggle("finished", FINISHED.has(c.state));
    row.classList.toggle("fresh", state.fresh.has(c.id));
    row.setAttribute("aria-selected", String(i === state.selected));
    row.addEventListener("click", () => { state.selected = i; open(); });
    return row;
  }));
  state.fresh.clear();
  $("empty").hidden = state.cases.length > 0;
  // filters or a search: say how to widen it; none: there simply are no cases (yet)
  const narrowed = [...query().keys()].some((k) => k !== "sort");
  $("empty").replaceChildren(narrowed ? "没有符合条件的案件，按 C 清除筛选 " : "暂无案件 ",
    el("span", "en", narrowed ? "No cases match — C clears the filters" : "No cases yet"));
  $("more").hidden = !state.cursor;
  $("summary").replaceChildren(`共 `, el("b", "", String(state.total)), ` 件，已显示 ${state.cases.length} 件`);
  document.body.dataset.count = String(state.cases.length);
  document.body.dataset.total = String(state.total);
}

function select(step) {
  if (!state.cases.length) return;
  state.selected = Math.max(0, Math.min(state.cases.length - 1, state.selected + step));
  for (const row of $("rows").children) row.setAttribute("aria-selected", "false");
  const row = $("rows").children[state.selected];
  row.setAttribute("aria-selected", "true");
  row.scrollIntoView({ block: "nearest" });
  if (step > 0 && state.selected === state.cases.length - 1 && state.cursor) more();
}

function open() {
  const c = state.cases[state.selected];
  if (c) location.assign(`/cases/${encodeURIComponent(c.id)}`);
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement;
  if (typing) {
    if (ev.key === "Escape") ev.target.blur();
    return;
  }
  const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  if (key === "j" || key === "ArrowDown") { ev.preventDefault(); select(1); }
  else if (key === "k" || key === "ArrowUp") { ev.preventDefault(); select(-1); }
  else if (key === "Enter") { ev.preventDefault(); open(); }
  else if (key === "/") { ev.preventDefault(); $("q").focus(); $("q").select(); }
  else if (key === "m") { ev.preventDefault(); more(); }
  else if (key === "r") { ev.preventDefault(); load({ keep: true }); }
  else if (key === "c") { ev.preventDefault(); $("clear").click(); }
  else if (/^[1-9]$/.test(key)) {
    const tab = $("tabs").children[Number(key) - 1];
    if (tab) { ev.preventDefault(); tab.click(); }
  }
}

/** A case changed somewhere: refresh the rows shown (debounced; a burst of events is one reload). */
function onFrame(msg) {
  if (msg.type !== "case") return;
  const id = msg.case_id || (msg.case && msg.case.id);
  if (id) state.fresh.add(id);
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => load({ keep: true }), 400);
}

async function main() {
  let me;
  try {
    me = await getJSON("/api/me");
  } catch (err) {
    return;
  }
  setTimeZone(me.timezone);
  installChrome(me);
  state.options = await getJSON("/api/case-filters");
  const form = $("filters");
  fill(form.elements.category, state.options.categories);
  fill(form.elements.unit_id, state.options.units);
  fill(form.elements.street, state.options.streets);
  fill(form.elements.community, state.options.communities);
  fill(form.elements.camera_id, state.options.cameras);
  fill(form.elements.deadline, state.options.deadline);
  fill(form.elements.sort, state.options.sorts);
  fromUrl();
  let typing = 0;
  form.addEventListener("input", (ev) => {
    clearTimeout(typing);
    typing = setTimeout(() => load(), ev.target.name === "q" || ev.target.name === "grid" ? 300 : 0);
  });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  $("clear").addEventListener("click", () => { form.reset(); state.tab = ""; load(); });
  $("more").addEventListener("click", more);
  document.addEventListener("keydown", onKey);
  await load();
  if (me.user.role !== "unit") {  // the event socket is the centre's (a unit user's list is refreshed by R)
    const socket = new EventSocket({ onFrame, onStatus: linkState, checkSession });
    socket.start();
  }
  document.body.dataset.ready = "1";
}

main();
