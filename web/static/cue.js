// A short sound cue for the hall when an alarm pops up: two tones through WebAudio (no audio files, no network).
// Browsers only start audio after a user gesture on some setups; then the cue is skipped and counted.

let ctx = null;
export const cueStats = { played: 0, skipped: 0 };

/** Play the alarm cue (about 0.5 s); never throws. */
export function playCue() {
  try {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) { cueStats.skipped += 1; return; }
    ctx = ctx || new AC();
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    const t0 = ctx.currentTime + 0.02;
    [[880, 0], [660, 0.22]].forEach(([freq, at]) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t0 + at);
      gain.gain.exponentialRampToValueAtTime(0.4, t0 + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + at + 0.2);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0 + at);
      osc.stop(t0 + at + 0.22);
    });
    cueStats.played += 1;
  } catch (err) {
    cueStats.skipped += 1;
    console.warn("alarm cue not played", err);
  }
}

const MUTE_KEY = "citywall.cueMutedUntil";

/** The cue again and again while an alarm waits for its acknowledgement: at once for a new alarm, then every
 *  ``intervalMs`` (20 s: heard across the hall, not a siren) until nothing is waiting. ``mute(ms)`` silences it
 *  (5 minutes by default, remembered across reloads); a new alarm after the mute ends sounds again. */
export class CueRepeater {
  constructor({ intervalMs = 20000, play = playCue, now = () => Date.now() } = {}) {
    this.intervalMs = intervalMs;
    this.play = play;
    this.now = now;
    this.waiting = new Set();
    this.repeats = 0;
    this._timer = 0;
  }

  get mutedUntil() {
    return Number(localStorage.getItem(MUTE_KEY) || 0);
  }

  get muted() {
    return this.mutedUntil > this.now();
  }

  /** The alarm ids waiting for acknowledgement now; a new one sounds at once. */
  set(ids) {
    const next = new Set(ids);
    const fresh = [...next].some((id) => !this.waiting.has(id));
    this.waiting = next;
    if (!next.size) { this._stop(); return; }
    if (fresh) { this._sound(); this._schedule(); }
    else if (!this._timer) this._schedule();
  }

  mute(ms = 5 * 60 * 1000) {
    localStorage.setItem(MUTE_KEY, String(this.now() + ms));
  }

  unmute() {
    localStorage.removeItem(MUTE_KEY);
  }

  _sound() {
    if (!this.muted) this.play();
  }

  _schedule() {
    clearInterval(this._timer);
    this._timer = setInterval(() => {
      if (!this.waiting.size) { this._stop(); return; }
      this.repeats += 1;
      this._sound();
    }, this.intervalMs);
  }

  _stop() {
    clearInterval(this._timer);
    this._timer = 0;
  }
}
