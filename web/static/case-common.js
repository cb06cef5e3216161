// What the case office's pages share (/cases, /cases/<id>, its print view, /field): Chinese names of timeline
// actions and roles, the timeline, deadline stage badges, picture figures, and the action dialog that asks each
// workflow action for what it needs (派遣: unit, urgency, instructions; 退回/改派/延期/挂账/作废: a reason).
// Countdowns count working time on the server's work calendar (workcal.js) once loadWorkCalendar has its periods.

import { getJSON } from "./api.js";
import { el, safePath } from "./dom.js";
import { dateTimeText, remainingText } from "./format.js";
import { roleLabel } from "./messages.js";
import { workCountdown } from "./workcal.js";

/** Timeline action → Chinese (the workflow's stages and the system's and people's own steps). */
export const ACTION_LABELS = {
  report: "上报", accept: "受理", register: "立案", reject: "不予立案", void: "作废", dispatch: "派遣",
  start: "签收处置", feedback: "处置反馈", return: "回退", extend: "延期", suspend: "挂账", resume: "恢复",
  verify: "核查", close: "结案", rework: "返工", attach: "并案", video_check: "视频核查",
  review_confirm: "人工确认", review_reject: "判定误报", supervise: "督办", photo: "照片",
  guidance_broadcast: "语音喊话", guidance: "语音引导",
};
export const actionLabel = (a) => ACTION_LABELS[a] || a;
export const STAGE_LABELS = { normal: "正常", near: "即将超期", overdue: "超期" };
export const FINISHED = new Set(["closed", "rejected", "voided"]);

/** "duty(watch_officer)" → "duty（值班员）"; "system" → 系统. */
export function actorText(actor) {
  const m = String(actor || "").match(/^(.*)\((\w+)\)$/);
  if (m) return `${m[1]}（${roleLabel(m[2])}）`;
  return actor === "system" ? "系统" : String(actor || "");
}

/** A note with the case's alarm ids (long hex) as 第n次报警 and the case's own id as its number. */
export function noteText(note, c) {
  let text = String(note || "");
  (c.alarm_ids || []).forEach((id, i) => { if (id) text = text.split(id).join(`第${i + 1}次报警`); });
  if (c.id) text = text.split(c.id).join(c.case_no || "本案");
  return text;
}

/** The timeline, newest first: when, what, who, note. */
export function timelineRows(c) {
  return (c.timeline || []).slice().reverse().map((e) => el("li", `tl-row tl-${String(e.action).replace(/[^a-z_]/g, "")}`,
    el("span", "tl-when", dateTimeText(e.at)), el("b", "", actionLabel(e.action)), el("span", "tl-who", actorText(e.actor)),
    e.note ? el("span", "tl-note", noteText(e.note, c)) : null));
}

/** The deadline stage as a badge (正常 / 即将超期 / 超期), or the finished state's own words. */
export function stageBadge(c) {
  if (FINISHED.has(c.state)) return el("span", "badge", c.overdue ? "超期办结" : "按期办结");
  const stage = c.deadline_stage || (c.overdue ? "overdue" : "normal");
  return el("span", `badge ${stage}`, STAGE_LABELS[stage] || stage);
}

let workSpan = null;  // {from, to, periods} from /api/work-calendar
const DAY = 86400;

/** Fetch the work calendar's periods the countdowns of ``cases`` need at ``now`` (from the earliest deadline
 *  passed to a week after the latest; what is loaded is kept while it reaches). A failure leaves natural time. */
export async function loadWorkCalendar(cases, now) {
  const deadlines = cases.filter((c) => !FINISHED.has(c.state)).map((c) => Number(c.deadline_at))
    .filter(Number.isFinite);
  if (!deadlines.length) return;
  const to = Math.ceil(Math.max(now, ...deadlines) + 7 * DAY);
  const from = Math.floor(Math.max(to - 790 * DAY, Math.min(now, ...deadlines) - 3600));
  if (workSpan && workSpan.from <= from && Math.max(now, ...deadlines) + DAY <= workSpan.to) return;
  try {
    workSpan = await getJSON(`/api/work-calendar?from=${from}&to=${to}`);
  } catch {
    // natural time until the calendar loads
  }
}

/** "剩余 3.5 工作时" / "超期 2.0 工作时", "（非工作时间，暂停计时）" off hours, for an open case with a limit in
 *  working time; "剩余 3小时12分" for natural hours (or before the calendar loads); "—" for a finished one. */
export function countdown(c, now) {
  if (FINISHED.has(c.state)) return "—";
  const work = workCountdown(c, workSpan, now);
  if (work) return work.zh;
  return remainingText(c.deadline_at, now, c.overdue && c.deadline_at < now).zh;
}

/** A picture with its caption (clicking zooms it over the page). */
export function photoFigure(url, caption) {
  const src = safePath(url);
  const img = el("img");
  if (src) img.src = src;
  img.alt = caption;
  img.loading = "lazy";
  img.addEventListener("click", () => zoom(src));
  return el("figure", "", img, el("figcaption", "", caption));
}

function zoom(src) {
  if (!src) return;
  const img = el("img");
  img.src = src;
  const box = el("div", "zoom", img);
  const close = () => { box.remove(); document.removeEventListener("keydown", onKey, true); };
  const onKey = (ev) => { if (ev.key === "Escape") { ev.stopPropagation(); close(); } };
  box.addEventListener("click", close);
  document.addEventListener("keydown", onKey, true);
  document.body.append(box);
}

// What each action asks for. reason: a note is required (退回、改派、延期、挂账、作废、不予立案、返工).
const NEEDS = {
  dispatch: { unit: true, urgency: true, note: "派遣要求（可不填）" },
  return: { reason: "退回原因" }, extend: { extension: true, reason: "延期理由" }, suspend: { reason: "挂账原因" },
  void: { reason: "作废原因" }, reject: { reason: "不予立案原因" }, rework: { reason: "返工要求" },
  feedback: { note: "处置情况" }, verify: { note: "核查意见（可不填）" }, close: { note: "结案意见（可不填）" },
  resume: { note: "备注（可不填）" }, supervise: { note: "督办要求（可不填）" },
};

/** Ask for the details of ``action`` on case ``c`` in a modal dialog; resolves to the request body's extra fields
 *  ({note?, unit_id?, urgency?, extension?}) or null when cancelled. Actions that need nothing resolve at once. */
export function askAction(c, action, label) {
  const need = NEEDS[action];
  if (!need) return Promise.resolve({});
  const dlg = el("dialog", "co-dialog");
  const form = el("form");
  form.method = "dialog";
  const title = el("h3", "", `${label} · ${c.case_no}`);
  const rows = [];
  let unit = null;
  let urgency = null;
  let value = null;
  let per = null;
  if (need.unit) {
    unit = el("select");
    unit.name = "unit";
    for (const u of c.dispatch_units || []) {
      const o = el("option", "", u.suggested ? `${u.name}（建议：${c.dispatch_reason ? "派遣规则" : "原单位"}）` : u.name);
      o.value = u.id;
      unit.append(o);
    }
    rows.push(el("label", "row", el("span", "", "责任单位 ", el("span", "en", "Unit")), unit,
      c.dispatch_reason ? el("span", "need", `派遣规则：${c.dispatch_reason}`) : null));
  }
  if (need.urgency) {
    urgency = el("select");
    urgency.name = "urgency";
    for (const u of ["一般", "紧急"]) {
      const o = el("option", "", u);
      o.value = u;
      o.selected = (c.urgency || "一般") === u;
      urgency.append(o);
    }
    rows.push(el("label", "row inline", el("span", "", "紧急程度 ", el("span", "en", "Urgency")), urgency));
  }
  if (need.extension) {
    value = el("input");
    Object.assign(value, { type: "number", min: "0.5", max: "10000", step: "0.5", value: "1", name: "value" });
    per = el("select");
    per.name = "per";
    for (const [v, t] of [["work_days", "工作日"], ["work_hours", "工作时"], ["hours", "小时（自然时）"]]) {
      const o = el("option", "", t);
      o.value = v;
      per.append(o);
    }
    rows.push(el("label", "row inline", el("span", "", "延长 ", el("span", "en", "Extend by")), value, per));
  }
  const note = el("textarea");
  Object.assign(note, { rows: 3, maxLength: 500, name: "note" });
  const noteLabel = need.reason || need.note || "备注";
  rows.push(el("label", "row", el("span", "", noteLabel, need.reason ? el("span", "need", "（必填）") : null), note));
  const error = el("p", "error");
  error.setAttribute("role", "alert");
  const ok = el("button", "ok", "确定 ", el("kbd", "", "Ctrl+Enter"));
  ok.type = "submit";
  ok.dataset.role = "submit";
  const cancel = el("button", "", "取消 ", el("kbd", "", "Esc"));
  cancel.type = "button";
  form.append(title, el("p", "need", `${c.title || ""} · 当前截止 ${dateTimeText(c.deadline_at)}`), ...rows, error,
    el("div", "buttons", ok, cancel));
  dlg.append(form);
  document.body.append(dlg);
  dlg.showModal();
  (unit || value || note).focus();
  return new Promise((resolve) => {
    const done = (out) => { dlg.close(); dlg.remove(); resolve(out); };
    cancel.addEventListener("click", () => done(null));
    dlg.addEventListener("cancel", (ev) => { ev.preventDefault(); done(null); });
    note.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && ev.ctrlKey) { ev.preventDefault(); form.requestSubmit(); } });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const out = {};
      const text = note.value.trim();
      if (need.reason && !text) { error.textContent = `请填写${need.reason}`; note.focus(); return; }
      if (text) out.note = text;
      if (unit && unit.value) out.unit_id = unit.value;
      if (urgency) out.urgency = urgency.value;
      if (value) {
        const v = Number(value.value);
        if (!Number.isFinite(v) || v <= 0) { error.textContent = "请填写大于 0 的延期时长"; return; }
        out.extension = { value: v, unit: per.value };
      }
      done(out);
    });
  });
}
