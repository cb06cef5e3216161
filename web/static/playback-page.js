// 录像回放 page `/playback?camera=<id>&at=<ISO date/time or Unix seconds>` (links from recording-link.js): one camera
// opens the playback panel (playback.js) at that time; 2–4 `camera` parameters open the synchronised view
// (sync-playback.js). Without `at`: 5 minutes ago. Closing the panel leaves a line to open it again.

import { getJSON } from "./api.js";
import { bilingual, el } from "./dom.js";
import { setTimeZone } from "./format.js";
import { openPlayback } from "./playback.js";
import { MAX_CAMERAS, openSyncPlayback } from "./sync-playback.js";

const $ = (id) => document.getElementById(id);

/** Unix seconds of an `at` parameter (Unix seconds or an ISO date/time), or NaN. */
export function parseAt(raw) {
  if (raw === null || raw === "") return NaN;
  return /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Date.parse(raw) / 1000;
}

function say(...parts) {
  $("msg").replaceChildren(...parts);
}

async function start() {
  const me = await getJSON("/api/me");
  if (me.timezone) setTimeZone(me.timezone);
  const q = new URLSearchParams(location.search);
  const ids = q.getAll("camera").filter(Boolean);
  const raw = q.get("at");
  const at = raw === null ? Date.now() / 1000 - 300 : parseAt(raw);
  if (!ids.length || ids.length > MAX_CAMERAS || !Number.isFinite(at)) {
    say(`链接有误：${!ids.length ? "缺少 camera" : ids.length > MAX_CAMERAS ? `最多 ${MAX_CAMERAS} 个摄像头` : `at 不是时间：${String(raw).slice(0, 40)}`}`,
      el("br"), el("span", "en", "Bad link: camera (1–4) and at (ISO date/time or Unix seconds) expected"));
    return;
  }
  const known = new Map(((await getJSON("/api/cameras")).cameras || []).map((c) => [c.id, c]));
  const unknown = ids.filter((id) => !known.has(id));
  if (unknown.length) {
    say(`未知摄像头：${unknown.join("、")}`, el("br"), el("span", "en", "Unknown camera"));
    return;
  }
  const cams = ids.map((id) => ({ id, name: known.get(id).name || id }));
  const reopen = () => {
    const again = el("button", "", bilingual("重新打开", "Open again"));
    again.type = "button";
    again.addEventListener("click", show);
    const back = el("a", "", bilingual("控制台", "Console"));
    back.href = "/console";
    say("录像回放已关闭 / Playback closed", el("br"), again, back);
  };
  function show() {
    say("");
    if (cams.length === 1) {
      const view = openPlayback({ camera: cams[0].id, name: cams[0].name, at, role: me.user ? me.user.role : "" });
      new MutationObserver((_, obs) => { if (!view.isConnected) { obs.disconnect(); reopen(); } })
        .observe(document.body, { childList: true });
    } else {
      openSyncPlayback({ cameras: cams, at, onClose: reopen });
    }
  }
  show();
  document.body.dataset.ready = "1";
}

start().catch((err) => say(`加载失败：${err.message}`));
