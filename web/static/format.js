// Labels and time formatting for the wall: pure functions (time is passed in), no DOM.

/** Detector event type → [Chinese, English] label. */
export const EVENT_LABELS = {
  vending: ["无照经营游商", "Street vending"],
  road_occupation: ["乱堆物堆料", "Goods on road"],
  bin_overflow: ["垃圾箱满溢", "Bin overflow"],
};

/** Case states after which nothing is left to do (not counted as open). */
export const FINISHED_STATES = new Set(["closed", "rejected", "voided"]);

const WEEKDAYS = ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"];

/** [zh, en] label of an event type; an unknown type is shown as itself. */
export function eventLabel(event) {
  return EVENT_LABELS[event] || [String(event || "未知事件"), ""];
}

const pad = (n) => String(n).padStart(2, "0");

/** "21:05:07" for a Date. */
export function clockText(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** "2026年11月22日 星期日" for a Date. */
export function dateText(date) {
  return `${date.getFullYear()}年${date.getMonth() + 1}月${date.getDate()}日 ${WEEKDAYS[date.getDay()]}`;
}

/** A unix time as "21:05:07" when it is on the same day as ``now`` (unix), else "11-21 21:05". */
export function timeText(unix, now) {
  if (!Number.isFinite(unix)) return "--:--";
  const d = new Date(unix * 1000);
  const n = new Date(now * 1000);
  if (d.toDateString() === n.toDateString()) return clockText(d);
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Local midnight (unix seconds) of the day containing ``now``. */
export function startOfDay(now) {
  const d = new Date(now * 1000);
  d.setHours(0, 0, 0, 0);
  return d.getTime() / 1000;
}

/** A duration in Chinese: "45秒", "2分05秒", "3小时12分", "2天3小时". */
export function durationText(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s}秒`;
  if (s < 3600) return `${Math.floor(s / 60)}分${pad(s % 60)}秒`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}小时${pad(Math.floor((s % 3600) / 60))}分`;
  return `${Math.floor(s / 86400)}天${Math.floor((s % 86400) / 3600)}小时`;
}

/** Time left to a deadline: {zh, en, overdue}. ``overdueFlag`` (from the server) wins when true. */
export function remainingText(deadline, now, overdueFlag = false) {
  if (!Number.isFinite(deadline)) return { zh: "无时限", en: "no limit", overdue: Boolean(overdueFlag) };
  const left = deadline - now;
  if (overdueFlag || left < 0) {
    return { zh: `超期 ${durationText(-left)}`, en: "overdue", overdue: true };
  }
  return { zh: `剩余 ${durationText(left)}`, en: "left", overdue: false };
}

/** Compare two Redis stream ids ("1700000000000-3"): negative, 0 or positive. */
export function compareStreamIds(a, b) {
  const [am, as] = String(a).split("-").map(Number);
  const [bm, bs] = String(b).split("-").map(Number);
  return am !== bm ? am - bm : (as || 0) - (bs || 0);
}
