// HTTP helpers for the wall pages: JSON in and out, and a 401 anywhere sends the browser to /login.

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
  return resp.json();
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
