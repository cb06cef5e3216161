// The wall's video grid for one server-side screen (GET /api/screens/<id>, pushed as "wall_screen" frames):
// the layout's tiles placed on a CSS grid (spans included), one <cw-tile> per tile with a camera, and over the
// alarm tile an overlay with the zone polygon, the object boxes, the event and an acknowledge button.
// A camera that stays on screen keeps its <cw-tile> element, never detached, across re-renders (its stream goes on).

import "./video-tile.js";
import { bilingual, el } from "./dom.js";
import { eventLabel } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";

/** A screen view like the server's for the old fixed 2x2 wall (a server without /api/screens). */
export function fallbackScreen(cameras, cols = 2, rows = 2) {
  const tiles = [];
  const cells = [];
  for (let r = 0; r < rows; r += 1) for (let c = 0; c < cols; c += 1) cells.push([r, c, 1, 1]);
  cells.forEach((_, i) => tiles.push({ index: i, camera: cameras[i] ? cameras[i].id : null, source: "assigned" }));
  return { id: null, name: "", version: 0, layout: { name: `${cols}x${rows}`, rows, cols, tiles: cells }, tiles,
           alarm_tile: null, alarm: null, pending_alarms: [], tour: null };
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

export class ScreenGrid {
  /** ``cameras``: Map id → camera record (name, status, zones); ``onAck(alarmId)``: the overlay's 确认 button;
   *  ``onMute()``: its 静音 button (the repeating cue). */
  constructor(container, { cameras, onAck = () => {}, onMute = () => {} }) {
    this.container = container;
    this.cameras = cameras;
    this.onAck = onAck;
    this.onMute = onMute;
    this.muted = false;
    this.tiles = new Map();      // camera id → first <cw-tile> showing it
    this.byIndex = [];           // tile index → <cw-tile> | empty cell
    this.view = null;
  }

  render(view) {
    const { rows, cols, tiles: cells } = view.layout;
    this.container.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
    this.container.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
    this.container.dataset.layout = view.layout.name;
    const spare = new Map();     // camera id → [tiles from the last render], reused in order
    for (const node of this.byIndex) {
      const cam = node && node.tagName === "CW-TILE" ? node.getAttribute("camera") : null;
      if (cam) spare.set(cam, [...(spare.get(cam) || []), node]);
    }
    this.tiles = new Map();
    this.byIndex = [];
    const nodes = [];
    view.tiles.forEach((t, i) => {
      const [r, c, rs, cs] = cells[i];
      const area = `${r + 1} / ${c + 1} / span ${rs} / span ${cs}`;
      const cam = t.camera ? this.cameras.get(t.camera) : null;
      let node;
      if (!cam) {
        node = el("div", "empty-cell", bilingual(t.camera ? "未知摄像头" : "未配置", t.camera ? `Unknown camera ${t.camera}` : "Empty"));
      } else {
        node = (spare.get(cam.id) || []).shift() || document.createElement("cw-tile");
        node.setAttribute("camera", cam.id);
        node.setAttribute("name", cam.name || cam.id);
        const state = cam.status && cam.status.state;
        if (state) node.setAttribute("camera-state", state);
        if (!this.tiles.has(cam.id)) this.tiles.set(cam.id, node);
      }
      node.style.gridArea = area;
      node.dataset.tile = String(i);
      node.dataset.source = t.source || "assigned";
      if (t.source === "alarm") node.setAttribute("alarm", "");
      else if (node.dataset.flagged !== "1") node.removeAttribute("alarm");
      this.byIndex.push(node);
      nodes.push(node);
      if (t.source === "alarm" && view.alarm) nodes.push(this._overlay(view.alarm, area, cam, i));
    });
    // Update in place: a <cw-tile> taken out of the document tears its stream down, so tiles that stay are never
    // removed (placement comes from grid-area, not from the order of the children).
    const keep = new Set(nodes);
    for (const child of [...this.container.children]) if (!keep.has(child)) child.remove();
    for (const node of nodes) if (node.parentNode !== this.container) this.container.append(node);
    this.view = view;
  }

  _overlay(alarm, area, cam, index) {
    const p = alarm.payload || {};
    const [zh, en] = eventLabel(p.event);
    const box = el("div", "pop");
    box.style.gridArea = area;
    box.dataset.tile = String(index);
    box.dataset.alarmId = alarm.alarm_id;
    // The drawing uses the video's own aspect so it lines up with the picture (object-fit: contain).
    const tile = this.byIndex[index];
    const stats = tile && tile.stats ? tile.stats : {};
    const w = stats.videoWidth || 1280;
    const h = stats.videoHeight || 720;
    const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "xMidYMid meet", class: "pop-draw" });
    const zone = cam && (cam.zones || []).find((z) => z.id === p.zone_id);
    if (zone && Array.isArray(zone.polygon)) {
      svg.append(svgEl("polygon", { class: "zone", points: zone.polygon.map(([x, y]) => `${x * w},${y * h}`).join(" ") }));
    }
    for (const b of p.boxes || []) {
      if (!Array.isArray(b) || b.length !== 4) continue;
      const [x1, y1, x2, y2] = b;
      svg.append(svgEl("rect", { class: "box", x: x1 * w, y: y1 * h, width: (x2 - x1) * w, height: (y2 - y1) * h }));
    }
    const ack = el("button", "ack", bilingual("确认", "Ack (A)"));
    ack.type = "button";
    ack.addEventListener("click", () => this.onAck(alarm.alarm_id));
    const mute = el("button", "mute", this.muted ? "已静音" : "静音");
    mute.type = "button";
    mute.title = "提示音静音 5 分钟 / Mute the cue for 5 minutes";
    mute.addEventListener("click", () => this.onMute());
    const count = alarm.count > 1 ? el("span", "pop-count", `×${alarm.count}`) : null;
    if (count) count.title = `同一地点 ${alarm.count} 次告警 / ${alarm.count} alarms at this place`;
    const label = el("div", "pop-label",
      el("span", "pop-tag", "告警"), count,
      el("span", "pop-event", zh, en ? el("span", "en pop-en", en) : null),
      // The camera's name is already in the tile's title bar; the zone says where in the picture.
      p.case_no
        ? el("span", "pop-where", `${p.case_no} ${p.unit_name || ""}`)
        : el("span", "pop-where", p.zone_name || p.camera_name || (cam && cam.name) || alarm.camera_id),
      mute, ack);
    box.append(svg, label);
    return box;
  }

  /** Show the cue's mute state on the pop-up's button. */
  setMuted(muted) {
    this.muted = Boolean(muted);
    for (const b of this.container.querySelectorAll(".pop .mute")) {
      b.textContent = this.muted ? "已静音" : "静音";
      b.classList.toggle("on", this.muted);
    }
  }

  tile(cameraId) {
    return this.tiles.get(cameraId) || null;
  }
}
