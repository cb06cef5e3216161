// 移动处置 /field: a responsible unit's people on a phone. My unit's cases (待处置 / 已反馈 / 全部, nearest deadline
// first; the server narrows them to the user's units), open one (#<case id>: its place on the site's basemap),
// 导航到现场 (a geo: link the phone's map app opens), 开始处置, then 处置反馈: photos taken with the phone's camera
// (each sent as multipart, resized on the server, the time it was taken kept) and a note; 回退 with a reason when the case is not the unit's. Every step is
// sent with the case version; a case someone else changed meanwhile is shown as it is now.

import { getJSON, send, sendForm } from "./api.js";
import { logout } from "./chrome.js";
import { el } from "./dom.js";
import { dateTimeText, setTimeZone } from "./format.js";
import { askAction, countdown, loadWorkCalendar, photoFigure, stageBadge, timelineRows } from "./case-common.js";
import { showCaseMap } from "./case-map.js";
import { roleLabel } from "./messages.js";

const $ = (id) => document.getElementById(id);
const TABS = { todo: "dispatched,handling,returned", done: "handled,verifying", all: "" };
const state = { tab: "todo", c: null, files: [] };
const now = () => Date.now() / 1000;

function say(text, kind = "warn") {
  $("message").textContent = text;
  $("message").dataset.kind = kind;
}

// ------------------------------------------------------------------------------------------------ list

async function loadList() {
  const states = TABS[state.tab];
  const params = new URLSearchParams({ limit: "100", sort: "deadline", ...(states ? { state: states } : {}) });
  let body;
  try {
    body = await getJSON(`/api/cases?${params}`);
  } catch (err) {
    say(`案件读取失败：${err.message}`);
    return;
  }
  await loadWorkCalendar(body.cases, now());
  const counts = body.counts || {};
  const sum = (list) => list.split(",").reduce((n, s) => n + (counts[s] || 0), 0);
  $("n-todo").textContent = String(sum(TABS.todo));
  $("n-done").textContent = String(sum(TABS.done));
  for (const b of $("tabs").children) b.setAttribute("aria-pressed", String(b.dataset.tab === state.tab));
  const t = now();
  $("cards").replaceChildren(...body.cases.map((c) => {
    const card = el("button", `fd-card ${c.deadline_stage || ""}`,
      el("span", "t", c.title || c.category_name || c.case_no),
      el("span", "a", c.address || ""),
      el("span", "d", el("span", "badge state", c.state_label), stageBadge(c), countdown(c, t),
        c.supervised ? el("span", "badge supervised", "督办") : null));
    card.type = "button";
    card.dataset.caseId = c.id;
    card.addEventListener("click", () => { location.hash = c.id; });
    return card;
  }));
  $("none").hidden = body.cases.length > 0;
  $("none").textContent = { todo: "暂无待处置案件", done: "暂无已反馈、待核查的案件", all: "本单位暂无案件" }[state.tab];
}

// ------------------------------------------------------------------------------------------------ one case

async function openCase(id) {
  let c;
  try {
    c = await getJSON(`/api/cases/${encodeURIComponent(id)}`);
  } catch (err) {
    say(err.status === 404 ? "找不到该案件（或不属于本单位）" : `案件读取失败：${err.message}`);
    location.hash = "";
    return;
  }
  await loadWorkCalendar([c], now());
  state.c = c;
  document.body.dataset.caseId = c.id;
  document.body.dataset.state = c.state;
  $("list-view").hidden = true;
  $("case-view").hidden = false;
  document.body.classList.add("in-case");
  $("back").hidden = false;
  $("title").textContent = c.case_no;
  $("c-no").textContent = `${c.case_no} · ${c.kind || ""} ${c.code || ""}`;
  $("c-title").textContent = c.title || c.category_name || "";
  $("c-badges").replaceChildren(...[el("span", "badge state", c.state_label), stageBadge(c),
    c.urgency === "紧急" ? el("span", "badge overdue", "紧急") : null,
    c.supervised ? el("span", "badge supervised", `督办 ×${c.supervise_count}`) : null].filter(Boolean));
  $("c-due").textContent = `${countdown(c, now())} · 截止 ${dateTimeText(c.deadline_at)}`;
  $("c-addr").textContent = `地点：${c.address || "—"}${c.street ? ` · ${c.street}` : ""}${c.community ? ` · ${c.community}` : ""}`;
  const nav = $("c-nav");
  nav.hidden = !c.location;
  if (c.location) nav.href = c.location.geo;
  showCaseMap($("c-map-panel"), $("c-map"), $("c-map-legend"), c);
  const pictures = (c.alarm_evidence_urls || []).filter((u) => /\.(jpe?g|png)$/i.test(u || ""));
  $("c-evidence").replaceChildren(...pictures.slice(0, 2).map((u) => photoFigure(u, "告警截图")));
  const dispatch = (c.timeline || []).filter((e) => e.action === "dispatch").pop();
  $("c-instructions").textContent = dispatch && dispatch.note ? `派遣：${dispatch.note}` : "";
  const allowed = new Set((c.allowed_actions || []).map((a) => a.action));
  $("start").hidden = !allowed.has("start");
  $("feedback").hidden = !allowed.has("feedback");
  $("return").hidden = !allowed.has("return");
  const done = !allowed.size;
  $("c-done").hidden = !done;
  $("c-done").textContent = done ? `本案现为「${c.state_label}」，本单位暂无需办理` : "";
  $("c-timeline").replaceChildren(...timelineRows(c));
  window.scrollTo(0, 0);
}

function closeCase() {
  state.c = null;
  state.files = [];
  $("previews").replaceChildren();
  $("fb-note").value = "";
  $("photo").value = "";
  $("fb-error").textContent = "";
  $("case-view").hidden = true;
  $("list-view").hidden = false;
  document.body.classList.remove("in-case");
  $("back").hidden = true;
  $("title").textContent = "我的案件";
  delete document.body.dataset.caseId;
  return loadList();
}

/** Send ``action`` with the case version; a 409 shows the case as it is now. */
async function act(action, extra = {}) {
  const c = state.c;
  const r = await send("POST", `/api/cases/${encodeURIComponent(c.id)}/actions`, { action, version: c.version, ...extra });
  if (r.ok) {
    say(`${c.case_no}：${r.data.case.state_label}`, "ok");
  } else if (r.status === 409) {
    say("案件已被他人处理，已显示最新状态，请核对后再操作");
  } else {
    say(`未能完成：${r.message}`);
  }
  await openCase(c.id);
  return r.ok;
}

function pickPhotos() {
  state.files = [...$("photo").files];
  $("previews").replaceChildren(...state.files.map((f) => {
    const img = el("img");
    img.src = URL.createObjectURL(f);
    img.alt = f.name;
    return el("figure", "", img, el("figcaption", "", `${f.name} · ${(f.size / 1048576).toFixed(1)} MB`));
  }));
}

async function submitFeedback(ev) {
  ev.preventDefault();
  const c = state.c;
  const note = $("fb-note").value.trim();
  $("fb-error").textContent = "";
  if (!note && !state.files.length) { $("fb-error").textContent = "请拍照或填写处置情况"; return; }
  $("submit").disabled = true;
  try {
    for (const [i, file] of state.files.entries()) {
      $("submit").textContent = `正在上传照片 ${i + 1}/${state.files.length}……`;
      const form = new FormData();
      form.append("photo", file, file.name || "photo.jpg");
      const r = await sendForm(`/api/cases/${encodeURIComponent(c.id)}/photos`, form);
      if (!r.ok) {
        $("fb-error").textContent = `照片「${file.name}」未能上传：${r.data.error_zh || r.message}`;
        return;
      }
    }
    state.files = [];
    $("previews").replaceChildren();
    $("photo").value = "";
    const fresh = await getJSON(`/api/cases/${encodeURIComponent(c.id)}`);  // the photos moved the version on
    state.c = fresh;
    if (await act("feedback", note ? { note } : {})) $("fb-note").value = "";
  } finally {
    $("submit").disabled = false;
    $("submit").textContent = "提交处置反馈";
  }
}

async function route() {
  const id = decodeURIComponent(location.hash.replace(/^#/, ""));
  if (id) await openCase(id);
  else await closeCase();  // the list loaded before the page says it is ready
}

async function main() {
  let me;
  try {
    me = await getJSON("/api/me");
  } catch (err) {
    return;
  }
  setTimeZone(me.timezone);
  const out = el("button", "", "退出");
  out.type = "button";
  out.addEventListener("click", logout);
  $("user").replaceChildren(`${me.user.display_name || me.user.username} · ${roleLabel(me.user.role)}`, out);
  for (const b of $("tabs").children) b.addEventListener("click", () => { state.tab = b.dataset.tab; loadList(); });
  $("back").addEventListener("click", () => { location.hash = ""; });
  $("start").addEventListener("click", () => act("start"));
  $("return").addEventListener("click", async () => {
    const extra = await askAction(state.c, "return", "回退");
    if (extra) await act("return", extra);
  });
  $("photo").addEventListener("change", pickPhotos);
  $("feedback").addEventListener("submit", submitFeedback);
  window.addEventListener("hashchange", route);
  await route();
  setInterval(() => { if (!state.c) loadList(); }, 30000);
  document.body.dataset.ready = "1";
}

main();
