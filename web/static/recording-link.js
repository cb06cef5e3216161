// Links to a camera's recording (录像): `/playback?camera=<id>&at=<ISO 8601 UTC>` opens the playback page there;
// `camera` may repeat (up to 4) for the synchronised view. Used by the review console and the case page for "the
// recording at the alarm's time": RECORDING_LEAD_S before it, so the lead-up is seen.

export const RECORDING_LEAD_S = 30;

/** The playback page for ``cameras`` (an id or a list of up to 4) from ``at`` − ``leadS`` (Unix seconds). */
export function recordingUrl(cameras, at, leadS = RECORDING_LEAD_S) {
  const q = new URLSearchParams();
  for (const id of [].concat(cameras)) q.append("camera", id);
  q.set("at", new Date((Number(at) - leadS) * 1000).toISOString());
  return `/playback?${q}`;
}

/** Point the link ``a`` at ``camera``'s recording from ``at`` − RECORDING_LEAD_S; hidden without a camera. */
export function setRecordingLink(a, camera, at) {
  a.hidden = !camera || !Number.isFinite(Number(at));
  if (!a.hidden) a.href = recordingUrl(camera, at);
}
