// The admin's audit log over GET /api/audit: filters in the URL (a view can be bookmarked), newest first, paged.
// Keys: "/" focuses the text search, "[" newer page, "]" older page.

import { ApiError, getJSON } from "./api.js";
import { installChrome } from "./chrome.js";
import { el } from "./dom.js";
import { dateTimeText, setTimeZone } from "./format.js";
import { errorText, roleLabel } from "./messages.js";

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const FIELDS = ["actor", "action", "target", "outcome", "since", "until", "q"];
// Action codes → what was done, in words (the select's case actions use the same names).
const ACTIONS = {
  login: "登录", logout: "退出（交接班）", "screen.layout": "改变布局", "screen.tile": "切换画面", "tour.start": "开始轮巡",
  "tour.pause": "暂停轮巡", "tour.resume": "继续轮巡", "tour.stop": "停止轮巡", "alarm.ack": "确认告警",
  "plan.invoke": "启动预案", "plan.end": "结束预案", "broadcast.manual": "人工喊话", "clip.upload": "上传录音",
  "review.claim": "领取复核", "review.decision": "复核判定", "case.supervise": "督办", "case.accept": "受理案件",
  "case.register": "立案", "case.dispatch": "派遣", "case.start": "签收处置", "case.feedback": "处置反馈",
  "case.return": "回退", "case.extend": "延期", "case.suspend": "挂账", "case.resume": "恢复", "case.verify": "核查",
  "case.close": "结案", "case.rework": "返工", "case.reject": "不予立案", "case.void": "作废",
};
// Detail keys → Chinese; values shown as text (lists joined), nested objects one level deep.
const DETAIL_KEYS = {
  request: "请求", refused: "拒绝原因", layout: "布局", camera: "摄像头", tour: "轮巡", dwell_s: "停留秒数", plan: "预案",
  name: "名称", screens: "屏幕", alarm_id: "告警", decision: "判定", reason: "理由", note: "备注", action: "操作",
  version: "版本", extension: "延期", value: "时长", unit: "单位", target: "对象", text: "内容", repeat: "次数",
  broadcast_id: "广播编号", status: "状态", not_played: "未播放", duration_s: "时长(秒)", role: "角色", current: "当前",
  direction: "方向", clip_id: "录音", broadcasts: "广播", unit_id: "责任单位",
};
const UNITS = { work_days: "工作日", work_hours: "工作时", hours: "小时" };

/** An HTTP outcome in words. */
function outcomeText(code) {
  if (code >= 200 && code < 300) return "成功";
  return { 400: "输入有误", 401: "未登录/登录失败", 403: "无权限被拒", 404: "对象不存在", 409: "状态冲突",
           413: "内容过大", 422: "无法办理", 429: "过于频繁" }[code] || (code >= 500 ? "服务器出错" : `未完成（${code}）`);
}

function valueText(key, v) {
  if (v === null || v === undefined || v === "") return "—";
  if (key === "unit" && UNITS[v]) return UNITS[v];
  if (key === "role") return roleLabel(v);
  if (key === "action" && ACTIONS[`case.${v}`]) return ACTIONS[`case.${v}`];
  if (Array.isArray(v)) return v.map((x) => (typeof x === "object" ? detailsText(x) : String(x))).join("、");
  if (typeof v === "object") return detailsText(v);
  return String(v);
}

/** Details as "键：值；…" in Chinese instead of raw JSON (the raw JSON stays in the cell's tooltip). */
function detailsText(details) {
  if (!details || typeof details !== "object") return "";
  return Object.entries(details).map(([k, v]) => {
    if (k === "refused") return `拒绝原因：${errorText(403, String(v))}`;
    return `${DETAIL_KEYS[k] || k}：${valueText(k, v)}`;
  }).join("；");
}
let offset = 0;
let total = 0;

function params() {
  const form = new FormData($("filters"));
  const out = new URLSearchParams();
  for (const key of FIELDS) {
    const value = String(form.get(key) || "").trim();
    if (value) out.set(key, value);
  }
  return out;
}

function row(e) {
  const refused = e.outcome === 403 || e.outcome === 401;
  const details = el("td", "details", detailsText(e.details));
  details.title = JSON.stringify(e.details);
  const tr = el("tr", refused ? "refused" : "",
    el("td", "when", dateTimeText(e.at)), el("td", "", e.actor),
    el("td", "", e.role ? roleLabel(e.role) : "—"), el("td", "action", ACTIONS[e.action] || e.action),
    el("td", "", e.target), el("td", "outcome", outcomeText(e.outcome)), el("td", "", e.client), details);
  tr.dataset.action = e.action;
  tr.dataset.outcome = String(e.outcome);
  return tr;
}

async function load() {
  const query = params();
  history.replaceState(null, "", `?${query}`);
  query.set("limit", String(PAGE));
  query.set("offset", String(offset));
  try {
    const body = await getJSON(`/api/audit?${query}`);
    total = body.total;
    $("table").tBodies[0].replaceChildren(...body.entries.map(row));
    $("page").textContent = total ? `${offset + 1}–${offset + body.entries.length} / ${total}` : "无记录 / none";
    $("message").textContent = "";
  } catch (err) {
    $("message").textContent = err instanceof ApiError && err.status === 403
      ? "只有管理员可以查看审计日志 / Only the administrator may read the audit log" : `出错：${err.message}`;
  }
  $("prev").disabled = offset === 0;
  $("next").disabled = offset + PAGE >= total;
}

function page(step) {
  const next = offset + step * PAGE;
  if (next < 0 || next >= Math.max(total, 1)) return;
  offset = next;
  load();
}

async function main() {
  const me = await getJSON("/api/me").catch(() => null);
  if (me) { setTimeZone(me.timezone); installChrome(me); }
  const initial = new URLSearchParams(location.search);
  for (const key of FIELDS) {
    const input = $("filters").elements[key];
    if (input && initial.has(key)) input.value = initial.get(key);
  }
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); offset = 0; load(); });
  $("prev").addEventListener("click", () => page(-1));
  $("next").addEventListener("click", () => page(1));
  document.addEventListener("keydown", (ev) => {
    if (["INPUT", "SELECT", "TEXTAREA"].includes(ev.target?.tagName || "")) return;
    if (ev.key === "/") { ev.preventDefault(); $("filters").elements.q.focus(); }
    else if (ev.key === "[") page(-1);
    else if (ev.key === "]") page(1);
  });
  await load();
  document.body.dataset.ready = "1";
}

main();
