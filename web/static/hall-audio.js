// The hall speaker: the wall plays every broadcast the street hears (a "broadcast" frame on the event socket,
// with hall_url = /clips/<name>.opus) and shows a banner "正在广播 Broadcasting: <text> @ <place>" while it plays.
// A newer broadcast cuts the one playing (as on the street, the latest — usually a leader's — wins). A mute
// toggle (button, or the M key) silences the hall without hiding the banner; it is remembered per browser.
// installHallAudio(socket) wraps the socket's onFrame, so wall.js needs one import and one call.

import { el, safePath } from "./dom.js";

const MUTE_KEY = "citywall.hallMuted";
const BANNER_MIN_MS = 6000; // a banner with no audio (muted, or blocked by the browser) stays this long

// Sizes follow the viewport (the wall's stage is scaled to it): as large at 4K as at 1080p, relative to the
// screen. The banner sits below the wall's header (12.5 % of the height) so the counters stay readable, and
// wraps a long text onto a second line instead of cutting it; the mute toggle sits in the header's second line
// (a floating corner button only on a page without that line).
const STYLE = `
.hall-banner { position: fixed; left: 34.4vw; top: calc(12.5vh + 0.6vw); transform: translateX(-50%); z-index: 50;
  max-width: 64vw; display: flex; align-items: center; flex-wrap: wrap; gap: 0.4em 0.7em; padding: 0.45em 0.9em;
  border-radius: 0.35em; background: #12305a; border: 0.1em solid #5aa9ff; color: #fff;
  box-shadow: 0 8px 30px rgba(0,0,0,.6); font-size: clamp(22px, 1.6vw, 80px); font-weight: 800; }
.hall-banner[hidden] { display: none; }
.hall-banner .label .en { margin-left: 0.3em; font-size: 0.67em; font-weight: 600; color: #b9d7ff; }
.hall-banner .text { display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden;
  max-width: 60vw; }
.hall-banner .place { font-size: 0.8em; font-weight: 600; color: #b9d7ff; white-space: nowrap; }
.hall-banner .note { font-size: 0.67em; font-weight: 600; color: #ffd166; }
.hall-mute { position: fixed; right: 0.8vw; bottom: 0.8vw; z-index: 50; padding: 0.4em 0.8em;
  border-radius: 0.35em; font-size: clamp(18px, 1.15vw, 56px); font-weight: 700; color: #fff; background: #1b2a40;
  border: 0.1em solid #44597a; cursor: pointer; }
.hall-mute.in-header { position: static; font-size: 20px; padding: 0 10px; border-width: 1px; border-radius: 4px;
  background: transparent; color: var(--text-2, #b4c0d0); white-space: nowrap; }
.hall-mute[aria-pressed="true"] { background: #5a1620; border-color: #e5484d; }
`;

/** Plays broadcasts in the hall; ``onBroadcast(record)`` takes a BroadcastRecord as the hub sends it. */
export class HallAudio {
  constructor(root = document.body) {
    const style = document.createElement("style");
    style.textContent = STYLE;
    document.head.append(style);
    this.audio = new Audio();
    this.audio.preload = "auto";
    this.muted = localStorage.getItem(MUTE_KEY) === "1";
    this.audio.muted = this.muted;
    this.played = 0;
    this.current = null;
    this._hideTimer = 0;
    this.banner = el("div", "hall-banner");
    this.banner.hidden = true;
    this.banner.setAttribute("role", "status");
    this.button = el("button", "hall-mute");
    this.button.type = "button";
    this.button.addEventListener("click", () => this.setMuted(!this.muted));
    document.addEventListener("keydown", (ev) => {
      if (ev.key !== "m" && ev.key !== "M") return;
      if (ev.ctrlKey || ev.metaKey || ev.altKey || /^(INPUT|TEXTAREA|SELECT)$/.test(ev.target?.tagName || "")) return;
      this.setMuted(!this.muted);
    });
    this.audio.addEventListener("ended", () => this._scheduleHide(0));
    // The wall's header line has room for the toggle (nothing over the video, the pop-up or the panels);
    // elsewhere it floats in the corner.
    const line = document.querySelector(".site-sub");
    root.append(this.banner);
    if (line) { this.button.classList.add("in-header"); line.append(this.button); } else root.append(this.button);
    this._renderButton();
  }

  setMuted(muted) {
    this.muted = Boolean(muted);
    this.audio.muted = this.muted;
    localStorage.setItem(MUTE_KEY, this.muted ? "1" : "0");
    this._renderButton();
  }

  onBroadcast(record) {
    if (!record || (record.status !== "played" && record.status !== "partial")) return;
    this.current = record;
    const url = safePath(record.hall_url);
    const note = el("span", "note");
    this.banner.replaceChildren(
      el("span", "label", "正在广播", el("span", "en", "Broadcasting:")),
      el("span", "text", record.text || ""),
      el("span", "place", `@ ${record.place || record.target || ""}`),
      note,
    );
    this.banner.hidden = false;
    this.banner.dataset.broadcastId = record.broadcast_id || "";
    clearTimeout(this._hideTimer);
    if (!url) { this._scheduleHide(BANNER_MIN_MS); return; }
    this.audio.pause();
    this.audio.src = url; // a newer broadcast replaces the one playing
    this.played += 1;
    if (this.muted) note.textContent = "（静音 muted）";
    this.audio.play().catch(() => {
      // The browser wants a click before sound (no kiosk autoplay flag): say so, keep the banner up.
      note.textContent = "（点击页面启用声音 click to enable sound）";
      this._scheduleHide(BANNER_MIN_MS);
    });
    this._scheduleHide(BANNER_MIN_MS * 10); // safety: never stuck if "ended" never comes
  }

  _scheduleHide(ms) {
    clearTimeout(this._hideTimer);
    this._hideTimer = setTimeout(() => { this.banner.hidden = true; }, Math.max(ms, 0) || BANNER_MIN_MS / 3);
  }

  _renderButton() {
    this.button.setAttribute("aria-pressed", String(this.muted));
    const header = this.button.classList.contains("in-header");
    this.button.title = this.muted ? "大厅广播声音已关 Hall audio muted (M)" : "大厅广播声音开 Hall audio on (M)";
    this.button.replaceChildren(this.muted ? (header ? "广播 关" : "广播已静音 Muted (M)")
      : (header ? "广播 开" : "广播声音 开 Hall audio on (M)"));
  }
}

/** Hook the hall into the wall's event socket: broadcast frames play; every frame still reaches the wall. */
export function installHallAudio(socket, root = document.body) {
  const hall = new HallAudio(root);
  const next = socket.onFrame;
  socket.onFrame = (msg) => {
    if (msg && msg.type === "broadcast") hall.onBroadcast(msg.broadcast);
    next(msg);
  };
  window.citywallHall = hall;
  return hall;
}
