// The big-screen wall: header (site, counters, clock), the video grid, live alarms and cases.
// Data: GET /api/me, /api/cameras, /api/screens/<id>, /api/alarms, /api/case-deadlines, /api/cases; live frames
// over /api/ws (see events.js). /wall shows the default screen (the first configured), /wall/<id> that screen. The
// grid follows the server: "wall_screen" frames carry the screen's layout, tiles, tour step and alarm pop-up.
// A tile's menu (right-click, long press, the M key: 回放 / 截图 / 单屏) comes from tile-menu.js.
// Exposed for tests and diagnostics as window.citywall.

import { AlarmPanel, recentDeadlines } from "./alarms.js";
import { ApiError, checkSession, getJSON } from "./api.js";
import { CasePanel } from "./cases.js";
import { showClip } from "./clip-view.js";
import { showAlarmHistory } from "./alarm-history.js";
import { installChrome, linkState } from "./chrome.js";
import { el } from "./dom.js";
import { EventSocket } from "./events.js";
import { clockText, dateText, eventLabel, setTimeZone, timeText } from "./format.js";
import { installHallAudio } from "./hall-audio.js";
import { CueRepeater, cueStats } from "./cue.js";
import { ackAlarm, screenFromPath } from "./screen-api.js";
import { ScreenGrid, fallbackScreen } from "./screen-grid.js";
import { installTileMenu } from "./tile-menu.js";

const STAGE_W = 1920;
const STAGE_H = 1080;
const ALARM_BORDER_MS = 30000;
const CASE_REFRESH_DEBOUNCE_MS = 300;
const CASES_LIMIT = 500;

const $ = (id) => document.getElementById(id);
const now = () => Date.now() / 1000;

const cameras = new Map();          // id → camera record from /api/cameras, status kept up to date
const grid = new ScreenGrid($("grid"), { cameras, onAck: (id) => acknowledge(id), onMute: () => muteCue() });
const cue = new CueRepeater({ intervalMs: Number(new URLSearchParams(location.search).get("cue_s") || 20) * 1000 });
const wanted = screenFromPath();    // null: the default screen
let screen = null;                  // the screen view shown (from the server), or a fallback 2x2
const alarms = new AlarmPanel($("alarm-list"), { cameraName: (id) => cameras.get(id)?.name || id, onOpen: openAlarm });
// A case row opens the case in the review console's case view (until the case office has its own page).
const cases = new CasePanel($("case-list"), {
  onOpen: (c) => window.open(`/cases/${encodeURIComponent(c.id)}`, "_blank", "noopener") });
const alarmTimers = new Map();      // camera id → timeout removing its tile's alarm border
const systemAlarms = new Map();     // alarm_id → raised system alarm (the recorder cannot write), until cleared
let caseTimer = 0;
let role = "";                      // the signed-in user's role (the tile menu's playback panel offers 导出 by it)
let caseRetry = 0;
const CASE_RETRY_MS = 10000;

/** A clicked alarm card: its evidence clip plays over the stage (deadline cards are not openable). */
function openAlarm(alarm) {
  if (!alarm) return;
  const [zh] = eventLabel(alarm.event);
  const camera = alarm.camera_name || cameras.get(alarm.camera_id)?.name || alarm.camera_id || "";
  showClip({ title: zh, sub: `${camera} · ${alarm.zone_name || alarm.zone_id || ""} · ${timeText(alarm.started_at ?? alarm.at, now())}`,
             clipUrl: alarm.clip_url, snapshotUrl: alarm.snapshot_url }, $("stage"));
}

// ------------------------------------------------------------------------------------------ scaling

/** Scale the 1920x1080 stage to the window, centred, keeping its aspect. */
function fitStage() {
  const scale = Math.min(window.innerWidth / STAGE_W, window.innerHeight / STAGE_H);
  const x = (window.innerWidth - STAGE_W * scale) / 2;
  const y = (window.innerHeight - STAGE_H * scale) / 2;
  $("stage").style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
}

// ------------------------------------------------------------------------------------------ header

function setCounter(id, value, of = null, alert = false) {
  const box = $(id);
  box.querySelector(".num").textContent = String(value);
  const ofEl = box.querySelector(".of");
  if (ofEl) ofEl.textContent = of === null ? "" : ` / ${of}`;
  box.classList.toggle("alert", alert);
}

function renderCounters() {
  const t = now();
  const all = [...cameras.values()].filter((c) => c.enabled !== false);
  const online = all.filter((c) => c.status && c.status.state === "online").length;
  setCounter("count-cameras", online, all.length, online < all.length);
  setCounter("count-alarms", alarms.todayCount(t));
  const { open, overdue } = cases.counts(t);
  setCounter("count-open", open);
  setCounter("count-overdue", overdue, null, overdue > 0);
}

function tickClock() {
  const d = new Date();
  $("clock-time").textContent = clockText(d);
  $("clock-date").textContent = dateText(d);
}

function setLink(state) {
  const link = $("link");
  link.dataset.state = state;
  $("link-text").textContent = { open: "实时连接正常", closed: "实时连接中断", connecting: "连接中" }[state] || state;
}

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text || "";
  banner.hidden = !text;
}

// ------------------------------------------------------------------------------------------ data

function flagTile(cameraId, remainingMs = ALARM_BORDER_MS) {
  const tile = grid.tile(cameraId);
  if (!tile || remainingMs <= 0) return;
  tile.setAttribute("alarm", "");
  tile.dataset.flagged = "1";
  clearTimeout(alarmTimers.get(cameraId));
  alarmTimers.set(cameraId, setTimeout(() => {
    delete tile.dataset.flagged;
    if (tile.dataset.source !== "alarm") tile.removeAttribute("alarm");
    alarmTimers.delete(cameraId);
  }, remainingMs));
}

// ------------------------------------------------------------------------------------------ screen

/** A new alarm took the alarm tile (the hall-audio hook, one call, goes here); the cue itself follows what
 *  waits for an acknowledgement (``cue.set`` in applyScreen). */
function onAlarmPopup(alarm) {
  grid.setMuted(cue.muted);
}

/** 静音: the repeating cue stops for 5 minutes (alarms still pop up and wait for their 确认). */
function muteCue() {
  if (cue.muted) cue.unmute(); else cue.mute();
  grid.setMuted(cue.muted);
}

/** Show a screen view from the server, unless a push older than the one shown (``force``: a GET, which is
 *  authoritative even when the server's versions restarted). */
function applyScreen(view, force = false) {
  if (!view || !view.layout) return;
  if (!force && screen && screen.id === view.id && view.version < screen.version) return;
  const before = screen && screen.alarm ? screen.alarm.alarm_id : null;
  screen = view;
  if ((view.tiles || []).some((t) => t.camera && !cameras.has(t.camera))) cameraListChanged();
  grid.render(view);
  // The screen's name takes the place of the generic "视频监控大屏 Video wall" (the header line is narrow).
  $("screen-name").textContent = view.name || "";
  $("screen-name").hidden = !view.name;
  $("wall-label").hidden = Boolean(view.name);
  // An emergency plan holds this screen: said in the header until it ends.
  $("plan-state").hidden = !view.plan;
  $("plan-state").textContent = view.plan ? `预案执行中：${view.plan.name || view.plan.id}` : "";
  const tour = view.tour;
  $("tour-state").hidden = !tour;
  if (tour) {
    $("tour-state").textContent = tour.paused ? "轮巡暂停" : "轮巡中";
    $("tour-state").title = tour.name;
    $("tour-state").classList.toggle("paused", Boolean(tour.paused));
  }
  // Repeats until acknowledged: every alarm shown or waiting on this screen keeps the cue going.
  cue.set([view.alarm, ...(view.pending_alarms || [])].filter(Boolean).map((a) => a.alarm_id));
  if (view.alarm && view.alarm.alarm_id !== before) onAlarmPopup(view.alarm);
}

async function loadScreen() {
  try {
    if (wanted) return applyScreen((await getJSON(`/api/screens/${encodeURIComponent(wanted)}`)).screen, true);
    const body = await getJSON("/api/screens");
    return applyScreen(body.screens[0], true);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404 || wanted) throw err;
    // A server without wall screens: the first four cameras in 2x2, as before.
    applyScreen(fallbackScreen([...cameras.values()].filter((c) => c.enabled !== false)));
  }
}

async function acknowledge(alarmId) {
  try {
    await ackAlarm(alarmId);
  } catch (err) {
    showBanner(`确认失败：${err.message}`);
    setTimeout(() => showBanner(""), 5000);
  }
}

/** The strip of system alarms (faults of citywall itself: disk full, write errors) along the bottom. */
function renderSystemAlarms() {
  const box = $("system-alarms");
  box.replaceChildren(...[...systemAlarms.values()].map((a) => {
    const row = el("div", "sys-alarm", `系统告警 ${a.label || a.kind}`);
    row.dataset.kind = a.kind || "";
    if (a.detail) row.append(el("span", "sys-detail", a.detail));
    return row;
  }));
  box.hidden = systemAlarms.size === 0;
}

function onSystemAlarm(alarm) {
  if (!alarm || !alarm.alarm_id) return;
  if (alarm.phase === "cleared") systemAlarms.delete(alarm.alarm_id);
  else systemAlarms.set(alarm.alarm_id, alarm);
  renderSystemAlarms();
}

/** The raised system alarms, read once at start; returns the stream id the socket resumes their frames from. */
async function loadSystemAlarms() {
  const body = await getJSON("/api/system-alarms");
  systemAlarms.clear();
  for (const a of body.alarms || []) systemAlarms.set(a.alarm_id, a);
  renderSystemAlarms();
  return body.last_id || "0-0";
}

function onAlarm(alarm) {
  alarms.add(alarm, now(), { fresh: true });
  if (alarm.phase !== "cleared") flagTile(alarm.camera_id);
  renderCounters();
}

function onDeadline(alarm) {
  alarms.addDeadline(alarm, now(), { fresh: true });
  scheduleCases();  // the case list's overdue marks follow
}

let cameraRefresh = null;
/** A camera this page does not know (the administrator added it while running): read the list and the screen
 *  again, once for a burst of such frames. */
function cameraListChanged() {
  if (cameraRefresh) return;
  cameraRefresh = setTimeout(async () => {
    try {
      await refreshCameras();
      await loadScreen();
    } catch (err) {
      console.warn("cameras refresh failed", err);
    } finally {
      cameraRefresh = null;
    }
  }, 300);
}

function onCameraStatus(status) {
  if (!status || !status.camera_id) return;
  const cam = cameras.get(status.camera_id);
  if (!cam) cameraListChanged();
  if (cam) cam.status = status;
  const tile = grid.tile(status.camera_id);
  if (tile && status.state) tile.setAttribute("camera-state", status.state);
  renderCounters();
}

async function refreshCases() {
  clearTimeout(caseRetry);
  try {
    const body = await getJSON(`/api/cases?limit=${CASES_LIMIT}`);
    cases.set(body.cases, body.total, now());
    $("case-total").textContent = Number.isFinite(body.total) ? `共 ${body.total} 件` : "";
    renderCounters();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    // A case store outage (503) is said as such; the last rows stay, greyed, and it is asked again.
    cases.unavailable(err.message);
    $("case-total").textContent = "";
    caseRetry = setTimeout(refreshCases, CASE_RETRY_MS);
  }
}

function scheduleCases() {
  clearTimeout(caseTimer);
  caseTimer = setTimeout(refreshCases, CASE_REFRESH_DEBOUNCE_MS);
}

async function refreshCameras() {
  const body = await getJSON("/api/cameras");
  const listed = new Set((body.cameras || []).map((c) => c.id));
  for (const id of [...cameras.keys()]) if (!listed.has(id)) cameras.delete(id);  // removed by the administrator
  for (const cam of body.cameras || []) {
    cameras.set(cam.id, cam);
    onCameraStatus(cam.status);
  }
  renderCounters();
}

function onFrame(msg) {
  switch (msg.type) {
    case "hello":
      if (msg.site_name) $("site-name").textContent = msg.site_name;
      break;
    case "alarm":
      if (msg.alarm) onAlarm({ ...msg.alarm, id: msg.id });
      break;
    case "case_deadline":
      if (msg.alarm) onDeadline({ ...msg.alarm, id: msg.id });
      break;
    case "camera_status":
      onCameraStatus(msg.status);
      break;
    case "case":
      scheduleCases();
      break;
    case "system_alarm":
      onSystemAlarm(msg.alarm);
      break;
    case "wall_screen":
      if (msg.screen && screen && msg.screen.id === screen.id) applyScreen(msg.screen);
      break;
    case "error":
      console.warn("event socket error frame:", msg.error);
      break;
    default:
      break;
  }
}

// ------------------------------------------------------------------------------------------ start

async function start() {
  fitStage();
  window.addEventListener("resize", fitStage);
  tickClock();
  setInterval(tickClock, 1000);
  setInterval(() => { cases.render(now()); renderCounters(); }, 30000);

  try {
    const me = await getJSON("/api/me");
    installChrome(me, { corner: true });
    role = me.user ? me.user.role : "";
    installTileMenu($("grid"), { role: () => role });
    const site = me.site_name || me.site?.name;
    if (site) $("site-name").textContent = site;
    if (me.timezone) { setTimeZone(me.timezone); tickClock(); }
    const body = await getJSON("/api/cameras");
    for (const cam of body.cameras || []) cameras.set(cam.id, cam);
    await loadScreen();
    renderCounters();

    const socket = new EventSocket({
      onFrame,
      checkSession,
      onStatus: (state) => {
        setLink(state);
        linkState(state);
        if (state === "open" && socket.connects > 1) {
          // Back after an outage: statuses and screen states are not replayed, so read them again (system
          // alarms are: the resume brings their missed raise/clear frames in order).
          refreshCameras().catch((err) => console.warn("cameras refresh failed", err));
          loadScreen().catch((err) => console.warn("screen refresh failed", err));
        }
        if (state === "open") scheduleCases();
      },
    });
    window.citywall = { cameras, grid, alarms, cases, socket, refreshCases, cues: cueStats, cue, systemAlarms,
                        get screen() { return screen; } };

    const [history, due] = await Promise.all([getJSON("/api/alarms?limit=200"), recentDeadlines()]);
    const list = history.alarms || [];
    const deadlines = due.deadlines || [];
    alarms.load(list, now(), deadlines);
    const t = now();
    for (const alarm of list) {  // alarms raised in the last 30 s still mark their tile
      if (alarm.phase !== "cleared" && Number.isFinite(alarm.at)) flagTile(alarm.camera_id, ALARM_BORDER_MS - (t - alarm.at) * 1000);
    }
    renderCounters();
    // Resume from the newest alarm we have (or from the start when there is none) so nothing raised between
    // this GET and the socket opening is lost.
    socket.remember("alarms", list.length ? list[0].id : "0-0");
    socket.remember("case_deadlines", deadlines.length ? deadlines[0].id : "0-0");
    try {  // before the socket starts, so a raise or clear between this read and the socket is resumed
      socket.remember("system_alarms", await loadSystemAlarms());
    } catch (err) {
      console.warn("system alarms not read", err);
      socket.remember("system_alarms", "0-0");  // replay the stream: its raise/clear frames in order are the state
    }
    installHallAudio(socket);
    $("alarm-history").addEventListener("click", () => showAlarmHistory($("stage"), {
      cameraName: (id) => cameras.get(id)?.name || id }));
    socket.start();
    await refreshCases();
    showBanner("");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;  // on the way to /login
    console.error(err);
    showBanner(`加载失败：${err.message}（10 秒后重试）`);
    setTimeout(() => location.reload(), 10000);
  }
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "a" || ev.key === "A") {
    if (screen && screen.alarm) acknowledge(screen.alarm.alarm_id);
  }
});

start();
