// HTTP helpers for the wall pages: JSON in and out, and a 401 anywhere sends the browser to /login.
// Every state-changing request carries the session's CSRF token (X-CSRF-Token), read from /api/me once per page.
// Errors carry a Chinese ``message`` (messages.js); the server's English text stays in ``raw`` for the console.

import { errorText } from "./messages.js";

/** Leave for the login page, coming back here afterwards. */
export function goLogin() {
  const here = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

/** An HTTP error: ``message`` is what a person reads (Chinese), ``raw`` the server's own ``error`` text. */
export class ApiError extends Error {
  constructor(status, raw = "") {
    super(errorText(status, raw));
    this.status = status;
    this.raw = raw;
  }
}

/** A GET answered 401 (→ login page) or another failure (→ ApiError with the server's reason): always throws. */
async function refuse(url, resp) {
  if (resp.status === 401) {
    goLogin();
    throw new ApiError(401, "login required");
  }
  let detail = "";
  try { detail = (await resp.json()).error || ""; } catch (_) { /* not JSON */ }
  console.warn(`GET ${url}: ${resp.status} ${detail}`);
  throw new ApiError(resp.status, detail);
}

/** GET ``url`` as JSON; 401 → login page (and a rejected promise), other failures → ApiError. */
export async function getJSON(url) {
  const resp = await reach(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!resp.ok) await refuse(url, resp);
  const data = await resp.json();
  if (url === "/api/me" && data && data.csrf_token) csrfToken = data.csrf_token;
  return data;
}

/** GET ``url`` as a file: ``{blob, name}`` (the name from Content-Disposition, else ``fallback``); failures as
 *  getJSON's (401 → login page, others → ApiError with the server's reason). */
export async function getFile(url, fallback = "download") {
  const resp = await reach(url, { credentials: "same-origin" });
  if (!resp.ok) await refuse(url, resp);
  const disposition = resp.headers.get("Content-Disposition") || "";
  const named = /filename\*=UTF-8''([^;]+)/i.exec(disposition) || /filename="?([^";]+)"?/i.exec(disposition);
  return { blob: await resp.blob(), name: named ? decodeURIComponent(named[1]) : fallback };
}

let csrfToken = null;

/** fetch, with "no answer at all" (server down, network gone) as ApiError status 0 instead of a TypeError. */
async function reach(url, init) {
  try {
    return await fetch(url, init);
  } catch (err) {
    console.warn(`${init.method || "GET"} ${url}: no answer`, err);
    throw new ApiError(0, "");
  }
}

async function csrfHeader() {
  if (!csrfToken) await getJSON("/api/me");
  return { "X-CSRF-Token": csrfToken || "" };
}

/** ``method`` ``url`` with an optional JSON body and the CSRF token; resolves to ``{status, ok, data, message}``
 * (``message``: the Chinese text of a failure, "" on success)
 * (401 → login page and a rejected promise). A token refused as stale is fetched again and the request retried once. */
export async function send(method, url, body = undefined) {
  for (let attempt = 0; ; attempt += 1) {
    const resp = await reach(url, {
      method,
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...(await csrfHeader()),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 401) {
      goLogin();
      throw new ApiError(401, "login required");
    }
    let data = null;
    try { data = await resp.json(); } catch (_) { /* not JSON */ }
    if (resp.status === 403 && attempt === 0 && data && /^CSRF token/.test(data.error || "")) {
      csrfToken = null;
      continue;
    }
    if (!resp.ok) console.warn(`${method} ${url}: ${resp.status} ${(data && data.error) || ""}`);
    return { status: resp.status, ok: resp.ok, data: data || {}, message: resp.ok ? "" : errorText(resp.status, data && data.error) };
  }
}

/** ``method`` ``url`` with a raw body (an uploaded file) and the CSRF token; resolves like :func:`send`. */
export async function sendRaw(method, url, body, contentType) {
  const resp = await reach(url, {
    method, credentials: "same-origin", body,
    headers: { Accept: "application/json", "Content-Type": contentType, ...(await csrfHeader()) },
  });
  if (resp.status === 401) {
    goLogin();
    throw new ApiError(401, "login required");
  }
  let data = null;
  try { data = await resp.json(); } catch (_) { /* not JSON */ }
  return { status: resp.status, ok: resp.ok, data: data || {}, message: resp.ok ? "" : errorText(resp.status, data && data.error) };
}

/** POST a ``FormData`` (multipart: a photo and its fields) with the CSRF token; resolves like :func:`send`. The
 *  browser writes the Content-Type with its boundary. */
export async function sendForm(url, form) {
  const resp = await reach(url, {
    method: "POST", credentials: "same-origin", body: form,
    headers: { Accept: "application/json", ...(await csrfHeader()) },
  });
  if (resp.status === 401) {
    goLogin();
    throw new ApiError(401, "login required");
  }
  let data = null;
  try { data = await resp.json(); } catch (_) { /* not JSON */ }
  return { status: resp.status, ok: resp.ok, data: data || {}, message: resp.ok ? "" : errorText(resp.status, data && data.error) };
}

/** ``method`` ``url`` with a JSON body; resolves to the JSON reply, rejects with ApiError (401 → login page). */
export async function sendJSON(method, url, body = undefined) {
  const { status, ok, data } = await send(method, url, body);
  if (!ok) throw new ApiError(status, data.error || "");
  return data;
}

/** Whether the session is still valid (GET /api/me); false after sending the browser to /login. */
export async function checkSession() {
  try {
    await getJSON("/api/me");
    return true;
  } catch (err) {
    return !(err instanceof ApiError && err.status === 401);
  }
}
