// The situation panel (态势) for an aux screen: cameras online/offline, alarms today, open and overdue cases, and
// an offline SVG map of the grid cells (config grid.geojson) with camera positions and live alarm markers.
// Data: /api/me, /api/cameras, /api/map, /api/alarms, /api/case-deadlines, /api/cases; live over /api/ws. No tile
// server, no network.

import { AlarmPanel, recentDeadlines } from "./alarms.js";
import { ApiError, checkSession, getJSON } from "./api.js";
import { CasePanel, isOverdue } from "./cases.js";
import { showClip } from "./clip-view.js";
import { showAlarmHistory } from "./alarm-history.js";
import { installChrome, linkState } from "./chrome.js";
import { el } from "./dom.js";
import { EventSocket } from "./events.js";
import { Basemap } from "./basemap.js";
import "./video-tile.js";
import { FINISHED_STATES, clockText, dateText, eventLabel, setTimeZone, timeText } from "./format.js";

const STAGE_W = 1920;
const STAGE_H = 1080;
const HOT_S = 30 * 60;             // an alarm marks its camera on the map for 30 minutes unless cleared
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const now = () => Date.now() / 1000;

const cameras = new Map();
const hot = new Map();             // alarm_id → {camera_id, event, at}
const alarms = new AlarmPanel($("alarm-list"), { cameraName: (id) => cameras.get(id)?.name || id, onOpen: openAlarm });
// A case row opens the case in the review console's case view (until the case office has its own page).
const cases = new CasePanel($("case-list"), {
  onOpen: (c) => window.open(`/cases/${encodeURIComponent(c.id)}`, "_blank", "noopener") });
let project = null;                // lon/lat → map x/y
// The real basemap (Leaflet) unless ?map=grid asks for the plain SVG grid diagram.
const basemap = new URLSearchParams(location.search).get("map") === "grid" ? null
  : new Basemap($("basemap"), { onCamera: (id) => { const cam = cameras.get(id); if (cam) openLive(cam); } });

function fitStage() {
  const scale = Math.min(window.innerWidth / STAGE_W, window.innerHeight / STAGE_H);
  const x = (window.innerWidth - STAGE_W * scale) / 2;
  const y = (window.innerHeight - STAGE_H * scale) / 2;
  $("stage").style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function setFig(id, value, alert = false) {
  $(id).querySelector(".num").textContent = String(value);
  $(id).classList.toggle("alert", alert);
}

function renderFigures() {
  const all = [...cameras.values()].filter((c) => c.enabled !== false);
  const online = all.filter((c) => c.status && c.status.state === "online").length;
  setFig("fig-online", `${online}/${all.length}`);
  setFig("fig-offline", all.length - online, all.length - online > 0);
  setFig("fig-alarms", alarms.todayCount(now()));
  const { open, overdue } = cases.counts(now());
  setFig("fig-open", open);
  setFig("fig-overdue", overdue, overdue > 0);
}

/** A clicked alarm card: its evidence clip plays over the stage (deadline cards are not openable). */
function openAlarm(alarm) {
  if (!alarm) return;
  const [zh] = eventLabel(alarm.event);
  const camera = alarm.camera_name || cameras.get(alarm.camera_id)?.name || alarm.camera_id || "";
  showClip({ title: zh, sub: `${camera} · ${alarm.zone_name || alarm.zone_id || ""} · ${timeText(alarm.started_at ?? alarm.at, now())}`,
             clipUrl: alarm.clip_url, snapshotUrl: alarm.snapshot_url }, $("stage"));
}

// ------------------------------------------------------------------------------------------ map

/** An equirectangular projection of the bounding box of every cell and camera into the SVG, keeping scale. */
function makeProjection(points, w, h, pad = 60) {
  const lons = points.map((p) => p[0]);
  const lats = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180);   // a degree of longitude is shorter away from the equator
  const sx = (w - 2 * pad) / Math.max(1e-9, (x1 - x0) * k);
  const sy = (h - 2 * pad) / Math.max(1e-9, y1 - y0);
  const s = Math.min(sx, sy);
  const ox = (w - (x1 - x0) * k * s) / 2;
  const oy = (h - (y1 - y0) * s) / 2;
  return ([lon, lat]) => [ox + (lon - x0) * k * s, h - (oy + (lat - y0) * s)];
}

function drawMap(data) {
  const map = $("map");
  const box = map.parentElement.getBoundingClientRect();
  const w = Math.round(box.width / (map.getScreenCTM()?.a || 1)) || 1000;
  const h = Math.round(box.height / (map.getScreenCTM()?.d || 1)) || 800;
  map.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const points = [...data.cells.flatMap((c) => c.ring), ...data.cameras.map((c) => [c.lon, c.lat])];
  if (!points.length) return;
  project = makeProjection(points, w, h);
  const cells = svg("g", { class: "cells" });
  const groups = new Map();          // community → projected points of its cells (for its label)
  for (const cell of data.cells) {
    const xy = cell.ring.map((p) => project(p));
    const poly = svg("polygon", { points: xy.map((v) => v.map((n) => n.toFixed(1)).join(",")).join(" "), class: "cell" });
    poly.append(svg("title", {}, `${cell.name} ${cell.grid_code}`));
    cells.append(poly);
    const key = `${cell.street} ${cell.community}`.trim();
    groups.set(key, [...(groups.get(key) || []), ...xy]);
  }
  const labels = svg("g", { class: "areas" });
  placed = [];
  for (const [name, pts] of groups) {
    const x = pts.reduce((a, p) => a + p[0], 0) / pts.length;
    const y = Math.max(...pts.map((p) => p[1]));
    const at = placeLabel(name, 22, [[x, y + 34, "middle"], [x, y - 10, "middle"], [x, y + 60, "middle"]]);
    if (at) labels.append(svg("text", { x: at[0].toFixed(1), y: at[1].toFixed(1), "text-anchor": at[2] }, name));
  }
  const cams = svg("g", { class: "cams", id: "map-cams" });
  map.replaceChildren(graticule(w, h), cells, labels, scaleBar(w, h, points), svg("g", { id: "map-hot" }), cams);
  drawCameras();
}

/** Faint lines every 0.005° (about 500 m here), labelled at the edge: a sense of distance without a tile server. */
function graticule(w, h) {
  const g = svg("g", { class: "graticule" });
  const step = 0.005;
  for (let lon = 119.0; lon <= 122.0; lon += step) {
    const [x] = project([lon, 30.2]);
    if (x < 0 || x > w) continue;
    g.append(svg("line", { x1: x.toFixed(1), y1: 0, x2: x.toFixed(1), y2: h }));
  }
  for (let lat = 29.0; lat <= 32.0; lat += step) {
    const [, y] = project([120.1, lat]);
    if (y < 0 || y > h) continue;
    g.append(svg("line", { x1: 0, y1: y.toFixed(1), x2: w, y2: y.toFixed(1) }));
  }
  return g;
}

/** A 500 m scale bar in the bottom-left corner. */
function scaleBar(w, h, points) {
  const lat = points.reduce((a, p) => a + p[1], 0) / points.length;
  const metresPerDegLon = 111320 * Math.cos(lat * Math.PI / 180);
  const [xa] = project([120, lat]);
  const [xb] = project([120 + 500 / metresPerDegLon, lat]);
  const len = Math.abs(xb - xa);
  const g = svg("g", { class: "scale", transform: `translate(30,${h - 30})` });
  g.append(svg("line", { x1: 0, y1: 0, x2: len.toFixed(1), y2: 0 }), svg("line", { x1: 0, y1: -10, x2: 0, y2: 0 }),
    svg("line", { x1: len.toFixed(1), y1: -10, x2: len.toFixed(1), y2: 0 }),
    svg("text", { x: (len / 2).toFixed(1), y: -14, "text-anchor": "middle" }, "500 米 m"));
  return g;
}

// Labels already on the map (boxes in map units): a new label takes the first candidate spot that overlaps
// none of them, or is left out (its name stays in the marker's tooltip) — never drawn over another.
let placed = [];

function placeLabel(text, size, candidates, boxes = placed) {
  const w = [...String(text)].reduce((a, ch) => a + (ch.charCodeAt(0) > 255 ? size : size * 0.6), 0);
  for (const [x, y, anchor] of candidates) {
    const x0 = anchor === "middle" ? x - w / 2 : anchor === "end" ? x - w : x;
    const box = [x0 - 2, y - size, x0 + w + 2, y + size * 0.3];
    if (boxes.some((b) => box[0] < b[2] && box[2] > b[0] && box[1] < b[3] && box[3] > b[1])) continue;
    boxes.push(box);
    return [x, y, anchor];
  }
  return null;
}

/** Open cases per camera: {open, overdue}. */
function casesByCamera() {
  const out = new Map();
  for (const c of cases.cases || []) {
    if (!c.camera_id || FINISHED_STATES.has(c.state)) continue;
    const v = out.get(c.camera_id) || { open: 0, overdue: 0 };
    v.open += 1;
    if (isOverdue(c, now())) v.overdue += 1;
    out.set(c.camera_id, v);
  }
  return out;
}

function drawCameras() {
  if (!project) return;
  const g = $("map-cams");
  g.replaceChildren();
  const areaBoxes = placed.length ? placed.slice(0, $("map").querySelectorAll(".areas text").length) : [];
  placed = [...areaBoxes];
  const marks = [];
  for (const cam of cameras.values()) {
    if (!cam.position) continue;
    const [x, y] = project([cam.position.lon, cam.position.lat]);
    placed.push([x - 16, y - 16, x + 16, y + 16]);   // markers first: no label covers another camera's dot
    marks.push([cam, x, y]);
  }
  const byCam = casesByCamera();
  for (const [cam, x, y] of marks) {
    const state = (cam.status && cam.status.state) || "unknown";
    const m = svg("g", { class: `cam ${state}`, "data-camera": cam.id, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`,
                         role: "button", tabindex: "0" });
    m.append(svg("title", {}, `${cam.name || cam.id}：点击查看实时画面`), svg("circle", { r: 14 }));
    const name = cam.name || cam.id;
    const at = placeLabel(name, 26, [[x + 22, y + 10, "start"], [x - 22, y + 10, "end"], [x, y - 24, "middle"],
                                     [x, y + 44, "middle"]]);
    if (at) m.append(svg("text", { x: (at[0] - x).toFixed(1), y: (at[1] - y).toFixed(1), "text-anchor": at[2] }, name));
    const c = byCam.get(cam.id);
    if (c) {
      const badge = svg("g", { class: c.overdue ? "case-mark overdue" : "case-mark", transform: "translate(-30,-30)" });
      badge.append(svg("rect", { x: -20, y: -16, width: 40, height: 30, rx: 6 }),
        svg("text", { x: 0, y: 7, "text-anchor": "middle" }, `案${c.open}`));
      badge.append(svg("title", {}, `${c.open} 件办理中案件${c.overdue ? `，${c.overdue} 件超期` : ""}`));
      placed.push([x - 50, y - 46, x - 10, y - 14]);
      m.append(badge);
      m.dataset.cases = String(c.open);
    }
    m.addEventListener("click", () => openLive(cam));
    m.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openLive(cam); });
    g.append(m);
  }
  drawHot();
}

/** A camera on the map clicked: its live picture over the map (a <cw-tile>), 关闭 or Esc closes it. */
function openLive(cam) {
  closeLive();
  const tile = document.createElement("cw-tile");
  tile.setAttribute("camera", cam.id);
  tile.setAttribute("name", cam.name || cam.id);
  if (cam.status && cam.status.state) tile.setAttribute("camera-state", cam.status.state);
  const close = el("button", "live-close", "关闭 ", el("span", "en", "Close (Esc)"));
  close.type = "button";
  close.addEventListener("click", closeLive);
  const box = el("div", "live-view", el("div", "live-box", el("div", "live-head", el("span", "", cam.name || cam.id), close), tile));
  box.id = "live-view";
  box.addEventListener("click", (ev) => { if (ev.target === box) closeLive(); });
  $("stage").append(box);
}

function closeLive() {
  const box = $("live-view");
  if (box) box.remove();
}

document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeLive(); });

function drawHot() {
  if (!project) return;
  const g = $("map-hot");
  g.replaceChildren();
  const taken = [...placed];
  const t = now();
  for (const [id, a] of hot) {
    if (t - a.at > HOT_S) { hot.delete(id); continue; }
    const cam = cameras.get(a.camera_id);
    if (!cam || !cam.position) continue;
    const [x, y] = project([cam.position.lon, cam.position.lat]);
    const m = svg("g", { class: "hot", "data-alarm-id": id, "data-camera": a.camera_id, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})` });
    m.append(svg("circle", { r: 40, class: "ring" }), svg("circle", { r: 22, class: "core" }));
    // The event's name where it covers no other label (this draw's own copy of the taken boxes).
    const name = eventLabel(a.event)[0];
    const at = placeLabel(name, 28, [[x, y - 50, "middle"], [x + 48, y - 30, "start"],
      [x - 48, y - 30, "end"], [x, y + 76, "middle"]], taken);
    if (at) m.append(svg("text", { x: (at[0] - x).toFixed(1), y: (at[1] - y).toFixed(1), "text-anchor": at[2] }, name));
    g.append(m);
  }
}

function onAlarm(alarm) {
  if (!alarm || !alarm.alarm_id) return;
  if (alarm.phase === "cleared") hot.delete(alarm.alarm_id);
  else if (Number.isFinite(alarm.at) && now() - alarm.at < HOT_S) hot.set(alarm.alarm_id, alarm);
  drawHot();
  drawBasemap();
}

/** Camera states and live alarms on the basemap. */
function drawBasemap() {
  if (!basemap || !basemap.map) return;
  for (const cam of cameras.values()) basemap.setState(cam.id, cam.status && cam.status.state);
  basemap.setHot(new Set([...hot.values()].filter((a) => now() - a.at <= HOT_S).map((a) => a.camera_id)));
}

// ------------------------------------------------------------------------------------------ start

function tickClock() {
  const d = new Date();
  $("clock-time").textContent = clockText(d);
  $("clock-date").textContent = dateText(d);
}

let caseRetry = 0;
async function refreshCases() {
  clearTimeout(caseRetry);
  try {
    const body = await getJSON("/api/cases?limit=500");
    cases.set(body.cases, body.total, now());
    renderFigures();
    drawCameras();   // the map marks cameras with open cases
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    cases.unavailable(err.message);   // said as such, last rows greyed, asked again
    caseRetry = setTimeout(refreshCases, 10000);
  }
}

async function start() {
  fitStage();
  window.addEventListener("resize", fitStage);
  tickClock();
  setInterval(tickClock, 1000);
  setInterval(() => { drawHot(); renderFigures(); }, 30000);
  try {
    const me = await getJSON("/api/me");
    installChrome(me, { corner: true });
    if (me.site_name) $("site-name").textContent = me.site_name;
    if (me.timezone) { setTimeZone(me.timezone); tickClock(); }
    for (const c of (await getJSON("/api/cameras")).cameras || []) cameras.set(c.id, c);
    drawMap(await getJSON("/api/map"));
    if (basemap) {
      $("map").setAttribute("hidden", "");  // an SVG element has no .hidden property
      $("basemap").hidden = false;
      await basemap.load();
      drawBasemap();
    }
    const [history, due] = await Promise.all([getJSON("/api/alarms?limit=200"), recentDeadlines()]);
    const list = history.alarms || [];
    const deadlines = due.deadlines || [];
    alarms.load(list, now(), deadlines);
    for (const a of [...list].reverse()) onAlarm(a);
    renderFigures();
    let caseTimer = 0;
    const socket = new EventSocket({
      checkSession,
      onFrame: (msg) => {
        if (msg.type === "alarm" && msg.alarm) {
          alarms.add({ ...msg.alarm, id: msg.id }, now(), { fresh: true });
          onAlarm(msg.alarm);
          renderFigures();
        } else if (msg.type === "case_deadline" && msg.alarm) {
          alarms.addDeadline({ ...msg.alarm, id: msg.id }, now(), { fresh: true });
        } else if (msg.type === "camera_status" && msg.status && cameras.has(msg.status.camera_id)) {
          cameras.get(msg.status.camera_id).status = msg.status;
          drawCameras();
          drawBasemap();
          renderFigures();
        } else if (msg.type === "case") {
          clearTimeout(caseTimer);
          caseTimer = setTimeout(refreshCases, 300);
        }
      },
      onStatus: (state) => {
        $("link").dataset.state = state;
        $("link-text").textContent = { open: "实时连接正常", closed: "实时连接中断" }[state] || "连接中";
        linkState(state);
      },
    });
    socket.remember("alarms", list.length ? list[0].id : "0-0");
    socket.remember("case_deadlines", deadlines.length ? deadlines[0].id : "0-0");
    $("alarm-history").addEventListener("click", () => showAlarmHistory($("stage"), {
      cameraName: (id) => cameras.get(id)?.name || id }));
    socket.start();
    await refreshCases();
    window.citywallSituation = { cameras, hot, alarms, cases, socket, basemap, get labels() { return placed; } };
    document.body.dataset.ready = "1";
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    console.error(err);
    $("banner").textContent = `加载失败：${err.message}`;
    $("banner").hidden = false;
  }
}

start();
