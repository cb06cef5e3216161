// 案件详情 /cases/<id>: everything about one case and the actions the signed-in role may take now (the server
// says which: allowed_actions, can_supervise, can_export_recordings). Evidence photos and the alarm clip inline;
// 现场核查 puts the alarm's picture beside the camera's live tile and, on 现场抓拍 (S), a still taken now (kept as
// evidence); 下载案件证据包 (ZIP): the case's recordings for the roles that may export them; the field photos the
// unit sent; facts with the unit and the dispatch rule that chose it, the location (geo: link and a small map of the
// case's place and its camera on the site's basemap — offline tiles unless a tile source is configured: case-map.js),
// the deadline counting down in working time; the timeline; the broadcasts. Every action is sent with the case
// version: a 409 shows the case as it is now and says someone else acted first. Keys: 1–9 the action buttons, S, V,
// P print, Esc back to the list.

import { getFile, getJSON, send, checkSession } from "./api.js";
import { installChrome, linkState } from "./chrome.js";
import { el, safePath } from "./dom.js";
import { EventSocket } from "./events.js";
import { dateTimeText, setTimeZone } from "./format.js";
import { setRecordingLink } from "./recording-link.js";
import { showCaseMap } from "./case-map.js";
import { actorText, askAction, countdown, FINISHED, loadWorkCalendar, noteText, photoFigure, stageBadge,
  timelineRows } from "./case-common.js";

const $ = (id) => document.getElementById(id);
const caseId = decodeURIComponent(location.pathname.split("/")[2] || "");
const state = { c: null, busy: false, tile: null };
const now = () => Date.now() / 1000;
const isImage = (url) => /\.(jpe?g|png)$/i.test(url || "");

function say(text, kind = "warn") {
  $("message").textContent = text;
  $("message").dataset.kind = kind;
}

async function load() {
  try {
    const c = await getJSON(`/api/cases/${encodeURIComponent(caseId)}`);
    await loadWorkCalendar([c], now());
    show(c);
  } catch (err) {
    say(err.status === 404 ? "找不到该案件（或不属于您的单位）" : `案件读取失败：${err.message}`);
  }
}

function show(c) {
  state.c = c;
  document.title = `${c.case_no} — 案件详情`;
  document.body.dataset.caseId = c.id;
  document.body.dataset.state = c.state;
  document.body.dataset.version = String(c.version);
  renderHead();
  renderEvidence(c);
  renderFacts(c);
  renderActions(c);
  $("timeline").replaceChildren(...timelineRows(c));
  const casts = c.broadcasts || [];
  $("broadcast-panel").hidden = !casts.length;
  $("broadcasts").replaceChildren(...casts.slice().reverse().map((b) => el("li", "tl-row",
    el("span", "tl-when", dateTimeText(b.at)), el("span", "", noteText(b.note, c)))));
  const photos = c.photos || [];
  const field = photos.filter((p) => p.kind === "field_photo");
  $("photos").replaceChildren(...(field.length ? field.map((p) => photoFigure(p.url,
    `${actorText(p.by)} · 上传 ${dateTimeText(p.at)}${p.taken_at ? ` · 拍摄 ${p.taken_at.replace("T", " ")}` : ""}${p.note ? ` · ${p.note}` : ""}`))
    : [el("p", "cd-none", "单位尚未上传处置照片")]));
  const snap = photos.filter((p) => p.kind === "site_snapshot").pop();
  if (snap && safePath(snap.url)) {
    $("cmp-now").src = snap.url;
    $("cmp-now").hidden = false;
    $("cmp-now-title").textContent = `现场抓拍 ${dateTimeText(snap.at)}`;
  }
  renderMap(c);
  $("print").href = `/cases/${encodeURIComponent(c.id)}/print`;
  $("export-zip").hidden = !c.can_export_recordings;  // the server asks the access table (monitor, leader, admin)
  $("snapshot").disabled = FINISHED.has(c.state) || !c.camera_id;
}

/** The case's place (red) and its camera (blue) on the site's basemap (case-map.js), moved when the case changes. */
function renderMap(c) {
  showCaseMap($("map-panel"), $("case-map"), $("map-legend"), c);
}

function renderHead() {
  const c = state.c;
  $("head").replaceChildren(...[el("span", "no", c.case_no), el("span", "title", c.title || ""),
    el("span", "badge state", c.state_label || c.state), stageBadge(c),
    c.supervised ? el("span", "badge supervised", `督办 ×${c.supervise_count}`) : null,
    el("span", `cd-count ${c.deadline_stage || ""}`, countdown(c, now()))].filter(Boolean));
}

function renderEvidence(c) {
  const urls = c.alarm_evidence_urls || c.evidence_urls || [];
  const pictures = urls.filter(isImage);
  const clip = urls.find((u) => /\.mp4$/i.test(u || ""));
  $("evidence").replaceChildren(...(pictures.length
    ? pictures.map((u, i) => photoFigure(u, `告警截图 ${i + 1}`)) : [el("p", "cd-none", "无告警截图")]));
  $("play").disabled = !safePath(clip);
  $("play").dataset.clip = safePath(clip) || "";
  setRecordingLink($("recording"), c.camera_id, c.reported_at);  // the continuous recording (issue 15)
  const first = pictures[0];
  if (first && safePath(first)) $("cmp-alarm").src = first;
  // The camera live beside the alarm's picture (for 核查), while the case is open.
  if (c.camera_id && !FINISHED.has(c.state) && !state.tile) {
    state.tile = document.createElement("cw-tile");
    state.tile.className = "cd-live";
    state.tile.setAttribute("camera", c.camera_id);
    state.tile.setAttribute("name", c.camera_name || c.camera_id);
    $("live-slot").append(state.tile);
  }
}

function renderFacts(c) {
  const loc = c.location;
  const place = el("span", "", c.address || "—");
  // The camera's position as a geo: link (a map application opens it); /situation shows it on the grid map.
  const map = loc ? el("a", "", ` 坐标 ${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)}`) : null;
  if (map) map.href = loc.geo;
  const grid = loc ? el("a", "", " 态势图") : null;
  if (grid) grid.href = "/situation";
  const limit = c.time_limit && c.time_limit.label ? `（时限 ${c.time_limit.label}，按工作日历）` : "";
  const facts = [
    ["类别", `${c.kind || ""} ${c.code || ""} ${c.category_name || ""}`],
    ["紧急程度", c.urgency || "一般"],
    ["责任单位", el("span", "", c.unit_name || "—", c.dispatch_reason ? el("span", "why", `派遣规则：${c.dispatch_reason}`) : null)],
    ["地点", el("span", "", place, map, grid, el("span", "why", [c.street, c.community, c.grid_code && `网格 ${c.grid_code}`].filter(Boolean).join(" · ")))],
    ["摄像头", c.camera_name || c.camera_id || "—"],
    ["上报时间", dateTimeText(c.reported_at)],
    ["截止时间", `${dateTimeText(c.deadline_at)}${limit}`],
    ["剩余", countdown(c, now())],
    ["督办", c.supervised ? `${c.supervise_count} 次，最近 ${actorText(c.last_supervision.actor)} ${dateTimeText(c.last_supervision.at)}` : "—"],
    ["版本", String(c.version)],
  ];
  $("facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", "", k), el("dd", "", v)]));
}

function renderActions(c) {
  const list = (c.allowed_actions || []).map((a) => ({ action: a.action, label: a.label }));
  if (c.can_supervise) list.push({ action: "supervise", label: "督办" });
  const buttons = list.map((a, i) => {
    const kind = ["close", "verify", "dispatch", "start", "feedback"].includes(a.action) ? "ok"
      : ["void", "reject", "return", "rework"].includes(a.action) ? "bad" : "warn";
    const b = el("button", kind, i < 9 ? el("kbd", "", String(i + 1)) : null, ` ${a.label}`, el("span", "en", a.action));
    b.type = "button";
    b.dataset.action = a.action;
    b.addEventListener("click", () => act(a.action, a.label));
    return b;
  });
  $("actions").replaceChildren(...(buttons.length ? buttons
    : [el("p", "cd-none", FINISHED.has(c.state) ? "案件已办结" : "当前角色在此阶段无可办理操作")]));
}

async function act(action, label) {
  const c = state.c;
  if (state.busy || !c) return;
  const extra = await askAction(c, action, label);
  if (!extra) return;
  state.busy = true;
  try {
    const url = action === "supervise" ? `/api/cases/${encodeURIComponent(c.id)}/supervise`
      : `/api/cases/${encodeURIComponent(c.id)}/actions`;
    const body = action === "supervise" ? { version: c.version, ...(extra.note ? { note: extra.note } : {}) }
      : { action, version: c.version, ...extra };
    const r = await send("POST", url, body);
    if (r.ok) {
      $("conflict").hidden = true;
      say(`${c.case_no}：${label} 完成`, "ok");
    } else if (r.status === 409 && r.data.case) {
      $("conflict").hidden = false;
      $("conflict").textContent = `案件已被他人处理，现为「${r.data.case.state_label}」（版本 ${r.data.case.version}）。` +
        "下面显示的是最新状态，请核对后再操作。";
      say(`${c.case_no}：${r.message}`);
    } else {
      say(`${c.case_no}：${label} 未完成：${r.message}`);
    }
    await load();
  } finally {
    state.busy = false;
  }
}

async function snapshot() {
  const c = state.c;
  if (!c || $("snapshot").disabled) return;
  $("snapshot").disabled = true;
  say("正在抓拍……", "ok");
  try {
    const r = await send("POST", `/api/cases/${encodeURIComponent(c.id)}/snapshot`);
    if (r.ok) say("已抓拍当前画面，已存为案件证据", "ok");
    else say(`抓拍失败：${r.data.error_zh || r.message}`);
    await load();
  } finally {
    $("snapshot").disabled = FINISHED.has(state.c.state);
  }
}

/** 下载案件证据包: the case's recordings and manifest as one ZIP (GET /api/cases/<id>/recordings), saved under the
 *  server's file name; a refusal (nothing recorded, no space for the export) is said on the page, not downloaded. */
async function exportZip() {
  const c = state.c;
  const b = $("export-zip");
  if (!c || b.hidden || b.disabled) return;
  b.disabled = true;
  say("正在打包案件证据（录像 ZIP）……", "ok");
  try {
    const { blob, name } = await getFile(`/api/cases/${encodeURIComponent(c.id)}/recordings`, `${c.case_no}-recordings.zip`);
    const a = el("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    say(`已下载案件证据包 ${name}（${(blob.size / 1048576).toFixed(1)} MB）`, "ok");
  } catch (err) {
    say(`证据包下载失败：${err.message}`);
  } finally {
    b.disabled = false;
  }
}

function playClip() {
  const url = $("play").dataset.clip;
  if (!url) return;
  const video = $("clip");
  video.hidden = !video.hidden;
  if (!video.hidden) {
    if (video.getAttribute("src") !== url) video.src = url;
    video.currentTime = 0;
    video.play().catch(() => {});
  } else video.pause();
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || document.querySelector("dialog[open]") || document.querySelector(".zoom")) return;
  if (ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement) return;
  const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  if (/^[1-9]$/.test(key)) {
    const b = $("actions").querySelectorAll("button")[Number(key) - 1];
    if (b) { ev.preventDefault(); b.click(); }
  } else if (key === "s") { ev.preventDefault(); snapshot(); }
  else if (key === "v") { ev.preventDefault(); playClip(); }
  else if (key === "p") { ev.preventDefault(); location.assign($("print").href); }
  else if (key === "Escape") { ev.preventDefault(); history.length > 1 && document.referrer.includes("/cases") ? history.back() : location.assign("/cases"); }
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
  if (me.user.role !== "unit") await import("./video-tile.js");  // the live tile (unit users have no live video)
  $("snapshot").addEventListener("click", snapshot);
  $("play").addEventListener("click", playClip);
  $("export-zip").addEventListener("click", exportZip);
  document.addEventListener("keydown", onKey);
  await load();
  setInterval(() => { if (state.c) renderHead(); }, 1000);
  if (me.user.role !== "unit") {
    const socket = new EventSocket({
      onFrame: (msg) => { if (msg.type === "case" && (msg.case_id === caseId || (msg.case && msg.case.id === caseId))) load(); },
      onStatus: linkState, checkSession,
    });
    socket.start();
  }
  document.body.dataset.ready = "1";
}

main();
