// The staff console for the wall screens: pick a screen, switch its layout, drag cameras onto tiles, run tours,
// invoke plans (roles permitting) and acknowledge alarm pop-ups. Everything goes to the server (REST); what the
// screens show comes back as "wall_screen" frames on /api/ws, so the console, every wall page and every other
// console stay the same. Keyboard: 1–6 layouts, [ ] screens, T tour, S stop, A ack, ? help. 回放 on a camera opens
// its recording (playback.js).
// Exposed for tests as window.citywallConsole.

import { ApiError, checkSession, getJSON } from "./api.js";
import { installChrome, linkState, userText } from "./chrome.js";
import { bilingual, el } from "./dom.js";
import { EventSocket } from "./events.js";
import { eventLabel, setTimeZone } from "./format.js";
import { ackAlarm, sendJSON } from "./screen-api.js";
import { CueRepeater } from "./cue.js";
import { openPlayback } from "./playback.js";

const $ = (id) => document.getElementById(id);
const LAYOUT_LABELS = { "1": "单画面", "2x2": "四画面", "3x3": "九画面", "4x4": "十六画面", "1+5": "一大五小", "1+7": "一大七小" };

const cameras = new Map();     // id → camera record
const screens = new Map();     // id → screen view
let order = [];                // screen ids in configured order
let selected = null;           // selected screen id
let meta = { layouts: [], tours: [], plans: [] };
let me = null;
const cue = new CueRepeater({ intervalMs: Number(new URLSearchParams(location.search).get("cue_s") || 20) * 1000 });

// ------------------------------------------------------------------------------------------ feedback

let statusTimer = 0;
function say(text, bad = false) {
  const box = $("status");
  box.textContent = text;
  box.classList.toggle("bad", bad);
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { box.textContent = ""; }, 6000);
}

async function act(what, fn) {
  try {
    const out = await fn();
    say(`✔ ${what}`);
    return out;
  } catch (err) {
    say(`✘ ${what}：${err.message}`, true);  // ApiError: Chinese (messages.js)
    return null;
  }
}

// ------------------------------------------------------------------------------------------ state from the server

function takeScreen(view) {
  if (!view || !view.id) return;
  const old = screens.get(view.id);
  if (old && view.version < old.version) return;
  screens.set(view.id, view);
  if (!order.includes(view.id)) order.push(view.id);
  render();
}

function cameraName(id) {
  return (cameras.get(id) || {}).name || id || "";
}

// ------------------------------------------------------------------------------------------ rendering

function renderScreens() {
  $("screens").replaceChildren(...order.map((id, i) => {
    const s = screens.get(id);
    const b = el("button", id === selected ? "screen-tab selected" : "screen-tab", s.name || id, el("span", "en", id));
    b.type = "button";
    b.dataset.screen = id;
    if (s.alarm) b.classList.add("alarm");
    b.addEventListener("click", () => select(id));
    return b;
  }));
  $("open-wall").href = `/wall/${encodeURIComponent(selected || "")}`;
}

function renderLayouts(view) {
  $("layouts").replaceChildren(...meta.layouts.map((name, i) => {
    const b = el("button", view && view.layout.name === name ? "layout selected" : "layout",
      el("span", "key", String(i + 1)), el("span", "name", name), el("span", "zh", LAYOUT_LABELS[name] || ""));
    b.type = "button";
    b.dataset.layout = name;
    b.addEventListener("click", () => setLayout(name));
    return b;
  }));
}

function renderPreview(view) {
  const box = $("preview");
  if (!view) { box.replaceChildren(); return; }
  const { rows, cols, tiles: cells } = view.layout;
  box.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  box.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
  box.replaceChildren(...view.tiles.map((t, i) => {
    const [r, c, rs, cs] = cells[i];
    const tile = el("div", `ptile src-${t.source}`,
      el("span", "idx", String(i + 1)),
      el("span", "cam", t.camera ? cameraName(t.camera) : "空"),
      t.camera ? el("span", "cam-id", t.camera) : el("span", "cam-id", "Empty"),
      t.source === "tour" ? el("span", "badge tour", "轮巡") : null,
      t.source === "alarm" ? el("span", "badge alarm", "告警") : null,
      t.source === "alarm" && t.base_camera && t.base_camera !== t.camera
        ? el("span", "base", `确认后恢复 ${cameraName(t.base_camera)}`) : null,
      i === view.alarm_tile && t.source !== "alarm" ? el("span", "badge alarm-slot", "告警位") : null);
    tile.style.gridArea = `${r + 1} / ${c + 1} / span ${rs} / span ${cs}`;
    tile.dataset.tile = String(i);
    tile.dataset.camera = t.camera || "";
    tile.addEventListener("dragover", (ev) => { ev.preventDefault(); tile.classList.add("drop"); });
    tile.addEventListener("dragleave", () => tile.classList.remove("drop"));
    tile.addEventListener("drop", (ev) => {
      ev.preventDefault();
      tile.classList.remove("drop");
      const cam = ev.dataTransfer.getData("text/plain");
      if (cam) assign(i, cam);
    });
    tile.addEventListener("click", () => { if (picked) { assign(i, picked); pick(null); } });
    return tile;
  }));
}

function renderTour(view) {
  const tour = view && view.tour;
  const pill = $("tour-state");
  pill.textContent = !tour ? "未运行 Off" : tour.paused ? `暂停 Paused · ${tour.name}` : `运行中 Running · ${tour.name}`;
  pill.className = `state-pill ${!tour ? "off" : tour.paused ? "paused" : "on"}`;
  $("tour-pause").disabled = !tour || tour.paused;
  $("tour-resume").disabled = !tour || !tour.paused;
  $("tour-stop").disabled = !tour;
  $("tour-start").disabled = !meta.tours.length;
}

/** Which plans hold a screen now: plan id → [screen names]. */
function activePlans() {
  const out = new Map();
  for (const id of order) {
    const s = screens.get(id);
    if (s && s.plan) out.set(s.plan.id, [...(out.get(s.plan.id) || []), s.name || id]);
  }
  return out;
}

let confirming = null;  // the plan id waiting for its 确认启动

function renderPlans() {
  const active = activePlans();
  $("plans").replaceChildren(...meta.plans.map((p) => {
    const on = active.get(p.id);
    const box = el("div", on ? "plan-row active" : "plan-row");
    box.dataset.plan = p.id;
    const b = el("button", p.allowed ? "plan" : "plan locked", el("span", "zh", p.name),
      el("span", "en", !p.allowed ? "需指挥长权限 Leader only"
        : on ? `执行中 Active · ${on.join("、")}` : `${p.screens.length} 屏 screens`));
    b.type = "button";
    b.dataset.plan = p.id;
    b.disabled = !p.allowed || Boolean(on);
    b.addEventListener("click", () => { confirming = p.id; renderPlans(); });
    box.append(b);
    if (on && p.allowed) {
      const end = el("button", "plan-end", "结束预案", el("span", "en", "End plan"));
      end.type = "button";
      end.addEventListener("click", () => endPlan(p));
      box.append(end);
    }
    if (confirming === p.id && !on) {
      const names = p.screens.map((sid) => (screens.get(sid) || {}).name || sid).join("、");
      const yes = el("button", "plan-yes", "确认启动");
      yes.type = "button";
      yes.addEventListener("click", () => { confirming = null; invokePlan(p); });
      const no = el("button", "plan-no", "取消");
      no.type = "button";
      no.addEventListener("click", () => { confirming = null; renderPlans(); });
      box.append(el("div", "plan-confirm", el("span", "", `启动「${p.name}」将切换 ${names}，`
        + "原布局在结束预案时恢复。"), yes, no));
      setTimeout(() => yes.focus(), 0);
    }
    return box;
  }));
}

function renderAlarms() {
  // One row per alarm, naming every screen that shows it (an ack reverts it everywhere).
  const rows = new Map();      // alarm_id → {alarm, screens: [name], waiting}
  for (const id of order) {
    const s = screens.get(id);
    for (const [a, waiting] of [[s.alarm, false], ...(s.pending_alarms || []).map((p) => [p, true])]) {
      if (!a) continue;
      const row = rows.get(a.alarm_id) || { alarm: a, screens: [], waiting: true };
      row.screens.push(s.name || id);
      row.waiting = row.waiting && waiting;
      rows.set(a.alarm_id, row);
    }
  }
  const items = [...rows.values()].map(({ alarm: a, screens: names, waiting }) => {
    const p = a.payload || {};
    const [zh, en] = eventLabel(p.event);
    const ack = el("button", "ack", bilingual("确认", "Ack"));
    ack.type = "button";
    ack.addEventListener("click", () => act(`确认告警 ${zh}`, () => ackAlarm(a.alarm_id)));
    const count = a.count > 1 ? el("span", "count", `×${a.count}`) : null;
    if (count) count.title = `同一地点 ${a.count} 次告警`;
    const back = el("button", "replay", bilingual("回看30秒", "Back 30 s"));
    back.type = "button";
    back.title = "从告警前30秒回放 / Play the recording from 30 s before the alarm";
    back.addEventListener("click", () => openPlayback({
      camera: a.camera_id, name: p.camera_name || cameraName(a.camera_id),
      at: (Number(a.at) || Date.now() / 1000) - 30, role: me && me.user ? me.user.role : "" }));  // a.at: when it popped up
    const li = el("li", waiting ? "alarm waiting" : "alarm",
      el("div", "what", el("span", "zh", zh), el("span", "en", en), count),
      el("div", "where", `${p.camera_name || cameraName(a.camera_id)} · ${names.join("、")}${waiting ? " · 等待中 waiting" : ""}`),
      back, ack);
    li.dataset.alarmId = a.alarm_id;
    return li;
  });
  $("alarms").replaceChildren(...(items.length ? items : [el("li", "none", bilingual("暂无", "None"))]));
  $("ack-all").disabled = !rows.size;
  $("ack-all").dataset.count = String(rows.size);
  cue.set([...rows.keys()]);
}

/** 全部确认: every alarm shown or waiting, one acknowledgement each (each audited like a single 确认). */
async function ackAll() {
  const ids = new Set();
  for (const id of order) {
    const s = screens.get(id);
    for (const a of [s.alarm, ...(s.pending_alarms || [])]) if (a) ids.add(a.alarm_id);
  }
  if (!ids.size) return;
  let failed = 0;
  for (const id of ids) {
    try { await ackAlarm(id); } catch (err) { if (!(err instanceof ApiError && err.status === 404)) failed += 1; }
  }
  if (failed) say(`✘ 全部确认：${failed} 条未能确认`, true); else say(`✔ 全部确认 ${ids.size} 条`);
}

function renderMute() {
  $("cue-mute").textContent = cue.muted ? "已静音" : "静音";
  $("cue-mute").classList.toggle("on", cue.muted);
}

function render() {
  if (!selected && order.length) selected = order[0];
  const view = screens.get(selected);
  renderScreens();
  renderLayouts(view);
  renderPreview(view);
  renderTour(view);
  renderAlarms();
  if (meta.plans.length) renderPlans();
}

function renderCameras() {
  const list = [...cameras.values()];
  const online = list.filter((c) => c.status && c.status.state === "online").length;
  $("cam-count").textContent = `${online}/${list.length} 在线`;
  $("camera-list").replaceChildren(...list.map((c, i) => {
    const state = (c.status && c.status.state) || "unknown";
    const replay = el("button", "replay", "回放");
    replay.type = "button";
    replay.title = "录像回放 / Playback";
    replay.addEventListener("click", (ev) => {
      ev.stopPropagation();
      openPlayback({ camera: c.id, name: c.name || c.id, role: me && me.user ? me.user.role : "" });
    });
    const li = el("li", `camera ${state}`, el("span", "dot"), el("span", "name", c.name || c.id), el("span", "id", c.id),
      replay);
    li.draggable = true;
    li.tabIndex = 0;
    li.dataset.camera = c.id;
    li.addEventListener("dragstart", (ev) => { ev.dataTransfer.setData("text/plain", c.id); ev.dataTransfer.effectAllowed = "copy"; });
    li.addEventListener("click", () => pick(picked === c.id ? null : c.id));
    return li;
  }));
}

// Click a camera, then click a tile: the same as dragging, for a trackpad or a touch screen.
let picked = null;
function pick(id) {
  picked = id;
  for (const li of document.querySelectorAll(".camera")) li.classList.toggle("picked", li.dataset.camera === id);
}

// ------------------------------------------------------------------------------------------ actions

const base = () => `/api/screens/${encodeURIComponent(selected)}`;

async function setLayout(name) {
  const out = await act(`布局 ${name}`, () => sendJSON("PUT", `${base()}/layout`, { layout: name }));
  if (out) takeScreen(out.screen);
}

async function assign(tile, camera) {
  const out = await act(`画面 ${tile + 1} ← ${cameraName(camera)}`,
    () => sendJSON("PUT", `${base()}/tiles/${tile}`, { camera }));
  if (out) takeScreen(out.screen);
}

async function tour(action) {
  let body;
  if (action === "start") {
    body = { tour: $("tour-select").value };
    const dwell = parseFloat($("tour-dwell").value);
    if (Number.isFinite(dwell)) body.dwell_s = dwell;
  }
  const out = await act(`轮巡 ${action}`, () => sendJSON("POST", `${base()}/tour/${action}`, body));
  if (out) takeScreen(out.screen);
}

async function invokePlan(plan) {
  const out = await act(`启动预案 ${plan.name}`, () => sendJSON("POST", `/api/plans/${encodeURIComponent(plan.id)}/invoke`));
  if (out) for (const s of out.screens) takeScreen(s);
  renderPlans();
}

async function endPlan(plan) {
  const out = await act(`结束预案 ${plan.name}`, () => sendJSON("POST", `/api/plans/${encodeURIComponent(plan.id)}/end`));
  if (out) for (const s of out.screens) takeScreen(s);
  renderPlans();
}

function select(id) {
  if (!screens.has(id)) return;
  selected = id;
  render();
}

function toggleTour() {
  const t = screens.get(selected)?.tour;
  tour(!t ? "start" : t.paused ? "resume" : "pause");
}

function onKey(ev) {
  if (ev.target && ["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName)) return;
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const help = $("help");
  if (ev.key === "?") { help.hidden = !help.hidden; return; }
  if (ev.key === "Escape") { help.hidden = true; pick(null); return; }
  const n = Number(ev.key);
  if (Number.isInteger(n) && n >= 1 && n <= meta.layouts.length) { setLayout(meta.layouts[n - 1]); return; }
  const i = order.indexOf(selected);
  if (ev.key === "[" && order.length) select(order[(i - 1 + order.length) % order.length]);
  else if (ev.key === "]" && order.length) select(order[(i + 1) % order.length]);
  else if (ev.key === "t" || ev.key === "T") toggleTour();
  else if (ev.key === "s" || ev.key === "S") { if (screens.get(selected)?.tour) tour("stop"); }
  else if (ev.key === "a" || ev.key === "A") {
    const s = screens.get(selected);
    const a = (s && s.alarm) || order.map((id) => screens.get(id).alarm).find(Boolean);
    if (a) act(`确认告警 ${a.alarm_id}`, () => ackAlarm(a.alarm_id));
  }
}

// ------------------------------------------------------------------------------------------ start

async function loadAll() {
  const body = await getJSON("/api/screens");
  meta = body;
  order = body.screens.map((s) => s.id);
  screens.clear();
  for (const s of body.screens) screens.set(s.id, s);
  const wanted = new URLSearchParams(location.search).get("screen");
  if (wanted && screens.has(wanted)) selected = wanted;
  $("tour-select").replaceChildren(...body.tours.map((t) => {
    const o = el("option", "", `${t.name} (${t.cameras.length})`);
    o.value = t.id;
    return o;
  }));
  if (body.tours.length) $("tour-dwell").value = String(body.tours[0].dwell_s);
  renderPlans();
  render();
}

async function start() {
  try {
    me = await getJSON("/api/me");
    if (me.timezone) setTimeZone(me.timezone);
    $("user").textContent = userText(me.user);
    installChrome(me);
    const cams = await getJSON("/api/cameras");
    for (const c of cams.cameras || []) cameras.set(c.id, c);
    renderCameras();
    await loadAll();
    const socket = new EventSocket({
      checkSession,
      onFrame: (msg) => {
        if (msg.type === "wall_screen") takeScreen(msg.screen);
        else if (msg.type === "camera_status" && msg.status && cameras.has(msg.status.camera_id)) {
          cameras.get(msg.status.camera_id).status = msg.status;
          renderCameras();
        }
      },
      onStatus: (state) => {
        $("link").dataset.state = state;
        $("link-text").textContent = { open: "实时连接正常", closed: "实时连接中断" }[state] || "连接中";
        linkState(state);
        if (state === "open" && socket.connects > 1) loadAll().catch((err) => console.warn(err));
      },
    });
    socket.start();
    for (const a of ["start", "pause", "resume", "stop"]) $(`tour-${a}`).addEventListener("click", () => tour(a));
    $("ack-all").addEventListener("click", ackAll);
    $("cue-mute").addEventListener("click", () => { if (cue.muted) cue.unmute(); else cue.mute(); renderMute(); });
    renderMute();
    $("help-button").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
    $("help").addEventListener("click", () => { $("help").hidden = true; });
    document.addEventListener("keydown", onKey);
    window.citywallConsole = { screens, cameras, socket, cue, get selected() { return selected; }, select };
    document.body.dataset.ready = "1";
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    console.error(err);
    say(`加载失败：${err.message}`, true);
  }
}

start();
