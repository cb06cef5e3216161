// Login page: POST /api/login {username, password}; 200 → ?next (same-site path only) or /wall;
// 401 → wrong username or password; 429 → rate limited (with the server's wait); anything else → its error in
// Chinese (messages.js).

import { errorText } from "./messages.js";

const form = document.getElementById("login-form");
const errorEl = document.getElementById("error");
const submit = document.getElementById("submit");

/** Where to go after signing in: ``?next`` when it is a path on this site, else /wall (a unit user's: /field). */
export function nextTarget(search, role = "") {
  const next = new URLSearchParams(search).get("next") || "";
  const home = role === "unit" ? "/field" : "/wall";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : home;
}

function showError(text) {
  errorEl.textContent = text;
}

async function signIn(event) {
  event.preventDefault();
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) {
    showError("请输入用户名和密码 / Enter username and password");
    (username ? form.password : form.username).focus();
    return;
  }
  submit.disabled = true;
  showError("");
  try {
    const resp = await fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ username, password }),
    });
    if (resp.ok) {
      let role = "";
      try { role = ((await resp.json()).user || {}).role || ""; } catch (_) { /* not JSON */ }
      location.assign(nextTarget(location.search, role));
      return;
    }
    if (resp.status === 401) {
      showError("用户名或密码错误 / Wrong username or password");
      form.password.select();
    } else if (resp.status === 429) {
      const wait = Number.parseInt(resp.headers.get("Retry-After") || "", 10);
      const secs = Number.isFinite(wait) ? wait : 60;
      showError(`登录失败次数过多，请 ${secs} 秒后再试 / Too many failed sign-ins, try again in ${secs} s`);
    } else {
      let detail = "";
      try { detail = (await resp.json()).error || ""; } catch (_) { /* not JSON */ }
      showError(`登录失败：${errorText(resp.status, detail)}`);
    }
  } catch (err) {
    showError("无法连接服务器 / Cannot reach the server");
  } finally {
    submit.disabled = false;
  }
}

form.addEventListener("submit", signIn);
