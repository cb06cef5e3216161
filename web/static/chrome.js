// What every signed-in page shares: the page links, who is signed in (name and role in Chinese), the 交接班
// (hand-over: sign out) button, and the plain offline banner with the last known state greyed while the event
// socket is down. Pages call ``installChrome(me)`` once /api/me answered and ``linkState(state)`` from their
// EventSocket's onStatus.

import { send } from "./api.js";
import { el } from "./dom.js";
import { roleLabel } from "./messages.js";

/** [path, Chinese, English, roles (null: everyone at the centre; a unit user sees only the pages naming unit)]. */
export const PAGES = [
  ["/wall", "大屏", "Wall", null],
  ["/console", "大屏控制", "Console", null],
  ["/review", "视频复核", "Review", ["monitor", "leader", "admin"]],
  ["/cases", "案件办理", "Cases", ["watch_officer", "monitor", "leader", "admin"]],
  ["/field", "移动处置", "Field", ["unit", "watch_officer", "admin"]],
  ["/situation", "综合态势", "Situation", null],
  ["/broadcast", "喊话", "Broadcast", ["leader", "admin"]],
  ["/stats", "综合评价", "Statistics", null],
  ["/audit", "审计日志", "Audit", ["admin"]],
  ["/admin/cameras", "摄像机", "Cameras", ["admin"]],
  ["/admin/models", "站点模型", "Site models", ["admin"]],
  ["/admin/users", "用户·密码", "Users / password", null],
];

const OFFLINE_TEXT = "与服务器的连接已中断，正在重连";
const OFFLINE_EN = "Connection to the server lost, reconnecting";

/** End the session (POST /api/logout) and go to the login page, whatever the answer. */
export async function logout() {
  try { await send("POST", "/api/logout"); } catch (_) { /* already signed out: the login page either way */ }
  location.assign("/login");
}

/** The user line: "张三 · 值班员" (the role's code never shown). */
export function userText(user) {
  if (!user) return "";
  return `${user.display_name || user.username} · ${roleLabel(user.role)}`;
}

/** Add the page links, the user and 交接班 to the page. ``corner``: the wall and situation stages have no room in
 *  their header — a small 菜单 button in the header's second line opens the bar as a drop-down (nothing covers
 *  the video, the pop-up or the panels until someone asks for it). Returns the nav element. */
export function installChrome(me, { corner = false } = {}) {
  const role = me && me.user ? me.user.role : "";
  const here = location.pathname.replace(/\/+$/, "") || "/";
  const links = PAGES.filter(([, , , roles]) => (roles ? roles.includes(role) : role !== "unit")).map(([path, zh, en]) => {
    const a = el("a", "cw-link", zh, el("span", "en", en));
    a.href = path;
    if (here === path || here.startsWith(`${path}/`)) a.setAttribute("aria-current", "page");
    return a;
  });
  const out = el("button", "cw-logout", "交接班", el("span", "en", "Sign out"));
  out.type = "button";
  out.title = "交接班：退出登录 Hand over: sign out";
  out.addEventListener("click", logout);
  // Pages with their own user line (#user) keep it; the others get it here.
  const user = document.getElementById("user") ? null : el("span", "cw-user", userText(me && me.user));
  const nav = el("nav", corner ? "cw-nav corner" : "cw-nav", ...links, user, out);
  nav.setAttribute("aria-label", "页面 Pages");
  const old = document.querySelector(".cw-nav");
  if (old) old.replaceWith(nav);
  else if (corner) {
    nav.hidden = true;
    const toggle = el("button", "cw-menu", "☰ 菜单", el("span", "en", "Menu"));
    toggle.type = "button";
    toggle.setAttribute("aria-haspopup", "true");
    toggle.addEventListener("click", (ev) => { ev.stopPropagation(); nav.hidden = !nav.hidden; });
    document.addEventListener("click", (ev) => { if (!nav.contains(ev.target)) nav.hidden = true; });
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") nav.hidden = true; });
    const line = document.querySelector(".site-sub");
    (line || document.body).append(toggle);
    (document.getElementById("stage") || document.body).append(nav);
  } else (document.querySelector("header") || document.body).append(nav);
  return nav;
}

let banner = null;

/** The event socket's state: "closed" shows the offline banner and greys the page (``body.offline``); "open"
 *  lifts both. */
export function linkState(state) {
  const offline = state === "closed";
  document.body.classList.toggle("offline", offline);
  if (!banner) {
    banner = el("div", "cw-offline", el("span", "zh", OFFLINE_TEXT), el("span", "en", OFFLINE_EN));
    banner.id = "offline";
    banner.setAttribute("role", "alert");
    banner.hidden = true;
    document.body.append(banner);
  }
  banner.hidden = !offline;
}

