// 录像回放 / Playback: a camera's recording over the page — a <cw-tile> in playback mode, a 24 h timeline bar
// (recorded spans, gaps, alarm markers from /api/recordings/<camera>; click to seek), 1×/2×/4×/8×, 暂停/继续,
// 单帧, 后退30秒, 导出 (export roles: the minute around the playhead) and 回到直播 (the same tile goes live).
// Esc or 关闭 closes it. One panel at a time. Exposed for tests: the panel element's .tile and .timeline.

import { getJSON } from "./api.js";
import { actionButton, bilingual, el, installStyle } from "./dom.js";
import { dateTimeText } from "./format.js";
import { errorText } from "./messages.js";
import "./video-tile.js";

const DAY_S = 86400;
const SPEEDS = [1, 2, 4, 8];
const EXPORT_ROLES = ["monitor", "leader", "admin"];
let open = null;

const STYLE = `
.pb-view { position: fixed; inset: 0; z-index: 1000; background: rgba(5, 8, 12, .92); display: flex;
  align-items: center; justify-content: center; }
.pb-box { width: min(1280px, 94vw); display: flex; flex-direction: column; gap: 10px; color: #f5f7fa; }
.pb-head { display: flex; align-items: center; gap: 12px; font-size: 20px; }
.pb-head .pb-title { flex: 1; font-weight: 700; }
.pb-box cw-tile { width: 100%; aspect-ratio: 16 / 9; }
.pb-bar { position: relative; height: 34px; background: #3a4350; border-radius: 4px; cursor: pointer; overflow: hidden; }
.pb-span { position: absolute; top: 0; bottom: 0; background: #16a34a; }
.pb-mark { position: absolute; top: 0; bottom: 0; width: 3px; background: #ff3b3b; }
.pb-head-line { position: absolute; top: -2px; bottom: -2px; width: 2px; background: #ffd400; }
.pb-hours { position: relative; height: 16px; font-size: 12px; color: #aab4c0; }
.pb-hours span { position: absolute; transform: translateX(-50%); }
.pb-controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
.pb-controls button { font-size: 16px; padding: 6px 12px; }
.pb-controls button.on { background: #2563eb; color: #fff; }
.pb-controls .pb-pos { margin-left: auto; font-variant-numeric: tabular-nums; }
.pb-legend { font-size: 13px; color: #aab4c0; }
`;

function ensureStyle() {
  installStyle("pb-style", STYLE);
}


/** Close the open panel, if any. */
export function closePlayback() {
  if (!open) return;
  open.cleanup();
  open = null;
}

/** Open the panel for ``camera`` at ``at`` (Unix seconds; default 60 s ago); ``role`` decides 导出. */
export function openPlayback({ camera, name = "", at = 0, role = "" }) {
  closePlayback();
  ensureStyle();
  const now = () => Date.now() / 1000;
  let until = now();
  let since = until - DAY_S;
  const tile = document.createElement("cw-tile");
  tile.setAttribute("camera", camera);
  tile.setAttribute("name", name || camera);
  tile.setAttribute("speed", "1");
  tile.setAttribute("playback-at", String(at || until - 60));
  const bar = el("div", "pb-bar");
  bar.title = "点击跳转 / Click to seek";
  const playhead = el("div", "pb-head-line");
  const hours = el("div", "pb-hours");
  const pos = el("span", "pb-pos", "");
  const legend = el("div", "pb-legend", "绿色：有录像 · 灰色：无录像 · 红线：告警/案件 (Green: recorded · Grey: gap · Red: alarms)");
  const speedButtons = SPEEDS.map((s) => {
    const b = actionButton(`${s}×`, "", () => setSpeed(s));
    b.dataset.speed = String(s);
    return b;
  });
  const pauseButton = actionButton("暂停", "Pause", () => {
    if (tile.stats.held) { tile.resume(); pauseButton.replaceChildren(bilingual("暂停", "Pause")); }
    else { tile.pause(); pauseButton.replaceChildren(bilingual("继续", "Resume")); }
  });
  const seek = (t) => {
    tile.setAttribute("playback-at", String(Math.max(since, Math.min(t, now() - 1))));
    pauseButton.replaceChildren(bilingual("暂停", "Pause"));
  };
  const controls = el("div", "pb-controls", ...speedButtons, pauseButton,
    actionButton("单帧", "Step", () => tile.step()),
    actionButton("后退30秒", "Back 30 s", () => seek((tile.position || now()) - 30)),
    actionButton("回到直播", "Back to live", () => { tile.removeAttribute("playback-at"); renderSpeed(); }));
  if (EXPORT_ROLES.includes(role)) {
    controls.appendChild(actionButton("导出", "Export", async () => {
      const p = tile.position || now() - 60;
      const q = new URLSearchParams({ since: String(Math.floor(p - 30)), until: String(Math.floor(p + 30)) });
      legend.textContent = "正在导出前后各30秒的录像… / Exporting";
      try {
        const resp = await fetch(`/api/recordings/${encodeURIComponent(camera)}/export?${q}`);
        if (!resp.ok) {
          const body = await resp.json().catch(() => ({}));
          legend.textContent = `导出失败：${resp.status === 404 ? "该时段没有录像" : errorText(resp.status, body.error)}`;
          return;
        }
        const name = (resp.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
        const a = el("a");
        a.href = URL.createObjectURL(await resp.blob());
        a.download = name ? name[1] : `${camera}.mp4`;
        a.click();
        setTimeout(() => URL.revokeObjectURL(a.href), 60000);
        legend.textContent = `已导出 ${a.download} / Exported`;
      } catch (err) {
        legend.textContent = `导出失败：${errorText(0)}`;
      }
    }));
  }
  controls.appendChild(pos);
  const close = actionButton("关闭", "Close (Esc)", closePlayback);
  const title = el("span", "pb-title", `录像回放 · ${name || camera}`);
  const box = el("div", "pb-box", el("div", "pb-head", title, close), tile, bar, hours, legend, controls);
  const view = el("div", "pb-view", box);
  view.tile = tile;
  view.timeline = null;

  function setSpeed(s) {
    tile.setAttribute("speed", String(s));
    renderSpeed();
  }
  function renderSpeed() {
    const live = !tile.playback;
    for (const b of speedButtons) {
      b.classList.toggle("on", !live && b.dataset.speed === tile.getAttribute("speed"));
      b.disabled = live;
    }
    pauseButton.disabled = live;
    title.textContent = live ? `直播 · ${name || camera}` : `录像回放 · ${name || camera}`;
  }
  const pct = (t) => `${((t - since) / (until - since)) * 100}%`;

  async function loadTimeline() {
    until = now();
    since = until - DAY_S;
    let body;
    try {
      body = await getJSON(`/api/recordings/${encodeURIComponent(camera)}?since=${since}&until=${until}`);
    } catch (err) {
      legend.textContent = `无法读取录像时间轴：${err.message}`;
      return;
    }
    view.timeline = body;
    const parts = body.spans.map(([a, b]) => {
      const d = el("div", "pb-span");
      d.style.left = pct(a);
      d.style.width = `max(1px, ${((b - a) / (until - since)) * 100}%)`;
      d.title = `${dateTimeText(a)} – ${dateTimeText(b)}`;
      return d;
    });
    for (const m of body.markers) {
      const d = el("div", "pb-mark");
      d.style.left = pct(m.at);
      d.title = `${dateTimeText(m.at)} ${m.kind === "case" ? `案件 ${m.case_no}` : `告警 ${m.event || ""}`}`;
      d.dataset.at = String(m.at);
      parts.push(d);
    }
    bar.replaceChildren(...parts, playhead);
    const labels = [];
    const first = Math.ceil(since / 10800) * 10800;
    for (let t = first; t < until; t += 10800) {
      const s = el("span", "", dateTimeText(t).slice(11, 16));
      s.style.left = pct(t);
      labels.push(s);
    }
    hours.replaceChildren(...labels);
  }

  bar.addEventListener("click", (ev) => {
    const mark = ev.target.closest?.(".pb-mark");
    if (mark) { seek(Number(mark.dataset.at) - 10); return; }
    const r = bar.getBoundingClientRect();
    seek(since + ((ev.clientX - r.left) / r.width) * (until - since));
  });
  const onKey = (ev) => { if (ev.key === "Escape") closePlayback(); };
  document.addEventListener("keydown", onKey);
  const ticker = setInterval(() => {
    const p = tile.playback ? tile.position : 0;
    playhead.hidden = !p;
    if (p) playhead.style.left = pct(p);
    pos.textContent = p ? dateTimeText(p) : "";
  }, 250);
  const refresher = setInterval(loadTimeline, 30000);
  document.body.appendChild(view);
  renderSpeed();
  loadTimeline();
  open = {
    view,
    cleanup() {
      clearInterval(ticker);
      clearInterval(refresher);
      document.removeEventListener("keydown", onKey);
      view.remove();
    },
  };
  return view;
}
