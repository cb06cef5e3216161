// The evidence of an alarm, played in the page: a viewer over the page with the alarm's clip (/evidence/...mp4,
// H.264), its snapshot as the poster, what/where/when above it; 关闭 (or Esc) closes it. Without a clip the
// snapshot is shown with 无录像. One viewer at a time.

import { bilingual, el, safePath } from "./dom.js";

let open = null;

/** Show ``{title, sub, clipUrl, snapshotUrl}`` over ``container`` (default: the body). Returns the viewer. */
export function showClip({ title = "", sub = "", clipUrl = null, snapshotUrl = null }, container = document.body) {
  closeClip();
  const clip = safePath(clipUrl);
  const snap = safePath(snapshotUrl);
  const close = el("button", "clip-close", bilingual("关闭", "Close (Esc)"));
  close.type = "button";
  close.addEventListener("click", closeClip);
  let media;
  if (clip) {
    media = el("video", "clip-video");
    media.controls = true;
    media.muted = true;          // autoplay needs it; the clip is evidence, not sound
    media.autoplay = true;
    media.playsInline = true;
    if (snap) media.poster = snap;
    media.src = clip;
    media.addEventListener("error", () => {
      note.textContent = "录像无法播放（文件缺失或格式不支持） / The clip cannot be played";
      note.hidden = false;
    });
  } else if (snap) {
    media = el("img", "clip-still");
    media.src = snap;
    media.alt = title;
  } else {
    media = el("div", "clip-none", "无快照 / No picture");
  }
  const note = el("p", "clip-note", clip ? "" : "此告警没有录像，显示快照 / No clip for this alarm: the snapshot");
  note.hidden = Boolean(clip);
  const viewer = el("div", "clip-view",
    el("div", "clip-box",
      el("div", "clip-head", el("div", "clip-title", title), el("div", "clip-sub", sub), close),
      media, note));
  viewer.id = "clip-view";
  viewer.setAttribute("role", "dialog");
  viewer.setAttribute("aria-label", "告警录像 Alarm clip");
  viewer.addEventListener("click", (ev) => { if (ev.target === viewer) closeClip(); });
  container.append(viewer);
  open = viewer;
  return viewer;
}

export function closeClip() {
  if (!open) return;
  const video = open.querySelector("video");
  if (video) { video.pause(); video.removeAttribute("src"); video.load(); }
  open.remove();
  open = null;
}

document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && open) closeClip(); });
