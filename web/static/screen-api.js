// Writes for the wall screens (PUT/POST JSON, with the CSRF token: api.js) and the screen id of the page.

import { sendJSON } from "./api.js";

export { sendJSON };

/** ``/wall/aux`` → "aux"; ``/wall`` → null (the default screen: the first one configured). */
export function screenFromPath(path = location.pathname) {
  const m = /^\/wall\/([^/]+)\/?$/.exec(path);
  return m ? decodeURIComponent(m[1]) : null;
}

export const ackAlarm = (alarmId) => sendJSON("POST", `/api/alarms/${encodeURIComponent(alarmId)}/ack`);
