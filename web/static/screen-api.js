// Writes for the wall screens (PUT/POST JSON) and the screen id of the page. Reads go through api.js getJSON.

import { ApiError, goLogin } from "./api.js";

/** ``method`` ``url`` with a JSON body; resolves to the JSON reply, rejects with ApiError (401 → login page). */
export async function sendJSON(method, url, body = undefined) {
  const resp = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401) {
    goLogin();
    throw new ApiError(401, "not signed in");
  }
  let data = null;
  try { data = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) throw new ApiError(resp.status, (data && data.error) || `${resp.status} ${resp.statusText}`);
  return data;
}

/** ``/wall/aux`` → "aux"; ``/wall`` → null (the default screen: the first one configured). */
export function screenFromPath(path = location.pathname) {
  const m = /^\/wall\/([^/]+)\/?$/.exec(path);
  return m ? decodeURIComponent(m[1]) : null;
}

export const ackAlarm = (alarmId) => sendJSON("POST", `/api/alarms/${encodeURIComponent(alarmId)}/ack`);
