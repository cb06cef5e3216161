// 摄像机与区域 (admin): the camera list with live state, the add/edit form with 测试连接, enable/disable/delete,
// YAML import with the diff shown before applying, and the zone editor on the camera's current picture.
// Every change goes to /api/admin/* and is applied by the server at once (no restart); a refusal names the field.

import { getJSON, send } from "./api.js";
import { installChrome } from "./chrome.js";
import { el } from "./dom.js";
import { EVENT_LABELS } from "./format.js";

const $ = (id) => document.getElementById(id);
const DETECTOR_EVENTS = ["vending", "road_occupation", "bin_overflow", "shop_front", "bike_parking", "exposed_rubbish"];
const STATE_TEXT = { online: "在线", offline: "离线", connecting: "连接中", unknown: "未知", error: "故障" };
const KIND_TEXT = { auth: "登录被拒", refused: "连接被拒绝", timeout: "超时", no_video: "无视频轨", transport: "传输方式不支持",
  not_found: "路径不存在", protocol: "协议错误", bad_url: "地址无效" };

let cameras = [];        // /api/admin/cameras (URLs masked)
let statuses = {};       // id → /api/cameras entry
let editing = null;      // camera id being edited, null for a new one
let zones = [];          // the zones of the camera open in the editor (edited locally until saved)
let zoneIndex = -1;
let candidates = null;   // {available, boxes, reason} from /api/admin/cameras/{id}/candidates

function message(text, ok = false) {
  const m = $("message");
  m.textContent = text;
  m.classList.toggle("ok", ok);
}

/** A refused change: the server's problems list, one line per key path. */
function refusalText(result) {
  // Admin refusals carry their reason in Chinese already ("password: 密码过于常见…"): show it, not just "输入有误".
  const raw = (result.data && result.data.error) || "";
  if (!(result.data && result.data.problems) && /[\u4e00-\u9fff]/.test(raw)) return raw.replace(/^[\w.[\]]+: /, "");
  const problems = (result.data && result.data.problems) || [];
  if (problems.length) return "修改被拒绝（配置无效）：\n" + problems.map((p) => `${p.path}: ${p.reason}`).join("\n");
  return result.message || "操作失败";
}

async function load() {
  const [admin, live] = await Promise.all([getJSON("/api/admin/cameras"), getJSON("/api/cameras")]);
  cameras = admin.cameras;
  statuses = Object.fromEntries(live.cameras.map((c) => [c.id, c]));
  renderTable();
}

function renderTable() {
  const body = $("cameras").querySelector("tbody");
  body.replaceChildren(...cameras.map((cam) => {
    const live = statuses[cam.id];
    const state = cam.enabled === false ? "disabled" : ((live && live.status && live.status.state) || "unknown");
    const stateCell = el("td", `state-${state}`, cam.enabled === false ? "已停用" : (STATE_TEXT[state] || state));
    const edit = el("button", "", "编辑");
    edit.type = "button";
    edit.addEventListener("click", () => openCamera(cam.id));
    const toggle = el("button", "", cam.enabled === false ? "启用" : "停用");
    toggle.type = "button";
    toggle.addEventListener("click", () => change("PATCH", `/api/admin/cameras/${encodeURIComponent(cam.id)}`,
      { enabled: cam.enabled === false }));
    const zonesButton = el("button", "", "区域");
    zonesButton.type = "button";
    zonesButton.addEventListener("click", () => openZones(cam.id));
    const del = el("button", "danger", "删除");
    del.type = "button";
    del.addEventListener("click", () => {
      if (confirm(`删除摄像机 ${cam.name}（${cam.id}）？`)) change("DELETE", `/api/admin/cameras/${encodeURIComponent(cam.id)}`);
    });
    const row = el("tr", cam.enabled === false ? "disabled" : "", el("td", "", cam.id), el("td", "", cam.name), stateCell,
      el("td", "", String((cam.zones || []).length)), el("td", "", edit, " ", toggle, " ", zonesButton, " ", del));
    row.dataset.camera = cam.id;
    if (cam.id === editing) row.classList.add("selected");
    return row;
  }));
}

async function change(method, url, body) {
  const result = await send(method, url, body);
  if (!result.ok) {
    message(refusalText(result));
    return null;
  }
  const applied = result.data.applied || {};
  const what = [["cameras_added", "已接入"], ["cameras_removed", "已断开"], ["cameras_reconnected", "已重连"],
    ["cameras_reanalysed", "检测已更新"]].filter(([k]) => (applied[k] || []).length)
    .map(([k, zh]) => `${zh}：${applied[k].join("、")}`);
  message(`已保存并立即生效。${what.join("；")}${(result.data.errors || []).length ? "\n部分未生效：" + result.data.errors.join("；") : ""}`, true);
  await load();
  return result.data;
}

// ------------------------------------------------------------------------------------------------ camera form

function formCamera() {
  const f = $("camera").elements;
  const cam = {
    id: f.id.value.trim(), name: f.name.value.trim(), url: f.url.value.trim(),
    position: { lon: Number(f.lon.value), lat: Number(f.lat.value), address: f.address.value.trim(),
      street: f.street.value.trim(), community: f.community.value.trim() },
    enabled: f.enabled.checked,
  };
  if (f.substream_url.value.trim()) cam.substream_url = f.substream_url.value.trim();
  if (f.transport.value) cam.transport = f.transport.value;
  const old = cameras.find((c) => c.id === editing);
  if (old) cam.zones = old.zones || [];
  return cam;
}

function openCamera(id, { keepMessage = false } = {}) {
  editing = id;
  const cam = cameras.find((c) => c.id === id) || { position: {} };
  const f = $("camera").elements;
  f.id.value = cam.id || ""; f.id.readOnly = Boolean(id);
  f.name.value = cam.name || ""; f.url.value = cam.url || ""; f.substream_url.value = cam.substream_url || "";
  f.transport.value = cam.transport || "";
  f.lon.value = cam.position.lon ?? ""; f.lat.value = cam.position.lat ?? "";
  f.address.value = cam.position.address || ""; f.street.value = cam.position.street || "";
  f.community.value = cam.position.community || ""; f.enabled.checked = cam.enabled !== false;
  $("form-title").replaceChildren(id ? `编辑 ${cam.name}` : "新增摄像机", el("span", "en", id ? "Edit camera" : "New camera"));
  $("probe").hidden = true;
  if (!keepMessage) message("");
  renderTable();
  placeMarker();
}

async function save(ev) {
  ev.preventDefault();
  const cam = formCamera();
  if (editing) await change("PUT", `/api/admin/cameras/${encodeURIComponent(editing)}`, cam);
  else if (await change("POST", "/api/admin/cameras", cam)) openCamera(cam.id, { keepMessage: true });
}

async function testConnection() {
  const f = $("camera").elements;
  const box = $("probe");
  box.hidden = false;
  box.replaceChildren(el("span", "", "正在连接…"), el("span", "", ""));
  const result = await send("POST", "/api/admin/cameras/test",
    { url: f.url.value.trim(), id: editing || undefined, transport: f.transport.value || undefined });
  const r = result.data;
  if (!result.ok) {
    box.replaceChildren(el("span", "", "失败"), el("span", "state-error", result.message));
    return;
  }
  if (!r.ok) {
    box.replaceChildren(el("span", "", "结果"), el("span", "state-error", `${KIND_TEXT[r.kind] || "失败"}：${r.error}`));
    box.dataset.kind = r.kind;
    return;
  }
  box.dataset.kind = "ok";
  const img = el("img");
  img.src = r.snapshot_jpeg;
  img.alt = "快照 snapshot";
  img.style.maxWidth = "100%";
  box.replaceChildren(
    el("span", "", "结果"), el("span", "state-online", "连接成功"),
    el("span", "", "编码"), el("span", "", r.codec.toUpperCase()),
    el("span", "", "分辨率"), el("span", "", `${r.width}×${r.height}`),
    el("span", "", "帧率"), el("span", "", `${r.fps} fps`),
    el("span", "", "传输"), el("span", "", r.transport.toUpperCase()),
    el("span", "", "快照"), img);
}

// ------------------------------------------------------------------------------------------------ position

// The camera's position by dragging its marker on the basemap. Points go through /api/map/convert, so a GCJ-02
// basemap shows and picks them where they are while WGS-84 is stored.
let posMap = null;
let posMarker = null;

async function setupPositionMap() {
  const L = window.L;
  const data = await getJSON("/api/map/basemap");
  const t = data.tiles;
  posMap = L.map("position-map", { minZoom: t.min_zoom, maxZoom: t.max_zoom, zoomSnap: 0.25 });
  L.tileLayer(t.url, { subdomains: t.subdomains || "abc", minZoom: t.min_zoom, maxZoom: t.max_zoom }).addTo(posMap);
  const cells = L.featureGroup(data.cells.map((c) => L.polygon(c.ring.map(([lon, lat]) => [lat, lon]),
    { weight: 1, fillOpacity: 0.05, interactive: false }))).addTo(posMap);
  if (cells.getLayers().length) posMap.fitBounds(cells.getBounds());
  else posMap.setView([30.27, 120.16], 14);
  posMarker = L.marker(posMap.getCenter(), { draggable: true, title: "拖动设置位置" }).addTo(posMap);
  posMarker.on("dragend", async () => {
    const p = posMarker.getLatLng();
    const w = await getJSON(`/api/map/convert?lon=${p.lng}&lat=${p.lat}&to=wgs84`);
    const f = $("camera").elements;
    f.lon.value = w.lon.toFixed(6);
    f.lat.value = w.lat.toFixed(6);
    message("位置已更新，保存后生效 (position set; save to apply)", true);
  });
}

async function placeMarker() {
  const f = $("camera").elements;
  const lon = Number(f.lon.value), lat = Number(f.lat.value);
  if (!posMarker || !f.lon.value || !f.lat.value || !Number.isFinite(lon) || !Number.isFinite(lat)) return;
  try {
    const d = await getJSON(`/api/map/convert?lon=${lon}&lat=${lat}&to=display`);
    posMarker.setLatLng([d.lat, d.lon]);
    posMap.panTo([d.lat, d.lon]);
  } catch (_) { /* out of range: the field keeps what was typed, the save names it */ }
}

// ------------------------------------------------------------------------------------------------ zones

function openZones(id) {
  const cam = cameras.find((c) => c.id === id);
  if (!cam) return;
  openCamera(id, { keepMessage: true });
  zones = JSON.parse(JSON.stringify(cam.zones || []));
  candidates = null;
  $("zones").hidden = false;
  $("zone-camera").textContent = cam.name;
  pickZone(zones.length ? 0 : -1);
  refreshPicture();
}

/** Point-in-polygon (even-odd), normalised coordinates. */
function inside([x, y], poly) {
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

/** Whether the zone would catch a candidate box: standing in it (bottom centre inside, as detection decides) and
 *  not smaller than its min area. */
function caught(box, z) {
  if (!z || (z.polygon || []).length < 3) return false;
  const [x1, y1, x2, y2] = box;
  return inside([(x1 + x2) / 2, y2], z.polygon) && (x2 - x1) * (y2 - y1) >= (Number(z.min_area) || 0);
}

async function refreshCandidates() {
  if (!editing) return;
  try {
    candidates = await getJSON(`/api/admin/cameras/${encodeURIComponent(editing)}/candidates`);
  } catch (_) {
    candidates = { available: false, boxes: [], reason: "无法读取检测候选" };
  }
  draw();
}

function candidateText() {
  const out = $("candidates");
  if (!candidates) { out.textContent = ""; return; }
  if (!candidates.available) { out.textContent = `检测候选预览不可用：${candidates.reason}`; return; }
  const z = zones[zoneIndex];
  const n = candidates.boxes.filter((b) => caught(b, z)).length;
  out.textContent = `当前 ${candidates.boxes.length} 个静止候选，本区域将命中 ${n} 个 (candidates now: ${candidates.boxes.length}; this zone catches ${n})`;
  out.dataset.caught = String(n);
}

async function refreshPicture() {
  refreshCandidates();
  const img = $("snapshot");
  img.removeAttribute("src");
  const result = await send("POST", "/api/admin/cameras/test", { id: editing });
  if (result.ok && result.data.ok) {
    img.onload = draw;
    img.src = result.data.snapshot_jpeg;
  }
  else message(`取不到当前画面：${(result.data && result.data.error) || result.message}（仍可按比例画区域）`);
}

function pickZone(i) {
  zoneIndex = i;
  const pick = $("zone-pick");
  pick.replaceChildren(...zones.map((z, k) => {
    const o = el("option", "", `${z.name || z.id}`);
    o.value = String(k);
    return o;
  }));
  pick.value = String(i);
  const z = zones[i];
  const f = $("zone").elements;
  f.id.value = z ? z.id : ""; f.name.value = z ? z.name || "" : "";
  f.dwell_s.value = z ? z.dwell_s ?? 60 : 60; f.min_area.value = z ? z.min_area ?? 0.002 : 0.002;
  f.schedule.value = z ? (z.schedule || []).join(", ") : "";
  $("z-events").replaceChildren(...DETECTOR_EVENTS.map((ev) => {
    const box = el("input");
    box.type = "checkbox"; box.name = "events"; box.value = ev;
    box.checked = Boolean(z && (z.events || []).includes(ev));
    box.addEventListener("change", readZone);
    return el("label", "", box, EVENT_LABELS[ev][0]);
  }));
  draw();
}

function readZone() {
  const z = zones[zoneIndex];
  if (!z) return;
  const f = $("zone").elements;
  z.id = f.id.value.trim(); z.name = f.name.value.trim();
  z.dwell_s = Number(f.dwell_s.value); z.min_area = Number(f.min_area.value);
  z.schedule = f.schedule.value.split(/[,，\s]+/).filter(Boolean);
  z.events = [...$("z-events").querySelectorAll("input:checked")].map((b) => b.value);
  draw();
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** The zones on the picture: the one being edited with its points, the others dimmed; the min-area box to scale. */
function draw() {
  const overlay = $("overlay");
  const box = overlay.getBoundingClientRect();
  const aspect = box.height ? box.width / box.height : 16 / 9;  // on screen: keeps the point markers round
  const img = $("snapshot");
  const frameAspect = img.naturalHeight ? img.naturalWidth / img.naturalHeight : 16 / 9;  // the camera's pixels
  const r = 0.008;
  const nodes = [];
  zones.forEach((z, k) => {
    const poly = svg("polygon", { points: (z.polygon || []).map((p) => p.join(",")).join(" ") });
    if (k !== zoneIndex) poly.classList.add("other");
    nodes.push(poly);
  });
  const z = zones[zoneIndex];
  if (z) {
    (z.polygon || []).forEach(([x, y], k) => {
      const c = svg("ellipse", { cx: x, cy: y, rx: r / aspect, ry: r });
      c.classList.add("point");
      c.dataset.point = String(k);
      nodes.push(c);
    });
    const area = Number(z.min_area) || 0;
    if (area > 0 && (z.polygon || []).length) {
      // A square object covering min_area of the frame's pixels, drawn to scale at the zone's centre:
      // side s = sqrt(area·W·H) pixels → s/W = sqrt(area/aspect) wide, s/H = sqrt(area·aspect) high.
      const w = Math.sqrt(area / frameAspect), h = Math.sqrt(area * frameAspect);
      const cx = z.polygon.reduce((s, p) => s + p[0], 0) / z.polygon.length;
      const cy = z.polygon.reduce((s, p) => s + p[1], 0) / z.polygon.length;
      const rect = svg("rect", { x: cx - w / 2, y: cy - h / 2, width: w, height: h });
      rect.classList.add("min-area");
      nodes.push(rect);
    }
  }
  for (const box of (candidates && candidates.boxes) || []) {
    const [x1, y1, x2, y2] = box;
    const rect = svg("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1 });
    rect.classList.add("candidate");
    if (caught(box, z)) rect.classList.add("caught");
    nodes.push(rect);
  }
  overlay.replaceChildren(...nodes);
  candidateText();
}

function pointer(ev) {
  const box = $("overlay").getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, Math.round(v * 1000) / 1000));
  return [clamp((ev.clientX - box.left) / box.width), clamp((ev.clientY - box.top) / box.height)];
}

let dragging = null;
function setupOverlay() {
  const overlay = $("overlay");
  overlay.addEventListener("pointerdown", (ev) => {
    const z = zones[zoneIndex];
    if (!z) return;
    const k = ev.target.dataset && ev.target.dataset.point;
    if (k !== undefined) {
      dragging = Number(k);
      overlay.setPointerCapture(ev.pointerId);
      return;
    }
    z.polygon = [...(z.polygon || []), pointer(ev)];
    draw();
  });
  overlay.addEventListener("pointermove", (ev) => {
    if (dragging === null) return;
    zones[zoneIndex].polygon[dragging] = pointer(ev);
    draw();
  });
  overlay.addEventListener("pointerup", () => { dragging = null; });
  overlay.addEventListener("dblclick", (ev) => {
    const k = ev.target.dataset && ev.target.dataset.point;
    if (k === undefined || !zones[zoneIndex]) return;
    zones[zoneIndex].polygon.splice(Number(k), 1);
    draw();
  });
}

async function saveZones(ev) {
  ev.preventDefault();
  readZone();
  await change("PATCH", `/api/admin/cameras/${encodeURIComponent(editing)}`, { zones });
  const cam = cameras.find((c) => c.id === editing);
  if (cam) zones = JSON.parse(JSON.stringify(cam.zones || zones));
  draw();
}

// ------------------------------------------------------------------------------------------------ import

let importText = "";
async function checkImport() {
  importText = $("import-text").value;
  const result = await send("POST", "/api/admin/config/import", { yaml: importText });
  const out = $("import-diff");
  out.hidden = false;
  if (!result.ok) {
    out.textContent = refusalText(result);
    $("import-apply").disabled = true;
    return;
  }
  const d = result.data;
  const lines = d.diff.map((l) => `${l.path}: ${"old" in l ? JSON.stringify(l.old) : "（无）"} → ${"new" in l ? JSON.stringify(l.new) : "（删除）"}`);
  if (d.restart_needed.length) lines.push(`需重启才生效（未应用）：${d.restart_needed.join("、")}`);
  out.textContent = lines.length ? lines.join("\n") : "与当前配置相同 (no change)";
  $("import-apply").disabled = !d.diff.length;
}

async function applyImport() {
  const result = await send("POST", "/api/admin/config/import", { yaml: importText, apply: true });
  $("import-diff").textContent = result.ok ? "已应用 (applied)" : refusalText(result);
  $("import-apply").disabled = true;
  await load();
}

async function main() {
  const me = await getJSON("/api/me");
  installChrome(me);
  $("camera").addEventListener("submit", save);
  $("test").addEventListener("click", testConnection);
  $("new").addEventListener("click", () => openCamera(null));
  $("import-open").addEventListener("click", () => { $("import").hidden = !$("import").hidden; });
  $("import-check").addEventListener("click", checkImport);
  $("import-apply").addEventListener("click", applyImport);
  $("zone-pick").addEventListener("change", (ev) => pickZone(Number(ev.target.value)));
  $("zone-new").addEventListener("click", () => {
    zones.push({ id: `zone-${zones.length + 1}`, name: "", events: ["vending"], polygon: [], dwell_s: 60, min_area: 0.002 });
    pickZone(zones.length - 1);
  });
  $("zone-delete").addEventListener("click", () => {
    if (zoneIndex >= 0) zones.splice(zoneIndex, 1);
    pickZone(zones.length ? 0 : -1);
  });
  $("zone-picture").addEventListener("click", refreshPicture);
  $("candidates-refresh").addEventListener("click", refreshCandidates);
  $("zone").addEventListener("input", readZone);
  $("zone").addEventListener("submit", saveZones);
  setupOverlay();
  window.addEventListener("resize", draw);
  for (const name of ["lon", "lat"]) $("camera").elements[name].addEventListener("change", placeMarker);
  await setupPositionMap().catch((err) => console.warn("position map unavailable", err));
  await load();
  openCamera(null);
  setInterval(() => load().catch(() => {}), 5000);
  document.body.dataset.ready = "1";
}

main();
