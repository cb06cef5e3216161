// 人工喊话 (/broadcast), for leaders: pick all speakers, a group or one speaker; say a text (TTS on the server)
// or play an uploaded recording (POST /api/clips, then its clip_id); every attempt lands in the broadcast log.
// Beside it the guidance statistics: closed-loop outcomes (/api/guidance/stats) and the log's own figures.
// Exposed for tests as window.citywallBroadcast.

import { ApiError, getJSON, send, sendRaw } from "./api.js";
import { installChrome } from "./chrome.js";
import { el } from "./dom.js";
import { setTimeZone, timeText } from "./format.js";

const $ = (id) => document.getElementById(id);
const now = () => Date.now() / 1000;
const SOURCE = { alarm: "告警联动", manual: "人工", schedule: "定时" };
const STATUS = { played: "已播放", partial: "部分播放", failed: "失败", refused: "被拒绝" };
const OUTCOMES = [["resolved_by_guidance", "引导后消除"], ["not_resolved", "未消除（已立案）"],
                  ["not_broadcast", "未能广播"], ["pending", "待复查"]];
// Why a speaker did not play (guidance.service outcomes).
const OUTCOME_WORDS = { refused: "喇叭正在播放、间隔过短或处于静默时段", failed: "喇叭无应答", skipped: "已跳过" };
let speakers = [];
let groups = {};

function kpi(value, label) {
  return el("div", "kpi", el("div", "v", String(value)), el("div", "k", label));
}

function targetText(target) {
  if (target === "all") return "全部喇叭";
  if (String(target).startsWith("group:")) return `分组 ${String(target).slice(6)}`;
  return (speakers.find((s) => s.id === target) || {}).name || target;
}

async function loadSpeakers() {
  const body = await getJSON("/api/speakers");
  speakers = body.speakers || [];
  groups = body.groups || {};
  $("speaker").replaceChildren(...speakers.map((s) => {
    const o = el("option", "", `${s.name || s.id}${s.online ? "" : "（离线）"}`);
    o.value = s.id;
    return o;
  }));
  $("group").replaceChildren(...Object.entries(groups).map(([name, ids]) => {
    const o = el("option", "", `${name}（${ids.length} 个）`);
    o.value = name;
    return o;
  }));
  $("speakers").replaceChildren(...speakers.map((s) => el("li", s.online ? "online" : "offline",
    `${s.name || s.id}${s.area ? ` · ${s.area}` : ""}${s.online ? "" : " 离线"}`)));
}

async function loadLog() {
  const body = await getJSON("/api/broadcasts?limit=100");
  const list = body.broadcasts || [];
  $("log").tBodies[0].replaceChildren(...list.map((b) => {
    const tr = el("tr", b.status === "played" ? "" : "refused",
      el("td", "", timeText(b.at, now())), el("td", "", `${SOURCE[b.source] || b.source} ${b.requested_by || ""}`),
      el("td", "", targetText(b.target)), el("td", "", b.text || ""),
      el("td", "", STATUS[b.status] || b.status || ""));
    return tr;
  }));
  const today = list.filter((b) => b.at >= now() - 86400);
  const count = (f) => today.filter(f).length;
  $("log-figures").replaceChildren(
    kpi(count(() => true), "24 小时广播"), kpi(count((b) => b.source === "manual"), "人工喊话"),
    kpi(count((b) => b.source === "alarm"), "告警联动"), kpi(count((b) => b.status === "played"), "播放成功"),
    kpi(count((b) => b.status !== "played"), "失败/拒绝"));
}

async function loadStats() {
  const body = await getJSON("/api/guidance/stats");
  const o = body.outcomes || {};
  const decided = (o.resolved_by_guidance || 0) + (o.not_resolved || 0);
  $("outcomes").replaceChildren(...OUTCOMES.map(([k, label]) => kpi(o[k] || 0, label)),
    kpi(decided ? `${Math.round((100 * (o.resolved_by_guidance || 0)) / decided)}%` : "—", "引导消除率"));
}

function result(text, kind) {
  $("result").textContent = text;
  $("result").className = `bc-result ${kind}`;
}

async function broadcast(ev) {
  ev.preventDefault();
  const form = $("send-form");
  const kind = form.elements.kind.value;
  const target = kind === "all" ? "all" : kind === "group" ? `group:${$("group").value}` : $("speaker").value;
  if (!target || target === "group:") { result("请选择喊话对象", "bad"); return; }
  const body = { target, repeat: Number($("repeat").value) };
  $("send").disabled = true;
  try {
    if (form.elements.source.value === "clip") {
      const file = $("clip-file").files[0];
      if (!file) { result("请选择录音文件", "bad"); return; }
      result("正在上传录音…", "");
      const up = await sendRaw("POST", "/api/clips", file, file.type || "application/octet-stream");
      if (!up.ok) { result(`录音上传失败：${up.message}`, "bad"); return; }
      body.clip_id = up.data.clip_id;
      body.text = `录音 ${file.name}`.slice(0, 200);
    } else {
      body.text = $("text").value.trim();
      if (!body.text) { result("请填写喊话内容", "bad"); return; }
    }
    const r = await send("POST", "/api/broadcasts", body);
    if (!r.ok) { result(`未能喊话：${r.message}`, "bad"); return; }
    const b = r.data.broadcast || {};
    const missed = (b.results || []).filter((x) => x.outcome !== "played");
    result(missed.length ? `${STATUS[b.status] || "已发送"}，未播放：${missed.map((x) =>
      `${x.speaker_name || targetText(x.speaker_id)}（${OUTCOME_WORDS[x.outcome] || "未播放"}）`).join("、")}`
      : `已向${targetText(target)}喊话`, missed.length ? "bad" : "ok");
  } finally {
    $("send").disabled = false;
    await Promise.all([loadLog(), loadStats()]).catch(() => {});
  }
}

async function main() {
  let me;
  try { me = await getJSON("/api/me"); } catch (_) { return; }
  setTimeZone(me.timezone);
  installChrome(me);
  $("send-form").addEventListener("submit", broadcast);
  $("clip-file").addEventListener("change", () => {
    const f = $("clip-file").files[0];
    $("clip-name").textContent = f ? f.name : "未选择文件";
    if (f) $("send-form").elements.source.value = "clip";
  });
  try {
    await Promise.all([loadSpeakers(), loadLog(), loadStats()]);
    if (!["leader", "admin"].includes(me.user.role)) {
      $("send").disabled = true;
      result("只有指挥长可以喊话；可查看记录和统计", "bad");
    }
  } catch (err) {
    $("message").textContent = err instanceof ApiError && err.status === 503
      ? "本系统未启用语音广播（guidance.enabled），不能喊话" : `加载失败：${err.message}`;
    $("send").disabled = true;
  }
  window.citywallBroadcast = { loadLog, loadStats };
  document.body.dataset.ready = "1";
}

main();
