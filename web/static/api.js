// HTTP helpers for the wall pages: JSON in and out, and a 401 anywhere sends the browser to /login.
// Every state-changing request carries the session's CSRF token (X-CSRF-Token), read from /api/me once per page.

/** Leave for the login page, coming back here afterwards. */
export function goLogin() {
  const here = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(here)}`);
}

/** An HTTP error with the server's JSON ``error`` text. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET ``url`` as JSON; 401 → login page (and a rejected promise), other failures → ApiError. */
export async function getJSON(url) {
  const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (resp.status === 401) {
    goLogin();
    throw new ApiError(401, "not signed in");
  }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).error || detail; } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, `${url}: ${resp.status} ${detail}`);
  }
  const data = await resp.json();
  if (url === "/api/me" && data && data.csrf_token) csrfToken = data.csrf_token;
  return data;
}

let csrfToken = null;

async function csrfHeader() {
  if (!csrfToken) await getJSON("/api/me");
  return { "X-CSRF-Token": csrfToken || "" };
}

/** ``method`` ``url`` with an optional JSON body and the CSRF token; resolves to ``{status, ok, data}``
 * (401 → login page and a rejected promise). A token refused as stale is fetched again and the request retried once. */
export async function send(method, url, body = undefined) {
  for (let attempt = 0; ; attempt += 1) {
    const resp = await fetch(url, {
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
      throw new ApiError(401, "not signed in");
    }
    let data = null;
    try { data = await resp.json(); } catch (_) { /* not JSON */ }
    if (resp.status === 403 && attempt === 0 && data && /^CSRF token/.test(data.error || "")) {
      csrfToken = null;
      continue;
    }
    return { status: resp.status, ok: resp.ok, data: data || {} };
  }
}

/** ``method`` ``url`` with a JSON body; resolves to the JSON reply, rejects with ApiError (401 → login page). */
export async function sendJSON(method, url, body = undefined) {
  const { status, ok, data } = await send(method, url, body);
  if (!ok) throw new ApiError(status, data.error || `${status}`);
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
