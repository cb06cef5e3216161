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
