// The live alarm list: one card per alarm occurrence (alarm_id), newest on top. A "cleared" message updates
// the card of its "raised" message. Counts the alarms raised today. The case room's deadline alarms (their own
// stream, case_deadlines: addDeadline) are cards too — case number, unit and deadline instead of a snapshot — and
// are not counted as detections.

import { getJSON } from "./api.js";
import { bilingual, el, fitRows, safePath } from "./dom.js";
import { durationText, eventLabel, startOfDay, timeText } from "./format.js";

const MAX_CARDS = 60;

/** The newest deadline alarms (GET /api/case-deadlines) for AlarmPanel.load; [] when they cannot be read — the
 *  detections still show, and live deadline alarms still arrive over the socket. */
export async function recentDeadlines(limit = 50) {
  try {
    return await getJSON(`/api/case-deadlines?limit=${limit}`);
  } catch (err) {
    console.warn("deadline alarms unavailable", err);
    return { deadlines: [] };
  }
}
const FRESH_MS = 8000;

export class AlarmPanel {
  /** ``list``: the container element; ``cameraName(id)``: name lookup for alarms without camera_name;
   *  ``onOpen(alarm)``: a card was clicked (or Enter on it) — the page plays its evidence clip. */
  constructor(list, { cameraName = (id) => id, emptyText = ["暂无告警", "No alarms"], onOpen = null } = {}) {
    this.list = list;
    this.cameraName = cameraName;
    this.onOpen = onOpen;
    this.cards = new Map();          // alarm_id → card element
    this.raisedToday = new Map();    // alarm_id → raised at (unix)
    this.empty = el("div", "empty", bilingual(emptyText[0], emptyText[1]));
    this.list.append(this.empty);
  }

  /** Alarms from GET /api/alarms and deadline alarms from GET /api/case-deadlines (each newest first), merged by
   *  time. */
  load(alarms, now, deadlines = []) {
    const all = [...alarms.map((a) => [a, false]), ...deadlines.map((d) => [d, true])];
    all.sort((x, y) => (x[0].at || 0) - (y[0].at || 0));
    for (const [alarm, deadline] of all) {
      if (deadline) this.addDeadline(alarm, now, { fresh: false });
      else this.add(alarm, now, { fresh: false });
    }
  }

  /** Add or update the card for a detector ``alarm``; returns the card. ``fresh`` makes it flash. */
  add(alarm, now, { fresh = true } = {}) {
    const id = String(alarm.alarm_id || alarm.id || "");
    if (alarm.phase !== "cleared" && Number.isFinite(alarm.at)) this.raisedToday.set(id, alarm.at);
    const card = this.cards.get(id);
    if (card && alarm.phase === "cleared") {
      card.classList.remove("fresh");
      const was = card._alarm;
      this._fill(card, { ...was, ...alarm, phase: "cleared", dwell_s: alarm.dwell_s ?? was.dwell_s,
                         clip_url: was.clip_url || alarm.clip_url, snapshot_url: was.snapshot_url || alarm.snapshot_url }, now);
      fitRows(this.list);
      return card;
    }
    return this._place(id, alarm, fresh, true, (c) => this._fill(c, alarm, now));
  }

  /** Add a card for a case deadline alarm (stream case_deadlines): nothing to play, so not openable. */
  addDeadline(alarm, now, { fresh = true } = {}) {
    const id = String(alarm.alarm_id || alarm.id || "");
    return this._place(id, alarm, fresh, false, (c) => this._fillCase(c, alarm, now));
  }

  /** A new card for ``id`` on top (replacing an older one), filled by ``fill``; ``openable``: a click plays its
   *  clip. */
  _place(id, alarm, fresh, openable, fill) {
    const old = this.cards.get(id);
    if (old) {
      old.remove();
      this.cards.delete(id);
    }
    const card = el("article", "alarm-card");
    card.dataset.alarmId = id;
    if (this.onOpen && openable) {
      card.tabIndex = 0;
      card.classList.add("openable");
      card.title = "点击播放录像 / Click to play the clip";
      card.addEventListener("click", () => this.onOpen(card._alarm));
      card.addEventListener("keydown", (ev) => { if (ev.key === "Enter") this.onOpen(card._alarm); });
    }
    card.dataset.camera = String(alarm.camera_id || "");
    fill(card);
    this.cards.set(id, card);
    this.list.prepend(card);
    if (fresh) {
      card.classList.add("fresh");
      setTimeout(() => card.classList.remove("fresh"), FRESH_MS);
    }
    while (this.cards.size > MAX_CARDS) {
      const [oldest, node] = this.cards.entries().next().value;
      node.remove();
      this.cards.delete(oldest);
    }
    this.empty.hidden = this.cards.size > 0;
    fitRows(this.list);
    return card;
  }

  /** Raised alarms whose raise time is today (local time). */
  todayCount(now) {
    const midnight = startOfDay(now);
    let n = 0;
    for (const at of this.raisedToday.values()) if (at >= midnight) n += 1;
    return n;
  }

  _fill(card, alarm, now) {
    card._alarm = alarm;
    const cleared = alarm.phase === "cleared";
    card.classList.toggle("cleared", cleared);
    card.dataset.phase = cleared ? "cleared" : "raised";
    const [zh, en] = eventLabel(alarm.event);
    const thumb = el("div", "thumb");
    const src = safePath(alarm.snapshot_url);
    if (src) {
      const img = el("img");
      img.alt = zh;
      img.decoding = "async";
      img.src = src;
      img.addEventListener("error", () => thumb.replaceChildren(el("span", "no-snap", "无快照")));
      thumb.append(img);
    } else {
      thumb.append(el("span", "no-snap", "无快照"));
    }
    // On the thumbnail, so the text lines keep their full width.
    if (cleared) thumb.append(el("span", "tag cleared-tag", bilingual("已消除", "Cleared")));
    const camera = alarm.camera_name || this.cameraName(alarm.camera_id) || alarm.camera_id || "";
    const zone = alarm.zone_name || alarm.zone_id || "";
    const title = el("div", "title", bilingual(zh, en, "event"));
    const started = Number.isFinite(alarm.started_at) ? alarm.started_at : alarm.at;
    card.replaceChildren(
      thumb,
      el("div", "body",
        title,
        el("div", "where", el("span", "camera", camera), zone ? el("span", "zone", zone) : null),
        el("div", "meta",
          el("span", "time", timeText(cleared ? started : alarm.at, now)),
          el("span", "dwell", `停留 ${durationText(alarm.dwell_s)}`)),
      ),
    );
  }

  /** A case deadline alarm: what (超期 / 即将超期), which case and unit, the deadline. */
  _fillCase(card, alarm, now) {
    card._alarm = alarm;
    const overdue = alarm.stage === "overdue";
    const [zh, en] = eventLabel(alarm.event);
    card.classList.add("case-alarm", overdue ? "case-overdue" : "case-near");
    card.dataset.kind = alarm.event;
    card.dataset.caseNo = String(alarm.case_no || "");
    card.replaceChildren(
      el("div", "thumb case-thumb", el("span", "case-mark", overdue ? "超期" : "临期")),
      el("div", "body",
        el("div", "title", bilingual(zh, en, "event")),
        el("div", "where", el("span", "case-no", String(alarm.case_no || "")),
          el("span", "unit", String(alarm.unit_name || ""))),
        el("div", "meta",
          el("span", "deadline", `截止 ${timeText(alarm.deadline_at, now)}`),
          el("span", "case-title", String(alarm.title || "")))),
    );
  }
}
