// The video grid, built from a layout object {cols, rows, cells: [camera id | null, ...]} (row-major).
// Layout editing and tours come later; this only renders a layout and finds a camera's tile.

import "./video-tile.js";
import { bilingual, el } from "./dom.js";

/** The default layout: the first cols×rows cameras in order. */
export function defaultLayout(cameras, cols = 2, rows = 2) {
  return { cols, rows, cells: cameras.slice(0, cols * rows).map((c) => c.id) };
}

/** Check a layout and say what is wrong with it (a named field), or return null. */
export function layoutProblem(layout) {
  if (!layout || typeof layout !== "object") return "layout: must be an object {cols, rows, cells}";
  for (const key of ["cols", "rows"]) {
    if (!Number.isInteger(layout[key]) || layout[key] < 1 || layout[key] > 8) return `layout.${key}: must be an integer 1..8`;
  }
  if (!Array.isArray(layout.cells)) return "layout.cells: must be a list of camera ids";
  if (layout.cells.length > layout.cols * layout.rows) return `layout.cells: ${layout.cells.length} cells do not fit ${layout.cols}x${layout.rows}`;
  return null;
}

export class VideoGrid {
  constructor(container) {
    this.container = container;
    this.tiles = new Map();   // camera id → cw-tile
  }

  /** Render ``layout`` with camera records (id → {id, name, status}). */
  render(layout, camerasById) {
    const problem = layoutProblem(layout);
    if (problem) throw new Error(problem);
    this.container.style.gridTemplateColumns = `repeat(${layout.cols}, minmax(0, 1fr))`;
    this.container.style.gridTemplateRows = `repeat(${layout.rows}, minmax(0, 1fr))`;
    this.tiles.clear();
    const nodes = [];
    for (let i = 0; i < layout.cols * layout.rows; i += 1) {
      const id = layout.cells[i];
      const cam = id ? camerasById.get(id) : null;
      if (!cam) {
        nodes.push(el("div", "empty-cell", bilingual(id ? "未知摄像头" : "未配置", id ? `Unknown camera ${id}` : "Empty")));
        continue;
      }
      const tile = document.createElement("cw-tile");
      tile.setAttribute("camera", cam.id);
      tile.setAttribute("name", cam.name || cam.id);
      const state = cam.status && cam.status.state;
      if (state) tile.setAttribute("camera-state", state);
      this.tiles.set(cam.id, tile);
      nodes.push(tile);
    }
    this.container.replaceChildren(...nodes);
  }

  tile(cameraId) {
    return this.tiles.get(cameraId) || null;
  }
}
