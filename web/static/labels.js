// Labelling on the review console (the learning loop): the reviewer says what each object is and fixes its box
// while deciding. The item's clean snapshot (no overlays) is shown; the boxes start from the detector's judgement
// (its parts and kinds) or from a label saved before. Keys 1–8 set the selected box's class (or the class of the
// next box drawn), S selects the next box, X/Delete removes it; drag on the picture to add a box, drag a box to move
// it, drag its corner to resize it. After each decision review.js calls saveLabels: PUT /api/review/{id}/labels.

import { getJSON, send } from "./api.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const MIN_SIDE = 0.01;  // a drag smaller than this (fraction of the picture) is a click, not a box
const lab = { id: null, classes: [], boxes: [], selected: -1, nextClass: "other", drag: null };

const clamp = (v) => Math.min(1, Math.max(0, v));
const classOf = (id) => lab.classes.find((c) => c.id === id) || { id, zh: id, en: "", key: "" };

/** The picture-relative point of a pointer event (0..1). */
function point(ev) {
  const r = $("label-boxes").getBoundingClientRect();
  return [clamp((ev.clientX - r.left) / r.width), clamp((ev.clientY - r.top) / r.height)];
}

function render() {
  const layer = $("label-boxes");
  if (!layer) return;
  layer.replaceChildren(...lab.boxes.map((b, i) => {
    const c = classOf(b.class);
    const [x1, y1, x2, y2] = b.box;
    const node = el("div", `lbox${i === lab.selected ? " sel" : ""}`, el("span", "ltag", `${c.key} ${c.zh}`),
      el("span", "lh"));
    node.dataset.cls = b.class;
    node.dataset.i = String(i);
    Object.assign(node.style, { left: `${x1 * 100}%`, top: `${y1 * 100}%`, width: `${(x2 - x1) * 100}%`,
                                height: `${(y2 - y1) * 100}%` });
    return node;
  }));
  const bar = $("label-bar");
  bar.hidden = !lab.id;
  $("label-classes").replaceChildren(...lab.classes.map((c) => {
    const active = lab.selected >= 0 ? lab.boxes[lab.selected].class === c.id : lab.nextClass === c.id;
    const b = el("button", `lclass${active ? " on" : ""}`, el("kbd", "", c.key), ` ${c.zh}`, el("span", "en", c.en));
    b.type = "button";
    b.dataset.cls = c.id;
    b.addEventListener("click", () => setClass(c.id));
    return b;
  }));
  $("label-count").textContent = `标注 ${lab.boxes.length} 个目标 (${lab.boxes.length} boxes)`;
  document.body.dataset.labels = String(lab.boxes.length);
}

function setClass(cls) {
  if (lab.selected >= 0) lab.boxes[lab.selected].class = cls; else lab.nextClass = cls;
  render();
}

/** Show the labelling of ``item`` (null: nothing to label). */
export async function showLabels(item) {
  lab.id = item ? item.id : null;
  lab.boxes = [];
  lab.selected = -1;
  $("snap-wrap").classList.toggle("labelling", Boolean(item));
  render();
  if (!item) return;
  const wanted = item.id;
  const body = await getJSON(`/api/review/${encodeURIComponent(wanted)}/labels`);
  if (lab.id !== wanted) return;  // the reviewer moved on meanwhile
  lab.classes = body.classes;
  lab.boxes = (body.label ? body.label.boxes : body.proposed).map((b) => ({ class: b.class, box: [...b.box] }));
  const clean = body.snapshot_clean_url;
  if (typeof clean === "string" && clean.startsWith("/") && !clean.startsWith("//")) $("snap").src = clean;
  render();
}

/** Store the boxes of ``itemId`` (after its decision); the answer's message when it could not be stored. */
export async function saveLabels(itemId) {
  if (lab.id !== itemId) return null;
  const r = await send("PUT", `/api/review/${encodeURIComponent(itemId)}/labels`,
    { boxes: lab.boxes.map((b) => ({ class: b.class, box: b.box.map((v) => Math.round(v * 1e5) / 1e5) })) });
  return r.ok ? null : r.message;
}

function onPointerDown(ev) {
  if (!lab.id || ev.button !== 0) return;
  ev.preventDefault();
  const p = point(ev);
  const target = ev.target.closest(".lbox");
  if (target) {
    lab.selected = Number(target.dataset.i);
    const mode = ev.target.classList.contains("lh") ? "resize" : "move";
    lab.drag = { mode, start: p, orig: [...lab.boxes[lab.selected].box] };
  } else {
    lab.boxes.push({ class: lab.selected >= 0 ? lab.boxes[lab.selected].class : lab.nextClass, box: [...p, ...p] });
    lab.selected = lab.boxes.length - 1;
    lab.drag = { mode: "new", start: p, orig: null };
  }
  $("label-boxes").setPointerCapture(ev.pointerId);
  render();
}

function onPointerMove(ev) {
  const d = lab.drag;
  if (!d) return;
  const [x, y] = point(ev);
  const b = lab.boxes[lab.selected];
  if (d.mode === "new") {
    b.box = [Math.min(d.start[0], x), Math.min(d.start[1], y), Math.max(d.start[0], x), Math.max(d.start[1], y)];
  } else if (d.mode === "move") {
    const [x1, y1, x2, y2] = d.orig;
    const dx = Math.min(Math.max(x - d.start[0], -x1), 1 - x2);
    const dy = Math.min(Math.max(y - d.start[1], -y1), 1 - y2);
    b.box = [x1 + dx, y1 + dy, x2 + dx, y2 + dy];
  } else {
    b.box = [d.orig[0], d.orig[1], Math.max(x, d.orig[0] + MIN_SIDE), Math.max(y, d.orig[1] + MIN_SIDE)];
  }
  render();
}

function onPointerUp() {
  const d = lab.drag;
  lab.drag = null;
  if (!d) return;
  const b = lab.boxes[lab.selected];
  if (d.mode === "new" && (b.box[2] - b.box[0] < MIN_SIDE || b.box[3] - b.box[1] < MIN_SIDE)) {
    lab.boxes.splice(lab.selected, 1);  // a click on the picture: no box; it deselects
    lab.selected = -1;
  }
  render();
}

/** The labelling keys; other keys (and any key while typing, choosing a reason or in a dialog) are left alone. */
function onKey(ev) {
  if (!lab.id || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (!$("reasons").hidden || $("act-dialog").open) return;
  if (/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement && document.activeElement.tagName)) return;
  const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  const n = /^[1-9]$/.test(key) ? Number(key) : 0;
  if (n && n <= lab.classes.length) {
    ev.preventDefault();
    setClass(lab.classes[n - 1].id);
  } else if (key === "s" && lab.boxes.length) {
    ev.preventDefault();
    lab.selected = (lab.selected + 1) % lab.boxes.length;
    render();
  } else if ((key === "x" || key === "Delete") && lab.selected >= 0) {
    ev.preventDefault();
    lab.boxes.splice(lab.selected, 1);
    lab.selected = -1;
    render();
  }
}

export function installLabels() {
  const layer = $("label-boxes");
  layer.addEventListener("pointerdown", onPointerDown);
  layer.addEventListener("pointermove", onPointerMove);
  layer.addEventListener("pointerup", onPointerUp);
  layer.addEventListener("pointercancel", onPointerUp);
  document.addEventListener("keydown", onKey);
}
