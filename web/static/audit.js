// The admin's audit log over GET /api/audit: filters in the URL (a view can be bookmarked), newest first, paged.
// Keys: "/" focuses the text search, "[" newer page, "]" older page.

import { ApiError, getJSON } from "./api.js";
import { installChrome } from "./chrome.js";
import { el } from "./dom.js";
import { setTimeZone, timeText } from "./format.js";

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const FIELDS = ["actor", "action", "target", "outcome", "since", "until", "q"];
const ROLES = { watch_officer: "值班员", monitor: "监控员", leader: "指挥长", admin: "管理员" };
let offset = 0;
let total = 0;

function params() {
  const form = new FormData($("filters"));
  const out = new URLSearchParams();
  for (const key of FIELDS) {
    const value = String(form.get(key) || "").trim();
    if (value) out.set(key, value);
  }
  return out;
}

function row(e) {
  const refused = e.outcome === 403 || e.outcome === 401;
  const tr = el("tr", refused ? "refused" : "",
    el("td", "", timeText(e.at, Date.now() / 1000)), el("td", "", e.actor),
    el("td", "", ROLES[e.role] ? `${ROLES[e.role]} ${e.role}` : e.role), el("td", "", e.action),
    el("td", "", e.target), el("td", "", String(e.outcome)), el("td", "", e.client),
    el("td", "details", JSON.stringify(e.details)));
  return tr;
}

async function load() {
  const query = params();
  history.replaceState(null, "", `?${query}`);
  query.set("limit", String(PAGE));
  query.set("offset", String(offset));
  try {
    const body = await getJSON(`/api/audit?${query}`);
    total = body.total;
    $("table").tBodies[0].replaceChildren(...body.entries.map(row));
    $("page").textContent = total ? `${offset + 1}–${offset + body.entries.length} / ${total}` : "无记录 / none";
    $("message").textContent = "";
  } catch (err) {
    $("message").textContent = err instanceof ApiError && err.status === 403
      ? "只有管理员可以查看审计日志 / Only the administrator may read the audit log" : `出错：${err.message}`;
  }
  $("prev").disabled = offset === 0;
  $("next").disabled = offset + PAGE >= total;
}

function page(step) {
  const next = offset + step * PAGE;
  if (next < 0 || next >= Math.max(total, 1)) return;
  offset = next;
  load();
}

async function main() {
  const me = await getJSON("/api/me").catch(() => null);
  if (me) { setTimeZone(me.timezone); installChrome(me); }
  const initial = new URLSearchParams(location.search);
  for (const key of FIELDS) {
    const input = $("filters").elements[key];
    if (input && initial.has(key)) input.value = initial.get(key);
  }
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); offset = 0; load(); });
  $("prev").addEventListener("click", () => page(-1));
  $("next").addEventListener("click", () => page(1));
  document.addEventListener("keydown", (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(ev.target?.tagName || "")) return;
    if (ev.key === "/") { ev.preventDefault(); $("filters").elements.q.focus(); }
    else if (ev.key === "[") page(-1);
    else if (ev.key === "]") page(1);
  });
  await load();
  document.body.dataset.ready = "1";
}

main();
