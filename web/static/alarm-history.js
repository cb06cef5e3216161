// Alarm history over the page: GET /api/alarms pages with a cursor — 更早 (before the oldest shown), 较新
// (after the newest shown), 最新 (back to the newest) — a row plays its clip (clip-view.js). For the wall and
// the situation screen, whose live lists only keep what fits.

import { getJSON } from "./api.js";
import { showClip } from "./clip-view.js";
import { bilingual, el } from "./dom.js";
import { durationText, eventLabel, timeText } from "./format.js";

const PAGE = 20;
let view = null;

/** Open the history over ``container``; ``cameraName(id)`` names cameras. */
export async function showAlarmHistory(container, { cameraName = (id) => id } = {}) {
  closeAlarmHistory();
  const rows = el("tbody");
  const status = el("span", "ah-status");
  const older = button("更早", "Older", "ah-older");
  const newer = button("较新", "Newer", "ah-newer");
  const latest = button("最新", "Latest", "ah-latest");
  const close = button("关闭", "Close", "ah-close");
  view = el("div", "ah-view",
    el("div", "ah-box",
      el("div", "ah-head", el("div", "ah-title", bilingual("告警历史", "Alarm history")), status, latest, newer, older, close),
      el("table", "ah-table",
        el("thead", "", el("tr", "", ...["时间", "事件", "摄像头", "区域", "停留", "状态"].map((h) => el("th", "", h)))),
        rows)));
  view.id = "alarm-history";
  view.setAttribute("role", "dialog");
  container.append(view);
  const now = () => Date.now() / 1000;
  let cursor = "";

  async function load(query) {
    status.textContent = "读取中…";
    let body;
    try {
      body = await getJSON(`/api/alarms?limit=${PAGE}${query}`);
    } catch (err) {
      status.textContent = `读取失败：${err.message}`;
      return;
    }
    cursor = query;
    const list = body.alarms || [];
    rows.replaceChildren(...list.map((a) => {
      const [zh] = eventLabel(a.event);
      const tr = el("tr", a.phase === "cleared" ? "cleared" : "",
        el("td", "", timeText(a.at, now())), el("td", "", zh),
        el("td", "", a.camera_name || cameraName(a.camera_id) || a.camera_id || ""),
        el("td", "", a.zone_name || a.zone_id || ""),
        el("td", "", Number.isFinite(a.dwell_s) ? durationText(a.dwell_s) : ""),
        el("td", "", a.phase === "cleared" ? "已消除" : "告警"));
      tr.dataset.alarmId = a.alarm_id || "";
      tr.dataset.id = a.id || "";
      tr.classList.add("openable");
      tr.addEventListener("click", () => showClip({ title: zh, sub: `${a.camera_name || a.camera_id} · ${timeText(a.at, now())}`,
        clipUrl: a.clip_url, snapshotUrl: a.snapshot_url }, container));
      return tr;
    }));
    if (!list.length) rows.append(el("tr", "", el("td", "ah-empty", "没有更多告警")));
    older.disabled = !body.older;
    older.dataset.cursor = body.older || "";
    newer.disabled = !list.length || (!query.includes("before=") && !body.more_newer);
    newer.dataset.cursor = list.length ? list[0].id : "";
    latest.disabled = !query;
    status.textContent = list.length ? `${timeText(list[list.length - 1].at, now())} — ${timeText(list[0].at, now())}` : "";
  }

  older.addEventListener("click", () => load(`&before=${encodeURIComponent(older.dataset.cursor)}`));
  newer.addEventListener("click", () => load(`&after=${encodeURIComponent(newer.dataset.cursor)}`));
  latest.addEventListener("click", () => load(""));
  close.addEventListener("click", closeAlarmHistory);
  view.citywall = { get cursor() { return cursor; } };
  await load("");
  return view;
}

function button(zh, en, cls) {
  const b = el("button", `ah-button ${cls}`, zh, el("span", "en", en));
  b.type = "button";
  return b;
}

export function closeAlarmHistory() {
  if (view) view.remove();
  view = null;
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && view && !document.getElementById("clip-view")) closeAlarmHistory();
});
