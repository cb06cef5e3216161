// 同步回放 / Synchronised playback of up to 4 cameras: a 2×2 (or 1×2) view of <cw-tile> elements in playback, one
// timeline (a row of recorded spans per camera over the same 24 h, alarm markers; click seeks every camera) and
// one clock. The clock is the page's: recorded time = anchor + elapsed × speed, re-anchored on seek, pause and speed.
// Every second each playing tile is compared with it: one more than DRIFT_S behind is sent to the clock's time (a
// new playback-at, ahead by the time it took to start); one ahead (it skipped a gap in its own recording) is held until the clock reaches it. 暂停/继续,
// 1×/2×/4×/8× and 后退30秒 act on all tiles at once. Esc or 关闭 closes. Exposed for tests: the view element's
// .tiles, .clock() (recorded Unix time) and .timelines.

import { getJSON } from "./api.js";
import { actionButton, bilingual, el, installStyle } from "./dom.js";
import { dateTimeText } from "./format.js";
import "./video-tile.js";

export const MAX_CAMERAS = 4;
export const DRIFT_S = 1.5;
const START_WAIT_S = 8;
const MAX_LEAD_S = 5;
const CHECK_MS = 1000;
const DAY_S = 86400;
const SPEEDS = [1, 2, 4, 8];
let open = null;

const STYLE = `
.sp-view { position: fixed; inset: 0; z-index: 1000; background: rgba(5, 8, 12, .95); display: flex;
  align-items: center; justify-content: center; }
.sp-box { width: min(1400px, 96vw); display: flex; flex-direction: column; gap: 8px; color: #f5f7fa; }
.sp-head { display: flex; align-items: center; gap: 12px; font-size: 20px; }
.sp-head .sp-title { flex: 1; font-weight: 700; }
.sp-grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 6px; }
.sp-grid cw-tile { aspect-ratio: 16 / 9; --cw-name-size: 20px; --cw-badge-size: 14px; }
.sp-rows { position: relative; cursor: pointer; display: flex; flex-direction: column; gap: 2px; }
.sp-row { position: relative; height: 12px; background: #3a4350; border-radius: 2px; overflow: hidden; }
.sp-span { position: absolute; top: 0; bottom: 0; background: #16a34a; }
.sp-mark { position: absolute; top: 0; bottom: 0; width: 3px; background: #ff3b3b; }
.sp-line { position: absolute; top: -2px; bottom: -2px; width: 2px; background: #ffd400; pointer-events: none; }
.sp-controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
.sp-controls button { font-size: 16px; padding: 6px 12px; }
.sp-controls button.on { background: #2563eb; color: #fff; }
.sp-controls .sp-pos { margin-left: auto; font-variant-numeric: tabular-nums; }
`;

function ensureStyle() {
  installStyle("sp-style", STYLE);
}


/** Close the open view, if any. */
export function closeSyncPlayback() {
  if (!open) return;
  open.cleanup();
  open = null;
}

/** Open the view for ``cameras`` ([{id, name}], 1–4) from ``at`` (Unix seconds). */
export function openSyncPlayback({ cameras, at, onClose = () => {} }) {
  if (!cameras.length || cameras.length > MAX_CAMERAS) throw new Error(`1 to ${MAX_CAMERAS} cameras, got ${cameras.length}`);
  closeSyncPlayback();
  ensureStyle();
  const now = () => Date.now() / 1000;
  const clock = { at, wall: now(), speed: 1, paused: false };
  const recorded = () => (clock.paused ? clock.at : clock.at + (now() - clock.wall) * clock.speed);
  const anchor = (t) => { clock.at = t; clock.wall = now(); };

  const tiles = cameras.map((c) => {
    const tile = document.createElement("cw-tile");
    tile.setAttribute("camera", c.id);
    tile.setAttribute("name", c.name || c.id);
    tile.setAttribute("speed", "1");
    tile.setAttribute("playback-at", String(at));
    return tile;
  });
  const held = new Set();  // tiles held because they ran ahead of the clock (a gap in their recording)
  const starting = new Map();  // tile → when it was sent to a new time (until it plays)
  const lag = new Map();  // tile → seconds it took to start playing last time
  let waitingSince = now();  // the clock stands until every tile plays
  for (const tile of tiles) starting.set(tile, now());
  const grid = el("div", "sp-grid", ...tiles);
  const line = el("div", "sp-line");
  const rows = el("div", "sp-rows");
  rows.title = "点击跳转（所有画面） / Click to seek every camera";
  const pos = el("span", "sp-pos", "");
  const speedButtons = SPEEDS.map((s) => {
    const b = actionButton(`${s}×`, "", () => setSpeed(s));
    b.dataset.speed = String(s);
    return b;
  });
  const pauseButton = actionButton("暂停", "Pause", () => (clock.paused ? resumeAll() : pauseAll()));
  const controls = el("div", "sp-controls", ...speedButtons, pauseButton,
    actionButton("后退30秒", "Back 30 s", () => seek(recorded() - 30)), pos);
  const close = actionButton("关闭", "Close (Esc)", () => { closeSyncPlayback(); onClose(); });
  const box = el("div", "sp-box", el("div", "sp-head",
    el("span", "sp-title", `同步回放 · ${cameras.map((c) => c.name || c.id).join(" / ")}`), close),
  grid, rows, controls);
  const view = el("div", "sp-view", box);
  view.tiles = tiles;
  view.clock = recorded;
  view.timelines = [];
  let since = now() - DAY_S;
  let until = now();
  const pct = (t) => `${((t - since) / (until - since)) * 100}%`;

  function seek(t) {
    const target = Math.max(since, Math.min(t, now() - 1));
    anchor(target);
    held.clear();
    waitingSince = now();
    for (const tile of tiles) { starting.set(tile, now()); tile.setAttribute("playback-at", String(target)); }
    if (clock.paused) for (const tile of tiles) tile.pause();
  }
  function pauseAll() {
    anchor(recorded());
    clock.paused = true;
    for (const tile of tiles) tile.pause();
    pauseButton.replaceChildren(bilingual("继续", "Resume"));
  }
  function resumeAll() {
    clock.paused = false;
    anchor(clock.at);
    for (const tile of tiles) if (!held.has(tile)) tile.resume();
    pauseButton.replaceChildren(bilingual("暂停", "Pause"));
  }
  function setSpeed(s) {
    anchor(recorded());
    clock.speed = s;
    for (const tile of tiles) tile.setAttribute("speed", String(s));
    for (const b of speedButtons) b.classList.toggle("on", b.dataset.speed === String(s));
  }

  /** Keep every tile on the clock (see the file header). After a seek the clock stands until every tile plays (or
   *  START_WAIT_S passed: a camera with nothing recorded there never does), then starts from the earliest. */
  function check() {
    const t0 = now();
    const playing = tiles.filter((t) => t.stats.state === "live" && t.position > 0);
    for (const tile of playing) {
      if (starting.has(tile)) { lag.set(tile, Math.min(MAX_LEAD_S, t0 - starting.get(tile))); starting.delete(tile); }
    }
    if (waitingSince !== null) {
      if (clock.paused) return; // paused while the tiles start: the clock stands; the wait goes on after 继续
      if (playing.length < tiles.length && t0 - waitingSince < START_WAIT_S) { anchor(clock.at); return; }
      waitingSince = null;
      if (playing.length) anchor(Math.min(...playing.map((t) => t.position)));
    }
    const t = recorded();
    for (const tile of playing) {
      const drift = tile.position - t;
      if (held.has(tile)) {
        if (drift <= 0.2 && !clock.paused) { held.delete(tile); tile.resume(); }
      } else if (drift > DRIFT_S && !clock.paused) {
        held.add(tile);
        tile.pause();
      } else if (drift < -DRIFT_S && !starting.has(tile)) {
        // Behind (a stall): sent ahead by the time it took to start last time, then held until the clock is there.
        starting.set(tile, t0);
        tile.setAttribute("playback-at", String(t + (lag.get(tile) || 1) * clock.speed));
        if (clock.paused) tile.pause();
      }
    }
  }

  async function loadTimelines() {
    until = now();
    since = until - DAY_S;
    const bodies = await Promise.all(cameras.map((c) => getJSON(
      `/api/recordings/${encodeURIComponent(c.id)}?since=${since}&until=${until}`).catch(() => null)));
    view.timelines = bodies;
    rows.replaceChildren(...bodies.map((body, i) => {
      const row = el("div", "sp-row");
      row.title = cameras[i].name || cameras[i].id;
      if (!body) return row;
      for (const [a, b] of body.spans) {
        const d = el("div", "sp-span");
        d.style.left = pct(a);
        d.style.width = `max(1px, ${((b - a) / (until - since)) * 100}%)`;
        row.append(d);
      }
      for (const m of body.markers) {
        const d = el("div", "sp-mark");
        d.style.left = pct(m.at);
        d.dataset.at = String(m.at);
        row.append(d);
      }
      return row;
    }), line);
  }

  rows.addEventListener("click", (ev) => {
    const mark = ev.target.closest?.(".sp-mark");
    if (mark) { seek(Number(mark.dataset.at) - 10); return; }
    const r = rows.getBoundingClientRect();
    seek(since + ((ev.clientX - r.left) / r.width) * (until - since));
  });
  const onKey = (ev) => { if (ev.key === "Escape") { closeSyncPlayback(); onClose(); } };
  document.addEventListener("keydown", onKey);
  const checker = setInterval(check, CHECK_MS);
  const ticker = setInterval(() => {
    const t = recorded();
    line.style.left = pct(t);
    pos.textContent = dateTimeText(t);
  }, 250);
  const refresher = setInterval(() => loadTimelines().catch(() => {}), 30000);
  document.body.appendChild(view);
  setSpeed(1);
  loadTimelines().catch(() => {});
  open = {
    view,
    cleanup() {
      clearInterval(checker);
      clearInterval(ticker);
      clearInterval(refresher);
      document.removeEventListener("keydown", onKey);
      view.remove();
    },
  };
  return view;
}
