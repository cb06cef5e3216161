// 用户 (admin): create, disable (their sessions end at once), reset password, role and unit scope; and every
// user's own password change (POST /api/me/password). Password rules are the server's; its refusal is shown as is.

import { getJSON, goLogin, send } from "./api.js";
import { installChrome } from "./chrome.js";
import { el } from "./dom.js";
import { roleLabel } from "./messages.js";

const $ = (id) => document.getElementById(id);
let users = [];
let editing = null;

function say(id, text, ok = false) {
  $(id).textContent = text;
  $(id).classList.toggle("ok", ok);
}

function refusal(result) {
  // Admin refusals carry their reason in Chinese already ("password: 密码过于常见…"): show it, not just "输入有误".
  const raw = (result.data && result.data.error) || "";
  if (!(result.data && result.data.problems) && /[\u4e00-\u9fff]/.test(raw)) return raw.replace(/^[\w.[\]]+: /, "");
  const problems = (result.data && result.data.problems) || [];
  return problems.length ? problems.map((p) => `${p.path}: ${p.reason}`).join("\n") : result.message;
}

async function load() {
  users = (await getJSON("/api/admin/users")).users;
  $("users").querySelector("tbody").replaceChildren(...users.map((u) => {
    const edit = el("button", "", "编辑");
    edit.type = "button";
    edit.addEventListener("click", () => open(u.username));
    const toggle = el("button", u.enabled ? "danger" : "", u.enabled ? "停用" : "启用");
    toggle.type = "button";
    toggle.addEventListener("click", () => save(u.username, { enabled: !u.enabled }));
    const row = el("tr", u.enabled ? "" : "disabled", el("td", "", u.username), el("td", "", u.display_name),
      el("td", "", roleLabel(u.role)), el("td", "", (u.units || []).join("、") || "全部"),
      el("td", "", u.enabled ? "启用" : "已停用"), el("td", "", edit, " ", toggle));
    row.dataset.user = u.username;
    return row;
  }));
}

function open(username) {
  editing = username;
  const u = users.find((x) => x.username === username) || { role: "watch_officer", enabled: true, units: [] };
  const f = $("user-form").elements;
  f.username.value = u.username || ""; f.username.readOnly = Boolean(username);
  f.display_name.value = u.display_name || ""; f.role.value = u.role; f.units.value = (u.units || []).join(", ");
  f.enabled.checked = u.enabled; f.password.value = "";
  $("form-title").replaceChildren(username ? `编辑 ${username}` : "新增用户", el("span", "en", username ? "Edit user" : "New user"));
  say("message", "");
}

async function save(username, body) {
  const result = username
    ? await send("PUT", `/api/admin/users/${encodeURIComponent(username)}`, body)
    : await send("POST", "/api/admin/users", body);
  if (!result.ok) {
    say("message", `未保存：${refusal(result)}`);
    return false;
  }
  const ended = (result.data.applied && result.data.applied.users_ended) || [];
  say("message", `已保存并立即生效${ended.length ? `；已结束会话：${ended.join("、")}` : ""}`, true);
  await load();
  return true;
}

async function submit(ev) {
  ev.preventDefault();
  const f = $("user-form").elements;
  const body = { display_name: f.display_name.value.trim(), role: f.role.value, enabled: f.enabled.checked,
    units: f.units.value.split(/[,，\s]+/).filter(Boolean) };
  if (f.password.value) body.password = f.password.value;
  if (!editing) body.username = f.username.value.trim();
  if (await save(editing, body) && !editing) open(body.username);
}

async function changeOwn(ev) {
  ev.preventDefault();
  const f = $("own").elements;
  const result = await send("POST", "/api/me/password", { old_password: f.old_password.value, new_password: f.new_password.value });
  if (!result.ok) {
    say("own-message", result.message);
    return;
  }
  say("own-message", "密码已修改，请用新密码重新登录", true);
  setTimeout(goLogin, 1500);
}

async function main() {
  const me = await getJSON("/api/me");
  installChrome(me);
  $("own").addEventListener("submit", changeOwn);
  if (me.user.role === "admin") {
    $("user-form").addEventListener("submit", submit);
    $("new").addEventListener("click", () => open(null));
    await load();
    open(null);
  } else {
    for (const node of document.querySelectorAll(".ad-main > section:first-child, #user-form, #form-title, #new")) node.hidden = true;
  }
  document.body.dataset.ready = "1";
}

main();
