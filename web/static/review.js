// Review console: work the queue of raised alarms with the keyboard. The server hands out items with a lease
// (POST /api/review/claim), so two reviewers never see the same item as theirs; a decision without the claim is
// refused (409) and shown. After a confirmation the new case is shown with its timeline and the actions this
// role may take (sent with the case version: if someone else acted first the 409 answer shows the case as it is).
// Each item says how the filing policy treats it: 待复核立案 (held: no case until confirmed) or 已自动立案 with the
// case number. A leader also gets 督办 (supervise, key D) on an open case.

import { getJSON, send } from "./api.js";
import { installChrome, userText } from "./chrome.js";
import { roleLabel } from "./messages.js";
import { el } from "./dom.js";
import { eventLabel, setTimeZone, timeText } from "./format.js";
import { recordingUrl } from "./recording-link.js";
import { installLabels, saveLabels, showLabels } from "./labels.js";

const $ = (id) => document.getElementById(id);
// Timeline action names → Chinese (the workflow's stages plus the system's own steps).
const ACTION_LABELS = {
  report: "上报", accept: "受理", register: "立案", reject: "不予立案", void: "作废", dispatch: "派遣",
  start: "签收处置", feedback: "处置反馈", return: "回退", extend: "延期", suspend: "挂账", resume: "恢复",
  verify: "核查", close: "结案", rework: "返工", attach: "并案", video_check: "视频核查",
  review_confirm: "人工确认", review_reject: "判定误报", supervise: "督办",
};
const actionLabel = (a) => ACTION_LABELS[a] || a;

/** "duty(watch_officer)" → "duty（值班员）"; "system" → 系统. */
function actorText(actor) {
  const m = String(actor || "").match(/^(.*)\((\w+)\)$/);
  if (m) return `${m[1]}（${roleLabel(m[2])}）`;
  return actor === "system" ? "系统" : String(actor || "");
}

/** A timeline note with the case's alarm ids (long hex) as 第n次报警 and other case ids as their numbers. */
function noteText(note, c) {
  let text = String(note);
  (c.alarm_ids || []).forEach((id, i) => { if (id) text = text.split(id).join(`第${i + 1}次报警`); });
  if (c.id) text = text.split(c.id).join(c.case_no || "本案");
  return text;
}
const state = { me: null, items: [], current: null, reasons: [], reason: 0, rejecting: false, caseId: null, shownCase: null };

// Keys typed while a request is in flight are queued, not dropped: each step runs after the previous one.
let chain = Promise.resolve();
function serial(step) {
  chain = chain.then(step).catch((err) => say(`出错：${err.message}`));
  return chain;
}
const now = () => Date.now() / 1000;

function say(text, kind = "warn") {
  const m = $("message");
  m.textContent = text;
  m.dataset.kind = kind;
}

// ------------------------------------------------------------------------------------------------ queue

async function loadQueue() {
  const body = await getJSON("/api/review");
  state.items = body.items;
  state.reasons = body.reasons;
  for (const [k, v] of Object.entries(body.counts)) {
    const node = document.querySelector(`#counts [data-k=${k}] b`);
    if (node) node.textContent = String(v);  // unfiled: free or mine, no case yet (auto-filed ones apart)
  }
  renderQueue();
}

function itemTitle(alarm) {
  const [zh] = eventLabel(alarm.event);
  return `${zh} · ${alarm.camera_name || alarm.camera_id}`;
}

/** The filing tag of an item: held for review, or filed automatically (with its case number). */
function filingTag(it) {
  if (it.case) return el("span", "q-tag q-auto", `已立案 ${it.case.case_no}`);
  if (it.filing && !it.filing.auto) return el("span", "q-tag q-held", "待复核立案 Held");
  return null;
}

function renderQueue() {
  const list = $("queue");
  list.replaceChildren(...state.items.map((it) => {
    const status = state.current && it.id === state.current.id ? "mine" : it.status;
    const row = el("li", "q-row",
      el("div", "q-title", itemTitle(it.alarm), filingTag(it)),
      el("div", "q-sub", `${timeText(it.alarm.at, now())} · ${it.alarm.zone_name || it.alarm.zone_id}`));
    row.dataset.id = it.id;
    row.tabIndex = 0;
    row.title = "点击处理此条 / Click to work on this item";
    row.addEventListener("click", () => pickItem(it));
    row.dataset.filing = it.case ? "filed" : (it.filing && !it.filing.auto ? "held" : "auto");
    row.dataset.status = status;
    return row;
  }));
  const mine = list.querySelector("[data-status=mine]");
  if (mine) mine.scrollIntoView({ block: "nearest" });
}

/** A row of the queue clicked: claim exactly that item (someone else's stays theirs, and is said so). */
function pickItem(it) {
  if (state.current && state.current.id === it.id) return Promise.resolve();
  return serial(async () => {
    const { ok, data, message } = await send("POST", "/api/review/claim", { current: it.id, direction: "this" });
    if (!ok) { say(`领取失败：${message}`); return; }
    if (!data.item) {
      say(it.claimed_by ? `该告警正由 ${it.claimed_by} 复核` : "该告警已不在复核队列中");
    } else {
      state.current = data.item;
      closeReasons();
      renderItem();
    }
    await loadQueue();
  });
}

function claim(direction) {
  return serial(() => claimNow(direction));
}

async function claimNow(direction) {
  {
    const { ok, data, message } = await send("POST", "/api/review/claim",
      { current: state.current ? state.current.id : undefined, direction });
    if (!ok) { say(`领取失败：${message}`); return; }
    const stays = data.item && state.current && data.item.id === state.current.id;
    if ((data.item === null || stays) && direction !== "first" && state.current) {
      say(direction === "next" ? "已是最后一条 (last item)" : "已是第一条 (first item)");
      return;
    }
    state.current = data.item;
    closeReasons();
    renderItem();
  }
  await loadQueue();
}

function renderItem() {
  const it = state.current;
  $("empty").hidden = Boolean(it);
  $("evidence").hidden = !it;
  for (const id of ["confirm", "reject", "prev", "next"]) $(id).disabled = !it;
  document.body.dataset.item = it ? it.id : "";
  showLabels(it).catch((err) => say(`标注无法加载：${err.message}`));  // the learning loop's labels (labels.js)
  if (!it) return;
  const a = it.alarm;
  const img = $("snap");
  const src = a.snapshot_url || a.snapshot_clean_url;
  if (src && src.startsWith("/") && !src.startsWith("//")) img.src = src; else img.removeAttribute("src");
  $("boxes").replaceChildren(...(a.boxes || []).map(([x1, y1, x2, y2]) => {
    const b = el("div", "box");
    Object.assign(b.style, { left: `${x1 * 100}%`, top: `${y1 * 100}%`, width: `${(x2 - x1) * 100}%`,
                             height: `${(y2 - y1) * 100}%` });
    return b;
  }));
  showClip(false);
  // An auto-filed item shows its case (what the unit was sent), so a rejection's effect is seen.
  if (it.case && it.case.id && state.caseId !== it.case.id) {
    showCase(it.case.id).catch((err) => console.warn("case of the item not shown", err));
  }
  $("play-clip").disabled = !safeClip(a);
  $("clip-note").textContent = safeClip(a) ? "" : "无录像 No clip";
  $("recording-link").href = recordingUrl(a.camera_id, a.at);
  const [zh, en] = eventLabel(a.event);
  $("meta").replaceChildren(...[  // replaceChildren would print a null as "null": filter first
    el("span", "m-event", zh, el("span", "en", en)),
    el("span", "", `摄像头 ${a.camera_name || a.camera_id}`),
    el("span", "", `区域 ${a.zone_name || a.zone_id}`),
    el("span", "", `置信度 ${Math.round((a.confidence || 0) * 100)}%`),
    el("span", "", `持续 ${Math.round(a.dwell_s || 0)} 秒`),
    judgementTag(a),
    el("span", "", `时间 ${timeText(a.at, now())}`),
    it.filing && !it.filing.auto && !it.case ? el("span", "m-held", it.filing.reason) : null,
    el("span", "m-id", `告警编号 ${a.alarm_id}`)].filter(Boolean));
}

/** What the detector judged the object to be, with its evidence ("研判 货物 + 看摊人 52 s"), or null. */
function judgementTag(alarm) {
  const j = alarm && alarm.extra && alarm.extra.judgement;
  if (!j || typeof j.evidence !== "string") return null;
  const tag = el("span", `m-judgement k-${String(j.kind || "unknown").replace(/[^a-z_]/g, "")}`, `研判 ${j.evidence}`);
  tag.title = `${j.label_en || ""}${j.source ? ` · ${j.source}` : ""}`;
  return tag;
}

/** The item's clip URL when it is a same-site path, else null. */
function safeClip(alarm) {
  const u = alarm && alarm.clip_url;
  return typeof u === "string" && u.startsWith("/") && !u.startsWith("//") ? u : null;
}

/** V: the evidence clip plays in place of the snapshot (boxes hidden: they belong to the still); V again back. */
function showClip(on) {
  const video = $("clip");
  const url = on && state.current ? safeClip(state.current.alarm) : null;
  video.hidden = !url;
  $("snap").hidden = Boolean(url);
  $("boxes").hidden = Boolean(url);
  $("play-clip").classList.toggle("on", Boolean(url));
  if (url) {
    if (video.getAttribute("src") !== url) video.src = url;
    video.currentTime = 0;
    video.play().catch(() => {});
  } else if (video.getAttribute("src")) {
    video.pause();
  }
}

// ------------------------------------------------------------------------------------------------ decisions

function decide(decision, reason = "") {
  return serial(() => decideNow(decision, reason));
}

async function decideNow(decision, reason) {
  const it = state.current;
  if (!it) return;
  const r = await send("POST", `/api/review/${encodeURIComponent(it.id)}/decision`, { decision, reason });
  if (!r.ok) {
    say(`未能提交：${r.message}`);
    await loadQueue();
    return;
  }
  const data = r.data;
  const unlabelled = await saveLabels(it.id);
  if (unlabelled) console.warn("labels not stored", unlabelled);
  if (decision === "confirm") {
    say(`已立案 ${data.case ? data.case.case_no : ""} (confirmed)`, "ok");
    if (data.case) await showCase(data.case.id);
  } else {
    say(`已判定误报：${reason} (rejected)`, "ok");
  }
  // On to the next free item; past the end, back to the first one still free (skipped ones), else nothing.
  state.current = await claimItem("next", it.id) || await claimItem("first", null);
  closeReasons();
  renderItem();
  await loadQueue();
}

async function claimItem(direction, current) {
  const { ok, data } = await send("POST", "/api/review/claim", { current: current || undefined, direction });
  return ok && data.item && data.item.status === "mine" ? data.item : null;
}

function openReasons() {
  if (!state.current) return;
  state.rejecting = true;
  state.reason = 0;
  $("reasons").hidden = false;
  $("reason-list").replaceChildren(...state.reasons.map((r, i) => {
    const li = el("li", "", r);
    li.dataset.index = String(i);
    li.addEventListener("click", () => decide("reject", r).then(closeReasons));
    return li;
  }));
  $("reason-text").value = "";
  markReason();
}

function markReason() {
  for (const li of $("reason-list").children) li.setAttribute("aria-selected", String(+li.dataset.index === state.reason));
}

function closeReasons() {
  state.rejecting = false;
  $("reasons").hidden = true;
  $("reason-text").blur();
}

function submitReason() {
  const typed = $("reason-text").value.trim();
  const reason = typed || state.reasons[state.reason];
  closeReasons();
  return decide("reject", reason);
}

// ------------------------------------------------------------------------------------------------ case view

async function showCase(caseId, given = null) {
  state.caseId = caseId;
  const c = given || await getJSON(`/api/cases/${encodeURIComponent(caseId)}`);
  $("case").hidden = false;
  $("case").dataset.caseId = c.id;
  $("case").dataset.state = c.state;
  $("case-head").textContent = `${c.case_no} ${c.title || ""}`;
  const facts = [["状态", c.state_label || c.state], ["类别", `${c.kind}/${c.code} ${c.category_name}`],
                 ["责任单位", c.unit_name], ["截止", (c.deadline_iso || "").slice(0, 16).replace("T", " ")],
                 ["地址", c.address], ["版本", String(c.version)],
                 ["督办", c.supervised ? `${c.supervise_count} 次，最近 ${c.last_supervision.actor} ${timeText(c.last_supervision.at, now())}` : "—"]];
  $("case-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", "", k), el("dd", "", v || "—")]));
  const buttons = (c.allowed_actions || []).map((a) => {
    const b = el("button", "case-action", a.label, el("span", "en", a.action));
    b.type = "button";
    b.dataset.action = a.action;
    b.addEventListener("click", () => act(c, a.action));
    return b;
  });
  if (c.can_supervise) {
    const b = el("button", "case-action supervise", "督办", el("span", "en", "Supervise (D)"));
    b.type = "button";
    b.dataset.action = "supervise";
    b.addEventListener("click", () => supervise(c));
    buttons.push(b);
  }
  state.shownCase = c;
  $("case-actions").replaceChildren(...buttons);
  $("timeline").replaceChildren(...(c.timeline || []).slice().reverse().map((e) => el("li", "tl-row",
    el("span", "tl-when", timeText(e.at, now())), el("b", "", actionLabel(e.action)), el("span", "tl-who", actorText(e.actor)),
    e.note ? el("span", "tl-note", noteText(e.note, c)) : null)));
}

// Actions that ask for more than a click: 延期 needs the added time limit; 督办 and 作废/回退 take a note.
const NEEDS_DIALOG = { extend: "extension", supervise: "note", void: "note", return: "note", reject: "note", suspend: "note" };

/** The small dialog for an action: resolves to {note, extension?} or null when cancelled. */
function askDetails(c, action, label) {
  const dlg = $("act-dialog");
  $("act-title").textContent = `${label}`;
  $("act-case").textContent = `${c.case_no} ${c.title || ""} · 当前截止 ${(c.deadline_iso || "").slice(0, 16).replace("T", " ") || "无"}`;
  $("act-extension").hidden = action !== "extend";
  $("act-note").value = "";
  $("act-error").textContent = "";
  $("act-note-need").textContent = action === "supervise" ? "（督办要求，可不填）" : "";
  if (action === "extend") { $("act-value").value = "1"; $("act-unit").value = "work_days"; }
  dlg.showModal();
  (action === "extend" ? $("act-value") : $("act-note")).focus();
  return new Promise((resolve) => {
    const done = (value) => {
      $("act-form").onsubmit = null;
      $("act-cancel").onclick = null;
      dlg.onclose = null;
      if (dlg.open) dlg.close();
      resolve(value);
    };
    $("act-cancel").onclick = () => done(null);
    dlg.onclose = () => done(null);
    $("act-form").onsubmit = (ev) => {
      ev.preventDefault();
      const out = { note: $("act-note").value.trim() };
      if (action === "extend") {
        const value = Number($("act-value").value);
        if (!Number.isFinite(value) || value <= 0) { $("act-error").textContent = "请填写大于 0 的延期时长"; return; }
        out.extension = { value, unit: $("act-unit").value };
      }
      done(out);
    };
  });
}

async function act(c, action) {
  let extra = {};
  if (NEEDS_DIALOG[action]) {
    const label = (c.allowed_actions || []).find((a) => a.action === action)?.label || actionLabel(action);
    extra = await askDetails(c, action, label);
    if (!extra) return;
    if (!extra.note) delete extra.note;
  }
  const r = await send("POST", `/api/cases/${encodeURIComponent(c.id)}/actions`, { action, version: c.version, ...extra });
  if (r.ok) {
    say(`${c.case_no}：${actionLabel(action)} 完成 (${action} done)`, "ok");
    await showCase(c.id, r.data.case);
  } else {
    say(`${c.case_no}：${r.message}`);
    if (r.data.case) await showCase(c.id, r.data.case);
  }
}

async function supervise(c) {
  const extra = await askDetails(c, "supervise", "督办");
  if (!extra) return;
  const r = await send("POST", `/api/cases/${encodeURIComponent(c.id)}/supervise`,
    { version: c.version, ...(extra.note ? { note: extra.note } : {}) });
  if (r.ok) {
    say(`${c.case_no}：已督办（第 ${r.data.case.supervise_count} 次）(supervised)`, "ok");
    await showCase(c.id, r.data.case);
  } else {
    say(`${c.case_no}：${r.message}`);
    if (r.data.case) await showCase(c.id, r.data.case);
  }
}

// ------------------------------------------------------------------------------------------------ keys

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if ($("act-dialog").open) return;  // the dialog's own keys (Enter, Esc)
  const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement;
  if (state.rejecting) {
    if (ev.key === "Escape") { ev.preventDefault(); closeReasons(); return; }
    if (ev.key === "Enter") { ev.preventDefault(); submitReason(); return; }
    if (!typing && /^[1-9]$/.test(ev.key) && +ev.key <= state.reasons.length) {
      ev.preventDefault();
      state.reason = +ev.key - 1;
      markReason();
      submitReason();
      return;
    }
    if (!typing && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) {
      ev.preventDefault();
      const n = state.reasons.length;
      state.reason = (state.reason + (ev.key === "ArrowDown" ? 1 : n - 1)) % n;
      markReason();
    }
    return;
  }
  if (typing) return;
  const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  if (key === "d" && state.shownCase && state.shownCase.can_supervise) {
    ev.preventDefault();
    serial(() => supervise(state.shownCase));
    return;
  }
  if (key === "v") { ev.preventDefault(); showClip($("clip").hidden); return; }
  if (key === "Enter" || key === "y") { ev.preventDefault(); decide("confirm"); }
  else if (key === "r" || key === "n") { ev.preventDefault(); openReasons(); }
  else if (key === "j") { ev.preventDefault(); claim("next"); }
  else if (key === "k") { ev.preventDefault(); claim("prev"); }
}

async function main() {
  let me;
  try {
    me = await getJSON("/api/me");
  } catch (err) {
    return; // 401 → already on the way to /login
  }
  state.me = me.user;
  setTimeZone(me.timezone);
  $("user").textContent = userText(me.user);
  installChrome(me);
  $("confirm").addEventListener("click", () => decide("confirm"));
  $("reject").addEventListener("click", openReasons);
  $("next").addEventListener("click", () => claim("next"));
  $("prev").addEventListener("click", () => claim("prev"));
  $("reason-cancel").addEventListener("click", closeReasons);
  $("play-clip").addEventListener("click", () => showClip($("clip").hidden));
  // In the action dialog Enter sends (Shift+Enter: a new line in the note).
  $("act-note").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("act-form").requestSubmit(); }
  });
  $("clip").addEventListener("error", () => { $("clip-note").textContent = "录像无法播放 The clip cannot be played"; });
  $("reasons").addEventListener("submit", (ev) => { ev.preventDefault(); submitReason(); });
  document.addEventListener("keydown", onKey);
  installLabels();
  renderItem();
  await claim("first");
  // /review?case=<id>: open that case in the console (older links; the wall's and the situation screen's case rows
  // open the case office's /cases/<id>).
  const wanted = new URLSearchParams(location.search).get("case");
  if (wanted) await showCase(wanted).catch((err) => say(`无法打开案件：${err.message}`));
  document.body.dataset.ready = "1";
  setInterval(() => { loadQueue().catch((err) => console.warn("queue refresh failed", err)); }, 5000);
}

main();
