// 站点模型 (admin): the site's own models trained from the reviewers' labels (learning/). Each version shows its
// validation figures and, once `citywall model compare` ran, what it would change; 影子运行 starts a shadow run,
// 启用 makes it live (the detection worker swaps it in without restart), 回退 brings back the one before.

import { getJSON, send } from "./api.js";
import { installChrome } from "./chrome.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);

function say(text, ok = false) {
  $("message").textContent = text;
  $("message").classList.toggle("ok", ok);
}

const pct = (v) => (typeof v === "number" ? `${Math.round(v * 100)}%` : "–");

function compareText(c) {
  if (!c || !c.reviews) return "未对比";
  const r = c.reviews;
  return `复核告警 ${r.alarms}：保留 ${r.kept}，去掉误报 ${r.false_removed}，漏掉 ${r.true_lost}`;
}

async function act(url, done) {
  const r = await send("POST", url, {});
  if (!r.ok) { say(`未完成：${r.message}`); return; }
  say(done(r.data), true);
  await load();
}

function row(v, live, shadow) {
  const o = v.metrics_val_overall || {};
  const promote = el("button", "primary", "启用", el("span", "en", "Promote"));
  promote.type = "button";
  promote.disabled = v.version === live;
  promote.addEventListener("click", () => act(`/api/admin/models/${encodeURIComponent(v.version)}/promote`,
    (d) => `已启用 ${d.active}（检测进程数秒内生效）`));
  const shadowBtn = el("button", "", "影子运行", el("span", "en", "Shadow"));
  shadowBtn.type = "button";
  shadowBtn.addEventListener("click", () => act(`/api/admin/models/${encodeURIComponent(v.version)}/shadow`,
    (d) => `影子运行 ${d.version} 至 ${new Date(d.until * 1000).toLocaleString("zh-CN")}`));
  const running = shadow && shadow.running && shadow.version === v.version;
  const tr = el("tr", v.version === live ? "selected" : "", el("td", "", v.version),
    el("td", "", `${pct(o.precision)} / ${pct(o.recall)} / ${pct(o.map50)}`), el("td", "", compareText(v.compare)),
    el("td", "", v.version === live ? "在用 Live" : running ? "影子运行中" : ""), el("td", "", shadowBtn, " ", promote));
  tr.dataset.version = v.version;
  tr.addEventListener("click", (ev) => { if (ev.target.tagName !== "BUTTON") showCard(v); });
  return tr;
}

function showCard(v) {
  $("card-title").replaceChildren(`模型卡 ${v.version}`, el("span", "en", "Model card"));
  $("card").textContent = JSON.stringify({ command: v.command, classes: v.classes, metrics_val: v.metrics_val,
    data: v.data, training: v.training, compare: v.compare }, null, 1);
}

async function load() {
  const body = await getJSON("/api/admin/models");
  $("live").textContent = body.active ? `在用模型 ${body.active}` : "未启用站点模型（仅无模型研判）";
  $("live").dataset.active = body.active || "";
  $("rollback").disabled = !body.active;
  $("models").querySelector("tbody").replaceChildren(...body.versions.map((v) => row(v, body.active, body.shadow)));
  $("history").replaceChildren(...body.history.slice().reverse().map((h) => el("li", "",
    `${new Date(h.at * 1000).toLocaleString("zh-CN")} ${h.by} ${h.action === "promote" ? "启用" : "回退"} ` +
    `${h.version || "无模型"}（原 ${h.previous || "无模型"}）`)));
  if (body.versions.length && !$("card").textContent) showCard(body.versions[0]);
}

async function main() {
  let me;
  try {
    me = await getJSON("/api/me");
  } catch (err) {
    return;  // 401 → on the way to /login
  }
  installChrome(me);
  $("rollback").addEventListener("click", () => act("/api/admin/models/rollback",
    (d) => `已回退，在用 ${d.active || "无站点模型"}`));
  await load();
  document.body.dataset.ready = "1";
}

main();
