// <cw-tile camera="cam-id" name="解放路人行道">: one live camera on the wall, framework-free.
//
// Protocol (wall server, WebSocket /api/live/<camera>): a text frame {"type":"init","mime":...,"transcoded":
// <the camera's own codec when the server re-encoded it, else null>}, one binary
// frame with the fMP4 init segment (ftyp+moov), then one binary frame per fragment (moof+mdat). A text frame
// {"type":"error","error":...} is followed by a close; the tile retries with exponential backoff.
//
// Modelled on go2rtc's www/video-rtc.js: MediaSource with one SourceBuffer in "segments" mode fed through a
// one-at-a-time append queue, a short buffer, playback held at the live edge, and no socket while the tile
// is not visible (nobody looks at it, so nobody should pay for it).
//
// Playback (录像回放): with a playback-at attribute (Unix seconds) the tile plays the camera's recording from that
// time over /api/recordings/<camera>/play instead (same frames, retimed by the server for speed="1|2|4|8"; text
// frames {"type":"time","at","media"} map the playhead to recorded time, {"type":"end"} ends it). Methods
// pause(), resume(), step() (one frame while paused); tile.position is the recorded time on screen.
//
// Attributes: camera (required), name (shown as the title), camera-state (the ingest status the wall got
// from camera_status frames: online|connecting|reconnecting|offline), alarm (red alarm border while present),
// enlarged (fills the wall's grid; toggled by double-click, Escape leaves it).
// Reflected: data-state = idle|connecting|live|offline|paused.
// Events (bubbling, composed): "cw-tile-state" {camera, state, error}, "cw-tile-enlarge" {camera, enlarged}.
// Read-only: tile.stats (see the getter).

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 2000;       // a camera that is back plays again within ~2 s even without a status push
const NO_SIGNAL_MS = 5000;          // no bytes for this long → offline overlay
const DEAD_SOCKET_MS = 12000;       // no bytes for this long → drop the socket and reconnect
const KEEP_BEHIND_S = 10;           // buffer kept behind the playhead
const JUMP_BEHIND_S = 1.0;          // further than this behind the live edge → jump (plus one fragment)
const JUMP_TARGET_S = 0.15;         // where a jump lands, before the buffered end
const LIVE_TARGET_S = 0.08;         // how far behind the buffered end playback is held (plus one fragment)
const CATCH_UP_GAIN = 0.5;          // playbackRate = 1 + gain × seconds beyond the target …
const CATCH_UP_MAX_RATE = 1.25;     // … up to this; a stall in a busy browser is won back in a few seconds
const MAX_QUEUED = 200;             // appends waiting; beyond this the tile re-syncs from a fresh keyframe
const TICK_MS = 250;
const HEVC_OK = typeof MediaSource !== "undefined" && MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"');

const STATE_LABELS = {
  idle: ["待机", "Idle"],
  connecting: ["连接中", "Connecting"],
  live: ["直播", "LIVE"],
  offline: ["离线", "Offline"],
  paused: ["暂停", "Paused"],
  playback: ["回放", "Playback"],
  ended: ["录像结束", "End of recording"],
};

/** Why a tile is dark, for the overlay: the server's and the tile's own reasons in Chinese first. */
export function reasonText(error) {
  const e = String(error || "");
  if (!e) return "";
  if (e.startsWith("unknown camera")) return "未知摄像头 / Unknown camera";
  if (e === "camera offline") return "摄像头离线 / Camera offline";
  if (e.startsWith("live video not available")) return "服务器未提供直播 / Live video not available";
  if (e.startsWith("no data for")) return "长时间无数据 / No data";
  if (e.startsWith("nothing recorded")) return "此后无录像 / Nothing recorded from here on";
  if (e.startsWith("recording not available")) return "服务器未提供录像 / Recording not available";
  if (e.startsWith("connection closed")) return `连接断开，正在重连 / Reconnecting`;
  return e;
}

const TEMPLATE = document.createElement("template");
TEMPLATE.innerHTML = `
<style>
  :host {
    display: block; position: relative; min-width: 0; min-height: 0;
    background: #000; color: #f5f7fa; overflow: hidden;
    border: 4px solid #2a3442; border-radius: 6px; box-sizing: border-box;
    font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif;
    --cw-name-size: 30px; --cw-badge-size: 22px;
  }
  :host([alarm]) { border-color: #ff3b3b; animation: cw-alarm 1s steps(2, jump-none) infinite; }
  @keyframes cw-alarm { 0% { border-color: #ff3b3b; } 100% { border-color: #7a0d0d; } }
  :host([enlarged]) { position: absolute; inset: 0; z-index: 20; --cw-name-size: 44px; --cw-badge-size: 30px; }
  video { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain; background: #000; }
  .bar {
    position: absolute; left: 0; right: 0; top: 0; display: flex; align-items: center; gap: 12px;
    padding: 8px 12px; background: linear-gradient(rgba(0,0,0,.85), rgba(0,0,0,.55) 70%, rgba(0,0,0,0));
  }
  .name {
    flex: 1; min-width: 0; font-size: var(--cw-name-size); font-weight: 700; line-height: 1.2;
    white-space: nowrap; overflow: hidden; text-overflow: ellipsis; text-shadow: 0 2px 3px #000;
  }
  .badge {
    flex: none; font-size: var(--cw-badge-size); font-weight: 700; line-height: 1; padding: 6px 10px;
    border-radius: 4px; background: #52606d; color: #fff; white-space: nowrap;
  }
  .badge .en { font-size: .72em; font-weight: 600; margin-left: 6px; }
  .xcode {
    flex: none; font-size: calc(var(--cw-badge-size) * .8); font-weight: 700; line-height: 1; padding: 5px 8px;
    border-radius: 4px; background: #1e3a8a; color: #fff; white-space: nowrap;
  }
  .xcode[hidden] { display: none; }
  .badge.live { background: #16a34a; color: #fff; }
  .badge.playback { background: #2563eb; color: #fff; }
  .badge.ended { background: #52606d; color: #fff; }
  .badge.connecting { background: #f5b400; color: #111; }
  .badge.connecting .en { color: #111; }
  .badge.offline { background: #dc2626; color: #fff; }
  .overlay {
    position: absolute; inset: 0; display: flex; flex-direction: column; align-items: center;
    justify-content: center; gap: 8px; background: rgba(10, 14, 20, .88); text-align: center;
  }
  .overlay[hidden] { display: none; }
  .overlay .zh { font-size: 48px; font-weight: 700; color: #ff6b6b; }
  .overlay .en { font-size: 26px; color: #c8d1dc; }
  .overlay .why { font-size: 20px; color: #8d99a8; max-width: 90%; overflow-wrap: anywhere; }
</style>
<video muted playsinline disablepictureinpicture></video>
<div class="overlay" hidden><div class="zh">信号中断</div><div class="en">No signal</div><div class="why"></div></div>
<div class="bar"><div class="name"></div><div class="xcode" hidden></div><div class="badge"><span class="zh"></span><span class="en"></span></div></div>
`;

/** Live camera tile; see the file header for attributes, events and stats. */
export class CwTile extends HTMLElement {
  static observedAttributes = ["camera", "name", "camera-state", "playback-at", "speed"];

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.appendChild(TEMPLATE.content.cloneNode(true));
    this.video = root.querySelector("video");
    this.video.muted = true;  // autoplay policy: only muted video may start without a gesture
    this._nameEl = root.querySelector(".name");
    this._badge = root.querySelector(".badge");
    this._badgeZh = root.querySelector(".badge .zh");
    this._badgeEn = root.querySelector(".badge .en");
    this._overlay = root.querySelector(".overlay");
    this._xcode = root.querySelector(".xcode");
    this._why = root.querySelector(".overlay .why");
    this._overZh = root.querySelector(".overlay .zh");
    this._overEn = root.querySelector(".overlay .en");

    this._state = "idle";
    this._ws = null;
    this._session = null;          // per-connection MSE state
    this._attempt = 0;             // reconnects since the last success (drives the backoff)
    this._retryTimer = 0;
    this._tickTimer = 0;
    this._visible = true;          // IntersectionObserver says the tile is on screen
    this._counters = { fragments: 0, reconnects: 0, bytes: 0, jumps: 0, resyncs: 0, trims: 0, rateChanges: 0, batched: 0 };
    this._lastError = "";
    this._lastDataAt = 0;
    this._connected = false;       // in the document
    this._marks = [];              // playback: {at, media} time marks, newest last
    this._held = false;            // playback: paused by pause()
    this._ended = false;           // playback: the server said there is no more
    this._resumeAt = 0;            // playback: where a reconnect resumes

    this._onVisibility = () => this._syncActive();
    this._onKey = (ev) => { if (ev.key === "Escape" && this.hasAttribute("enlarged")) this.toggleEnlarged(false); };
    this.addEventListener("dblclick", () => this.toggleEnlarged());
    this.video.addEventListener("error", () => {
      if (this._session && this.video.error) this._fail(`video error ${this.video.error.code}: ${this.video.error.message}`);
    });
  }

  connectedCallback() {
    this._connected = true;
    this._renderName();
    this._setState(this._state);
    document.addEventListener("visibilitychange", this._onVisibility);
    document.addEventListener("keydown", this._onKey);
    if ("IntersectionObserver" in window) {
      this._visible = false;  // until the observer's first report: a tile below the fold never opens a socket
      this._io = new IntersectionObserver((entries) => {
        this._visible = entries[entries.length - 1].isIntersecting;
        this._syncActive();
      });
      this._io.observe(this);
    }
    this._tickTimer = setInterval(() => this._tick(), TICK_MS);
    this._syncActive();
  }

  disconnectedCallback() {
    this._connected = false;
    document.removeEventListener("visibilitychange", this._onVisibility);
    document.removeEventListener("keydown", this._onKey);
    this._io?.disconnect();
    this._io = null;
    clearInterval(this._tickTimer);
    clearTimeout(this._retryTimer);
    this._teardown();
  }

  attributeChangedCallback(name, oldValue, value) {
    if (oldValue === value) return;
    if (name === "name") this._renderName();
    if ((name === "camera" || name === "playback-at") && this._connected) {
      this._marks = [];
      this._held = false;
      this._ended = false;
      this._resumeAt = 0;
      this._renderName();
      this._teardown();
      this._attempt = 0;
      clearTimeout(this._retryTimer);
      this._retryTimer = 0;
      this._syncActive();
    }
    if (name === "speed" && this._ws && this.playback) {
      this._send({ type: "speed", speed: Number(value || 1) });
    }
    if (name === "camera-state") {
      // The server saw the camera come back: skip the rest of the backoff wait.
      if (value === "online" && this._state === "offline" && this._retryTimer) {
        clearTimeout(this._retryTimer);
        this._retryTimer = 0;
        this._attempt = 0;
        this._syncActive();
      }
      this._renderBadge();
      this._renderOverlay();
    }
  }

  /** Whether the tile plays a recording (playback-at is set). */
  get playback() { return this.hasAttribute("playback-at"); }

  /** Playback: the recorded Unix time on screen (0 before the first time mark). */
  get position() {
    const t = this.video.currentTime;
    let mark = null;
    for (const m of this._marks) { if (m.media <= t + 1e-3) mark = m; }
    if (!mark) return this._marks.length ? this._marks[0].at : 0;
    return mark.at + (t - mark.media) * Number(this.getAttribute("speed") || 1);
  }

  /** Playback: hold the picture (the server stops sending). */
  pause() { if (!this.playback) return; this._held = true; this.video.pause(); this._send({ type: "pause" }); this._setState(this._state); }

  /** Playback: go on from the held picture. */
  resume() { if (!this.playback) return; this._held = false; this._send({ type: "resume" }); this.video.play().catch(() => {}); this._setState(this._state); }

  /** Playback, paused: show the next frame. */
  step() { if (this.playback && this._held) this._send({ type: "step" }); }

  _send(msg) {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(JSON.stringify(msg));
  }

  /** Figures for tests and diagnostics. */
  get stats() {
    const v = this.video;
    return {
      camera: this.getAttribute("camera") || "",
      state: this._state,
      fragments: this._counters.fragments,
      reconnects: this._counters.reconnects,
      bytes: this._counters.bytes,
      jumps: this._counters.jumps,
      resyncs: this._counters.resyncs,
      trims: this._counters.trims,
      rateChanges: this._counters.rateChanges,
      batched: this._counters.batched,
      playbackRate: v.playbackRate,
      queued: this._session ? this._session.queue.length : 0,
      currentTime: v.currentTime,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      behindLive: this._behindLive(),
      buffered: this._bufferedSeconds(),
      paused: v.paused,
      lastError: this._lastError,
      transcoded: this._transcoded || "",
      playback: this.playback,
      position: this.playback ? this.position : 0,
      held: this._held,
    };
  }

  /** Enlarge the tile over the whole grid (or back); ``force`` sets the state instead of toggling. */
  toggleEnlarged(force) {
    const on = force === undefined ? !this.hasAttribute("enlarged") : Boolean(force);
    this.toggleAttribute("enlarged", on);
    this.dispatchEvent(new CustomEvent("cw-tile-enlarge", {
      bubbles: true, composed: true, detail: { camera: this.getAttribute("camera"), enlarged: on },
    }));
  }

  // ------------------------------------------------------------------------------------------ lifecycle

  _shouldRun() {
    return this._connected && this._visible && document.visibilityState !== "hidden" && !!this.getAttribute("camera") &&
      !this._ended;
  }

  _syncActive() {
    if (this._shouldRun()) {
      if (!this._ws && !this._retryTimer) this._open();
    } else if (this._connected) {
      clearTimeout(this._retryTimer);
      this._retryTimer = 0;
      this._teardown();
      this._setState(this.getAttribute("camera") ? "paused" : "idle");
    }
  }

  _open() {
    const camera = this.getAttribute("camera");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let path = `/api/live/${encodeURIComponent(camera)}`;
    if (this.playback) {
      const at = this._resumeAt || Number(this.getAttribute("playback-at"));
      const speed = Number(this.getAttribute("speed") || 1);
      // hevc=1 only where this browser decodes H.265; elsewhere the server transcodes H.265 recordings.
      path = `/api/recordings/${encodeURIComponent(camera)}/play?at=${at}&speed=${speed}${HEVC_OK ? "&hevc=1" : ""}`;
      this._marks = [];
    }
    const ws = new WebSocket(`${proto}//${location.host}${path}`);
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    this._session = null;
    this._lastDataAt = performance.now();
    this._setState("connecting");
    ws.onmessage = (ev) => { if (this._ws === ws) this._onMessage(ev.data); };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._fail(this._lastError && this._state !== "live" ? this._lastError : `connection closed (${ev.code})`);
    };
    ws.onerror = () => {};  // a close always follows; handled there
  }

  /** Drop the socket and the media pipeline; schedule a reconnect with backoff if the tile should run. */
  _fail(reason) {
    if (!this._ws && !this._session) return;
    if (this.playback && this._marks.length) this._resumeAt = this.position;  // a reconnect goes on from here
    this._lastError = reason || "";
    this._teardown();
    this._setState(this._ended ? "ended" : "offline");
    if (this._ended) return;
    if (!this._shouldRun()) { this._syncActive(); return; }
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this._attempt);
    const delay = base * (0.9 + Math.random() * 0.2);
    this._attempt += 1;
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => {
      this._retryTimer = 0;
      if (!this._shouldRun()) return;
      this._counters.reconnects += 1;
      this._open();
    }, delay);
  }

  _teardown() {
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch (_) { /* already closed */ }
    }
    const s = this._session;
    this._session = null;
    if (s) {
      s.dead = true;
      if (s.url) URL.revokeObjectURL(s.url);
      this.video.removeAttribute("src");
      this.video.load();
    }
  }

  // ------------------------------------------------------------------------------------------ media

  _onMessage(data) {
    if (typeof data === "string") {
      let msg;
      try { msg = JSON.parse(data); } catch (_) { this._fail("bad text frame"); return; }
      if (msg.type === "init") this._startMedia(String(msg.mime || ""), msg.transcoded ? String(msg.transcoded) : "");
      else if (msg.type === "error") this._lastError = String(msg.error || "error");
      else if (msg.type === "time") this._marks.push({ at: Number(msg.at), media: Number(msg.media) });
      else if (msg.type === "end") { this._ended = true; this._lastError = "录像结束 / End of recording"; }
      if (this._marks.length > 600) this._marks.splice(0, this._marks.length - 600);
      return;
    }
    this._lastDataAt = performance.now();
    this._counters.bytes += data.byteLength;
    const s = this._session;
    if (!s) { this._fail("binary frame before init"); return; }
    if (s.queue.length >= MAX_QUEUED) {
      // The decoder cannot keep up; dropping a fragment mid-GOP would corrupt the picture, so start over
      // from the server's next keyframe instead.
      this._counters.resyncs += 1;
      this._fail("append queue overflow");
      return;
    }
    s.queue.push({ kind: s.gotInit ? "fragment" : "init", data });
    s.gotInit = true;
    this._pump();
  }

  _startMedia(mime, transcoded) {
    this._setTranscoded(transcoded);
    if (!("MediaSource" in window) || !MediaSource.isTypeSupported(mime)) {
      this._lastError = `不支持的视频编码 / Unsupported codec: ${mime}`;
      this._fail(this._lastError);
      return;
    }
    const ms = new MediaSource();
    const s = { mime, ms, sb: null, queue: [], gotInit: false, dead: false, url: URL.createObjectURL(ms),
                fragDur: 0, started: false };
    this._session = s;
    ms.addEventListener("sourceopen", () => {
      if (s.dead) return;
      try {
        s.sb = ms.addSourceBuffer(mime);
        s.sb.mode = "segments";
      } catch (err) {
        this._fail(`addSourceBuffer: ${err.message}`);
        return;
      }
      s.sb.addEventListener("updateend", () => this._onUpdateEnd(s));
      s.sb.addEventListener("error", () => this._fail("SourceBuffer error"));
      this._pump();
    }, { once: true });
    this.video.src = s.url;
  }

  _pump() {
    const s = this._session;
    if (!s || !s.sb || s.sb.updating || s.dead || !s.queue.length) return;
    const item = s.queue.shift();
    try {
      if (item.kind === "remove") {
        s.sb.remove(item.start, item.end);
      } else {
        s.endBefore = this._bufferedEnd();
        let data = item.data;
        let count = 1;
        if (item.kind === "fragment" && s.queue.length && s.queue[0].kind === "fragment") {
          // Fragments that piled up while the SourceBuffer was busy go in one append: a page with 16 tiles
          // makes ~400 appends a second otherwise, and a busy main thread falls behind on the events alone.
          const parts = [item.data];
          while (s.queue.length && s.queue[0].kind === "fragment") parts.push(s.queue.shift().data);
          const joined = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
          let at = 0;
          for (const p of parts) { joined.set(new Uint8Array(p), at); at += p.byteLength; }
          data = joined;
          count = parts.length;
          this._counters.batched += count - 1;
        }
        s.sb.appendBuffer(data);
        s.appending = item.kind;
        s.appendingCount = count;
      }
    } catch (err) {
      if (err.name === "QuotaExceededError") {
        this._counters.resyncs += 1;
      }
      this._fail(`append: ${err.message}`);
    }
  }

  _onUpdateEnd(s) {
    if (s.dead || this._session !== s) return;
    if (s.appending === "fragment") {
      s.appending = null;
      this._counters.fragments += s.appendingCount || 1;
      const end = this._bufferedEnd();
      if (s.endBefore !== null && end !== null && end > s.endBefore) {
        const d = (end - s.endBefore) / (s.appendingCount || 1);
        s.fragDur = s.fragDur ? s.fragDur * 0.8 + d * 0.2 : d;
      }
      if (!s.started) {
        s.started = true;
        this._attempt = 0;  // a picture arrived: the next failure starts the backoff afresh
        this._lastError = "";
        this._keepLive(s);
        this.video.play().catch(() => {});
      }
      this._setState("live");
      if (this._held) {  // a step while paused: show the frame that just arrived
        const end = this._bufferedEnd();
        if (end !== null) this.video.currentTime = Math.max(0, end - 0.001);
      }
      this._maybeTrim(s);
    } else {
      s.appending = null;
    }
    this._pump();
  }

  _maybeTrim(s) {
    const v = this.video;
    const b = s.sb.buffered;
    if (!b.length || s.queue.some((q) => q.kind === "remove")) return;
    const start = b.start(0);
    const keepFrom = v.currentTime - KEEP_BEHIND_S;
    if (keepFrom - start > 2) {
      s.queue.push({ kind: "remove", start: 0, end: keepFrom });
      this._counters.trims += 1;
    }
  }

  _bufferedEnd() {
    const b = this._session?.sb?.buffered;
    return b && b.length ? b.end(b.length - 1) : null;
  }

  _bufferedSeconds() {
    const b = this._session?.sb?.buffered;
    return b && b.length ? b.end(b.length - 1) - b.start(0) : 0;
  }

  _behindLive() {
    const end = this._bufferedEnd();
    return end === null ? 0 : Math.max(0, end - this.video.currentTime);
  }

  /** Hold playback at the live edge: jump when far behind; when a little behind, play faster in proportion
   *  (every decoder stall in a busy browser would otherwise add its length to the latency for good). */
  _keepLive(s) {
    const v = this.video;
    const b = s.sb?.buffered;
    if (!b || !b.length) return;
    const end = b.end(b.length - 1);
    const behind = end - v.currentTime;
    // A fragment arrives whole, so right after an append the playhead is up to one fragment behind by design.
    const jumpAt = JUMP_BEHIND_S + s.fragDur;
    if (behind > jumpAt || v.currentTime < b.start(0)) {
      v.currentTime = Math.max(b.start(b.length - 1), end - JUMP_TARGET_S);
      this._counters.jumps += 1;
      v.playbackRate = 1;
    } else {
      const excess = behind - (LIVE_TARGET_S + s.fragDur);
      const rate = excess > 0.03 ? Math.min(CATCH_UP_MAX_RATE, 1 + Math.round(CATCH_UP_GAIN * excess * 20) / 20 + 0.05) : 1;
      if (v.playbackRate !== rate) {
        v.playbackRate = rate;
        this._counters.rateChanges += 1;
      }
    }
    if (v.paused && s.started) v.play().catch(() => {});
  }

  _tick() {
    const s = this._session;
    if (this._held) return;  // playback paused: no catching up, and silence is expected
    if (s && s.started && !s.dead) this._keepLive(s);
    if (!this._ws) return;
    const quiet = performance.now() - this._lastDataAt;
    if (quiet > DEAD_SOCKET_MS) {
      this._fail("no data for 12 s");
    } else if (quiet > NO_SIGNAL_MS && this._state !== "offline") {
      this._lastError = "no data for 5 s";
      this._setState("offline");
    }
  }

  // ------------------------------------------------------------------------------------------ rendering

  /** The "H.265→H.264 转码" badge: the server transcodes this camera for the browser (lower resolution). */
  _setTranscoded(from) {
    const codec = String(from || "");
    this._transcoded = codec;
    this._xcode.hidden = !codec;
    this._xcode.textContent = codec ? `${codec === "hevc" ? "H.265" : codec.toUpperCase()}→H.264 转码` : "";
    this._xcode.title = codec ? "服务器转码 / Transcoded by the server" : "";
  }

  _setState(state) {
    const changed = state !== this._state;
    this._state = state;
    this.dataset.state = state;
    this._renderBadge();
    this._renderOverlay();
    if (changed) {
      this.dispatchEvent(new CustomEvent("cw-tile-state", {
        bubbles: true, composed: true,
        detail: { camera: this.getAttribute("camera"), state, error: this._lastError },
      }));
    }
  }

  /** The badge shows the tile's own state, except that the server's word that the camera is down wins
   *  (the video may still be draining a buffer for a moment). */
  _renderBadge() {
    const cameraDown = !this.playback && ["offline", "reconnecting"].includes(this.getAttribute("camera-state") || "");
    let shown = cameraDown && this._state !== "paused" ? "offline" : this._state;
    if (this.playback && shown === "live") shown = "playback";
    let [zh, en] = STATE_LABELS[shown] || [shown, ""];
    if (shown === "playback") {
      const speed = Number(this.getAttribute("speed") || 1);
      zh = `${this._held ? "回放暂停" : "回放"} ${speed}×`;
      en = this._held ? "Paused" : "Playback";
    }
    this._badge.className = `badge ${shown}`;
    this._badgeZh.textContent = zh;
    this._badgeEn.textContent = en;
  }

  _renderOverlay() {
    const cameraDown = ["offline", "reconnecting"].includes(this.getAttribute("camera-state") || "");
    const show = this._state === "offline" || this._state === "ended";
    this._overlay.hidden = !show;
    this._overZh.textContent = this._state === "ended" ? "录像结束" : "信号中断";
    this._overEn.textContent = this._state === "ended" ? "End of recording" : "No signal";
    if (show) {
      this._why.textContent = cameraDown && !this.playback ? reasonText("camera offline") : reasonText(this._lastError);
    }
  }

  _renderName() {
    this._nameEl.textContent = this.getAttribute("name") || this.getAttribute("camera") || "";
    this.title = this._nameEl.textContent;
  }
}

if (!customElements.get("cw-tile")) customElements.define("cw-tile", CwTile);
