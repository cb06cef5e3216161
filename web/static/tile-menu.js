// The wall tile's menu (画面菜单): right-click, a long press (touch walls) or the M / ContextMenu key on a focused
// tile opens a small menu over it:
//   回放 最近5分钟 (Playback, the last 5 minutes) · 回放 指定时间 (at a chosen date/time, typed as
//   "YYYY-MM-DD HH:MM:SS" on a 24-hour clock in the site's timezone, never the browser's) — the playback panel
//   (playback.js: the tile, the 24 h timeline, speeds; Esc or 回到直播 returns to live) ·
//   截图 (Snapshot: the picture on screen as a PNG download, named after the camera and the time) ·
//   单屏 (Fullscreen: the tile fills the grid; Esc leaves it).
// Esc, a click elsewhere or a choice closes the menu. One menu at a time. Exposed for tests: the menu element
// (.tile-menu) carries data-camera.

import { bilingual, el, installStyle } from "./dom.js";
import { dateTimeText, parseSiteDateTime, timeZoneName } from "./format.js";
import { openPlayback } from "./playback.js";

const LONG_PRESS_MS = 600;
const RECENT_S = 300;

const STYLE = `
.tile-menu { position: fixed; z-index: 900; min-width: 220px; background: #1b2230; color: #f5f7fa;
  border: 1px solid #4b5565; border-radius: 6px; box-shadow: 0 8px 24px rgba(0,0,0,.5); padding: 6px 0;
  font-size: 18px; }
.tile-menu .tm-title { padding: 4px 14px 8px; color: #aab4c0; font-size: 14px; border-bottom: 1px solid #333c4a; }
.tile-menu button { display: block; width: 100%; text-align: left; background: none; border: 0; color: inherit;
  font-size: inherit; padding: 8px 14px; cursor: pointer; }
.tile-menu button:hover, .tile-menu button:focus { background: #2563eb; outline: none; }
.tile-menu .tm-at { display: flex; gap: 6px; padding: 6px 14px; }
.tile-menu .tm-at input { flex: 1; min-width: 13em; font-size: 16px; font-variant-numeric: tabular-nums; }
.tile-menu .tm-zone { padding: 0 14px 4px; color: #aab4c0; font-size: 13px; }
.tile-menu .tm-note { padding: 4px 14px; color: #ffb4b4; font-size: 14px; }
.tile-menu .bi .en { margin-left: 0.5em; font-size: 14px; color: #aab4c0; }
`;

let open = null;

function ensureStyle() {
  installStyle("tm-style", STYLE);
}

/** Close the open tile menu, if any. */
export function closeTileMenu() {
  if (!open) return;
  open.cleanup();
  open = null;
}

/** The picture a tile shows, as a PNG blob (null while it shows nothing). */
export function snapshot(tile) {
  const v = tile.video;
  if (!v || !v.videoWidth) return Promise.resolve(null);
  const canvas = document.createElement("canvas");
  canvas.width = v.videoWidth;
  canvas.height = v.videoHeight;
  canvas.getContext("2d").drawImage(v, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

/** "20260311-080005": the site's time for a file name. */
function stamp(t) {
  return dateTimeText(t).replace(/[-:]/g, "").replace(" ", "-");
}

/** Open the menu for ``tile`` at page point (x, y); ``role`` decides 导出 in the playback panel. */
export function openTileMenu(tile, x, y, { role = "" } = {}) {
  closeTileMenu();
  ensureStyle();
  const camera = tile.getAttribute("camera");
  const name = tile.getAttribute("name") || camera;
  const now = () => Date.now() / 1000;
  const note = el("div", "tm-note", "");
  note.hidden = true;
  const item = (zh, en, action) => {
    const b = el("button", "", bilingual(zh, en));
    b.type = "button";
    b.dataset.action = action;
    return b;
  };
  const recent = item("回放 最近5分钟", "Playback, last 5 min", "playback");
  // A text field, not datetime-local: that one shows the browser's zone and locale (a 12-hour clock on an
  // en-US display PC), while the wall works in the site's time (settings.timezone).
  const atInput = el("input");
  atInput.type = "text";
  atInput.name = "playback-at";
  atInput.inputMode = "numeric";
  atInput.autocomplete = "off";
  atInput.spellcheck = false;
  atInput.value = dateTimeText(now() - RECENT_S);
  atInput.placeholder = "YYYY-MM-DD HH:MM:SS";
  atInput.title = "回放起始时间（24小时制）/ Play from (24-hour clock)";
  const zone = el("div", "tm-zone", `24小时制 · ${timeZoneName()}`);
  const atGo = item("回放", "Play", "playback-at");
  const shot = item("截图", "Snapshot", "snapshot");
  const solo = item(tile.hasAttribute("enlarged") ? "退出单屏" : "单屏", "Fullscreen", "fullscreen");
  const menu = el("div", "tile-menu", el("div", "tm-title", name), recent, el("div", "tm-at", atInput, atGo), zone,
    shot, solo, note);
  menu.dataset.camera = camera;
  menu.setAttribute("role", "menu");

  recent.addEventListener("click", () => {
    closeTileMenu();
    openPlayback({ camera, name, at: now() - RECENT_S, role });
  });
  const playAt = () => {
    const t = parseSiteDateTime(atInput.value);
    if (!Number.isFinite(t)) {
      note.textContent = "时间格式：年-月-日 时:分:秒（24小时制）/ Time as YYYY-MM-DD HH:MM:SS (24-hour)";
      note.hidden = false;
      return;
    }
    if (t >= now()) {
      note.textContent = "请选择过去的时间 / Choose a time in the past";
      note.hidden = false;
      return;
    }
    closeTileMenu();
    openPlayback({ camera, name, at: t, role });
  };
  atGo.addEventListener("click", playAt);
  atInput.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); playAt(); } });
  shot.addEventListener("click", async () => {
    const blob = await snapshot(tile);
    if (!blob) {
      note.textContent = "画面尚未显示，无法截图 / No picture yet";
      note.hidden = false;
      return;
    }
    const a = el("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${camera}-${stamp(now())}.png`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    closeTileMenu();
  });
  solo.addEventListener("click", () => {
    closeTileMenu();
    tile.toggleEnlarged();
  });

  document.body.appendChild(menu);
  // Kept inside the window.
  const r = menu.getBoundingClientRect();
  menu.style.left = `${Math.max(0, Math.min(x, window.innerWidth - r.width))}px`;
  menu.style.top = `${Math.max(0, Math.min(y, window.innerHeight - r.height))}px`;
  recent.focus();
  const onKey = (ev) => { if (ev.key === "Escape") { ev.stopPropagation(); closeTileMenu(); } };
  const onDown = (ev) => { if (!menu.contains(ev.target)) closeTileMenu(); };
  document.addEventListener("keydown", onKey, true);
  setTimeout(() => document.addEventListener("pointerdown", onDown, true), 0);
  open = {
    menu,
    cleanup() {
      document.removeEventListener("keydown", onKey, true);
      document.removeEventListener("pointerdown", onDown, true);
      menu.remove();
    },
  };
  return menu;
}

/** Menus on every <cw-tile> inside ``container`` (tiles come and go: the listeners sit on the container);
 *  ``role()`` the signed-in user's role. Tiles are made focusable so the M key reaches them. */
export function installTileMenu(container, { role = () => "" } = {}) {
  const tileOf = (ev) => ev.composedPath().find((n) => n.tagName === "CW-TILE") || null;
  container.addEventListener("contextmenu", (ev) => {
    const tile = tileOf(ev);
    if (!tile) return;
    ev.preventDefault();
    openTileMenu(tile, ev.clientX, ev.clientY, { role: role() });
  });
  let press = 0;
  container.addEventListener("pointerdown", (ev) => {
    const tile = tileOf(ev);
    if (!tile || ev.pointerType === "mouse") return;
    clearTimeout(press);
    press = setTimeout(() => openTileMenu(tile, ev.clientX, ev.clientY, { role: role() }), LONG_PRESS_MS);
  });
  for (const type of ["pointerup", "pointercancel", "pointermove"]) {
    container.addEventListener(type, (ev) => {
      if (type === "pointermove" && Math.hypot(ev.movementX, ev.movementY) < 4) return;
      clearTimeout(press);
    });
  }
  container.addEventListener("keydown", (ev) => {
    const tile = tileOf(ev);
    if (!tile || !(ev.key === "m" || ev.key === "M" || ev.key === "ContextMenu")) return;
    ev.preventDefault();
    ev.stopPropagation();
    const r = tile.getBoundingClientRect();
    openTileMenu(tile, r.left + r.width / 2, r.top + r.height / 2, { role: role() });
  });
  new MutationObserver(() => {
    for (const t of container.querySelectorAll("cw-tile:not([tabindex])")) t.tabIndex = 0;
  }).observe(container, { childList: true });
  for (const t of container.querySelectorAll("cw-tile:not([tabindex])")) t.tabIndex = 0;
}
