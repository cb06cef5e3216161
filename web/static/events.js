// The wall's event socket (WebSocket /api/ws): alarms, deadline alarms, system alarms, camera status and case frames, with reconnect and
// resume. Every (re)connect sends {"type":"resume","last_ids":{...}} with the newest stream ids seen, so the
// server replays what was missed; frames already seen (by stream id) are dropped here as well.

import { compareStreamIds } from "./format.js";

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 8000;
const PING_MS = 20000;
const SEEN_MAX = 5000;
const STREAM_OF = { alarm: "alarms", case_deadline: "case_deadlines", case: "case_events", system_alarm: "system_alarms" };

/** Reconnecting, resuming event socket; ``onFrame(msg)`` gets every new frame, ``onStatus(state)`` open|closed. */
export class EventSocket {
  constructor({ url = "/api/ws", onFrame, onStatus = () => {}, checkSession = async () => true } = {}) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = url.startsWith("ws") ? url : `${proto}//${location.host}${url}`;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.checkSession = checkSession;
    this.lastIds = {};          // stream → newest id seen
    this.connects = 0;
    this.duplicates = 0;
    this._seen = new Set();
    this._seenOrder = [];
    this._attempt = 0;
    this._ws = null;
    this._timer = 0;
    this._ping = 0;
    this._stopped = true;
  }

  /** Note a stream id already known from the REST history, so the first resume starts after it. */
  remember(stream, id) {
    if (!id) return;
    if (!this.lastIds[stream] || compareStreamIds(id, this.lastIds[stream]) > 0) this.lastIds[stream] = id;
  }

  start() {
    this._stopped = false;
    this._open();
  }

  stop() {
    this._stopped = true;
    clearTimeout(this._timer);
    clearInterval(this._ping);
    if (this._ws) {
      this._ws.onclose = null;
      this._ws.close();
      this._ws = null;
    }
  }

  _open() {
    const ws = new WebSocket(this.url);
    this._ws = ws;
    ws.onopen = () => {
      this._attempt = 0;
      this.connects += 1;
      if (Object.keys(this.lastIds).length) {
        ws.send(JSON.stringify({ type: "resume", last_ids: { ...this.lastIds } }));
      }
      clearInterval(this._ping);
      this._ping = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
      }, PING_MS);
      this.onStatus("open");
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (!msg || typeof msg !== "object") return;
      const stream = STREAM_OF[msg.type];
      if (stream && msg.id) {
        const key = `${stream}/${msg.id}`;
        if (this._seen.has(key)) { this.duplicates += 1; return; }
        this._seen.add(key);
        this._seenOrder.push(key);
        if (this._seenOrder.length > SEEN_MAX) this._seen.delete(this._seenOrder.shift());
        this.remember(stream, msg.id);
      }
      try { this.onFrame(msg); } catch (err) { console.error("event frame handler failed", err, msg); }
    };
    ws.onclose = async () => {
      clearInterval(this._ping);
      if (this._ws !== ws) return;
      this._ws = null;
      this.onStatus("closed");
      if (this._stopped) return;
      // An upgrade refused for a lapsed session looks like any other close; ask the REST side.
      if (!(await this.checkSession())) return;
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this._attempt) * (0.9 + Math.random() * 0.2);
      this._attempt += 1;
      this._timer = setTimeout(() => { if (!this._stopped) this._open(); }, delay);
    };
  }
}
