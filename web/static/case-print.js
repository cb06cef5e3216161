// 案件单 /cases/<id>/print: the case sheet for paper or PDF (the browser's 打印 → 存为 PDF): facts, the alarm's
// evidence and the unit's photos, every step of the timeline with who and what, signature lines.

import { getJSON } from "./api.js";
import { el, safePath } from "./dom.js";
import { dateTimeText, setTimeZone } from "./format.js";
import { actionLabel, actorText, countdown, loadWorkCalendar, noteText, STAGE_LABELS } from "./case-common.js";

const $ = (id) => document.getElementById(id);
const caseId = decodeURIComponent(location.pathname.split("/")[2] || "");

function figure(url, caption) {
  const img = el("img");
  const src = safePath(url);
  if (src) img.src = src;
  img.alt = caption;
  return el("figure", "", img, el("figcaption", "", caption));
}

async function main() {
  let me;
  try {
    me = await getJSON("/api/me");
  } catch (err) {
    return;
  }
  setTimeZone(me.timezone);
  const c = await getJSON(`/api/cases/${encodeURIComponent(caseId)}`);
  await loadWorkCalendar([c], Date.now() / 1000);
  document.title = `案件单 ${c.case_no}`;
  $("site").textContent = me.site_name ? `${me.site_name} ` : "";
  $("no").textContent = `案件编号 ${c.case_no}`;
  $("made").textContent = `打印时间 ${dateTimeText(Date.now() / 1000)}`;
  $("back").href = `/cases/${encodeURIComponent(c.id)}`;
  const rows = [
    ["案件名称", c.title || "", "案件状态", `${c.state_label}${c.deadline_stage ? `（${STAGE_LABELS[c.deadline_stage]}）` : ""}`],
    ["案件类别", `${c.kind || ""} ${c.code || ""} ${c.category_name || ""}`, "紧急程度", c.urgency || "一般"],
    ["发生地点", c.address || "", "街道社区", [c.street, c.community].filter(Boolean).join(" ")],
    ["网格编码", c.grid_code || "—", "摄像头", c.camera_name || c.camera_id || "—"],
    ["责任单位", c.unit_name || "—", "派遣依据", c.dispatch_reason || "—"],
    ["上报时间", dateTimeText(c.reported_at), "处置时限", (c.time_limit && c.time_limit.label) || "—"],
    ["截止时间", dateTimeText(c.deadline_at), "剩余/超期", countdown(c, Date.now() / 1000)],
    ["督办", c.supervised ? `${c.supervise_count} 次` : "无", "来源", c.source === "camera" ? "视频智能识别" : (c.source || "—")],
  ];
  $("facts").replaceChildren(...rows.map(([a, b, d, e]) => el("tr", "", el("th", "", a), el("td", "", b), el("th", "", d), el("td", "", e))));
  const alarmPictures = (c.alarm_evidence_urls || []).filter((u) => /\.(jpe?g|png)$/i.test(u || "")).slice(0, 2);
  const photos = (c.photos || []).filter((p) => p.url);
  $("photos").replaceChildren(
    ...alarmPictures.map((u, i) => figure(u, `告警截图 ${i + 1}`)),
    ...photos.map((p) => figure(p.url, `${p.kind === "site_snapshot" ? "现场抓拍" : "处置照片"} · ${actorText(p.by)} · ${
      p.taken_at ? `拍摄 ${p.taken_at.replace("T", " ")}` : dateTimeText(p.at)}`)));
  $("steps").replaceChildren(...(c.timeline || []).map((e) => el("tr", "",
    el("td", "", dateTimeText(e.at)), el("td", "", actionLabel(e.action)), el("td", "", actorText(e.actor)),
    el("td", "", noteText(e.note, c)))));
  $("print").addEventListener("click", () => window.print());
  await Promise.all([...document.images].map((img) => (img.complete ? null : new Promise((r) => { img.onload = r; img.onerror = r; }))));
  document.body.dataset.ready = "1";
}

main();
