// Labels and time formatting for the wall: pure functions (time is passed in), no DOM.

/** Detector event type → [Chinese, English] label. */
export const EVENT_LABELS = {
  vending: ["无照经营游商", "Street vending"],
  road_occupation: ["乱堆物堆料", "Goods on road"],
  bin_overflow: ["垃圾箱满溢", "Bin overflow"],
  shop_front: ["店外经营", "Outside shop front"],
  bike_parking: ["非机动车乱停放", "Bikes parked"],
  exposed_rubbish: ["暴露垃圾", "Exposed rubbish"],
  // The case room's deadline alarms (cases/deadlines.py, stream case_deadlines).
  case_overdue: ["案件超期", "Case overdue"],
  case_near_deadline: ["即将超期", "Near deadline"],
};

/** Case states after which nothing is left to do (not counted as open). */
export const FINISHED_STATES = new Set(["closed", "rejected", "voided"]);

const WEEKDAYS = ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"];

/** [zh, en] label of an event type; an unknown type is shown as itself. */
export function eventLabel(event) {
  return EVENT_LABELS[event] || [String(event || "未知事件"), ""];
}

const pad = (n) => String(n).padStart(2, "0");

// The wall shows the site's wall-clock time (settings.timezone, from /api/me), not the browser machine's:
// a hall display PC set to UTC must still show Beijing time on the clock, alarms and deadlines.
let zoneFormat = null;

/** Use ``tz`` (IANA name, e.g. "Asia/Shanghai") for every time shown; an unknown name keeps the browser's. */
export function setTimeZone(tz) {
  try {
    zoneFormat = tz ? new Intl.DateTimeFormat("en-US", {
      timeZone: tz, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
      hour: "numeric", minute: "numeric", second: "numeric", weekday: "short",
    }) : null;
  } catch (err) {
    console.warn("unknown timezone", tz, err);
    zoneFormat = null;
  }
}

/** The IANA name of the zone times are shown in (the site's once set, else the browser's). */
export function timeZoneName() {
  return (zoneFormat || new Intl.DateTimeFormat()).resolvedOptions().timeZone;
}

/** Unix seconds of a wall-clock time in the site's timezone (the inverse of ``zoned``); NaN for a date that
 *  does not exist (2026-02-30) or a field out of range. */
export function siteTime(year, month, day, hour, minute, second = 0) {
  const asUtc = Date.UTC(year, month - 1, day, hour, minute, second) / 1000;
  const d = new Date(asUtc * 1000);
  if (!Number.isFinite(asUtc) || d.getUTCFullYear() !== year || d.getUTCMonth() !== month - 1
      || d.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) return NaN;
  let t = asUtc;
  for (let i = 0; i < 2; i += 1) {  // the zone's offset at t; the second pass settles a time near a DST change
    const z = zoned(new Date(t * 1000));
    t = asUtc - (Date.UTC(z.year, z.month - 1, z.day, z.hour, z.minute, z.second) / 1000 - t);
  }
  return t;
}

/** "2026-03-11 08:00:05" (24-hour, site timezone) → unix seconds; seconds may be left out; NaN if malformed. */
export function parseSiteDateTime(text) {
  const m = /^\s*(\d{4})-(\d{1,2})-(\d{1,2})[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$/.exec(String(text));
  return m ? siteTime(+m[1], +m[2], +m[3], +m[4], +m[5], +(m[6] || 0)) : NaN;
}

const WEEKDAY_INDEX = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** Calendar fields of a Date in the site's timezone. */
export function zoned(date) {
  if (!zoneFormat) {
    return { year: date.getFullYear(), month: date.getMonth() + 1, day: date.getDate(), hour: date.getHours(),
             minute: date.getMinutes(), second: date.getSeconds(), weekday: date.getDay() };
  }
  const f = {};
  for (const { type, value } of zoneFormat.formatToParts(date)) f[type] = value;
  return { year: +f.year, month: +f.month, day: +f.day, hour: +f.hour % 24, minute: +f.minute, second: +f.second,
           weekday: WEEKDAY_INDEX[f.weekday] ?? 0 };
}

/** "21:05:07" for a Date. */
export function clockText(date) {
  const z = zoned(date);
  return `${pad(z.hour)}:${pad(z.minute)}:${pad(z.second)}`;
}

/** "2026年11月22日 星期日" for a Date. */
export function dateText(date) {
  const z = zoned(date);
  return `${z.year}年${z.month}月${z.day}日 ${WEEKDAYS[z.weekday]}`;
}

/** A unix time as "21:05:07" when it is on the same day as ``now`` (unix), else "11-21 21:05". */
export function timeText(unix, now) {
  if (!Number.isFinite(unix)) return "--:--";
  const d = zoned(new Date(unix * 1000));
  const n = zoned(new Date(now * 1000));
  if (d.year === n.year && d.month === n.month && d.day === n.day) return clockText(new Date(unix * 1000));
  return `${pad(d.month)}-${pad(d.day)} ${pad(d.hour)}:${pad(d.minute)}`;
}

/** A unix time as the site writes dates: "2026-03-11 08:00:05" (site timezone; never the browser's locale). */
export function dateTimeText(unix) {
  if (!Number.isFinite(unix)) return "—";
  const d = zoned(new Date(unix * 1000));
  return `${d.year}-${pad(d.month)}-${pad(d.day)} ${pad(d.hour)}:${pad(d.minute)}:${pad(d.second)}`;
}

/** "2026-03-11" of a unix time in the site timezone. */
export function isoDate(unix) {
  return dateTimeText(unix).slice(0, 10);
}

/** Midnight (unix seconds) of the site-local day containing ``now``. */
export function startOfDay(now) {
  const z = zoned(new Date(now * 1000));
  return Math.floor(now) - (z.hour * 3600 + z.minute * 60 + z.second);
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
