// Deadline countdowns in working time (剩余 x 工作时), pure: every function takes the time as an argument. The
// periods come from GET /api/work-calendar — the working periods of the work calendar the server computes the
// deadlines with ([start, end] Unix seconds, in order) — so a countdown stops off hours, at night, at weekends and
// on holidays, and runs again when work starts. Cases whose limit is in natural hours (自然时) count natural time.

/** Working seconds from ``a`` to ``b`` over ``periods`` (negative when ``b`` is before ``a``). */
export function workSeconds(periods, a, b) {
  if (b < a) return -workSeconds(periods, b, a);
  let total = 0;
  for (const [start, end] of periods) {
    if (end <= a) continue;
    if (start >= b) break;
    total += Math.min(end, b) - Math.max(start, a);
  }
  return total;
}

/** Whether ``t`` falls inside a working period. */
export function inWorkTime(periods, t) {
  return periods.some(([start, end]) => start <= t && t < end);
}

/** Whether ``periods`` (fetched for ``from``..``to``) answer for every instant from ``a`` to ``b``. */
export function covers(span, a, b) {
  return Boolean(span) && span.from <= Math.min(a, b) && Math.max(a, b) <= span.to;
}

/** Working hours as the pages say them: one decimal below 10 (rounded down: never more time than is left), whole
 *  hours above; under 0.1 h "不足0.1". */
export function hoursText(seconds) {
  const h = Math.abs(seconds) / 3600;
  if (h < 0.1) return "不足0.1";
  if (h < 10) return (Math.floor(h * 10) / 10).toFixed(1);
  return String(Math.floor(h));
}

/** The countdown of case ``c`` at ``now`` on ``span`` ({from, to, periods}, or null when not loaded):
 *  {zh, en, paused, overdue}, or null when it cannot be counted in working time here (a natural-time limit, no
 *  deadline, or the periods do not reach from now to the deadline) — the caller then counts natural time. */
export function workCountdown(c, span, now) {
  const unit = c.time_limit && c.time_limit.unit;
  const deadline = Number(c.deadline_at);
  if (unit === "hours" || !Number.isFinite(deadline) || !covers(span, now, deadline)) return null;
  const left = workSeconds(span.periods, now, deadline);
  const paused = !inWorkTime(span.periods, now);
  const overdue = now > deadline;
  const pause = paused ? "（非工作时间，暂停计时）" : "";
  if (overdue) {
    return { zh: `超期 ${hoursText(-left)} 工作时${pause}`, en: `${hoursText(-left)} working hours overdue`,
      paused, overdue };
  }
  return { zh: `剩余 ${hoursText(left)} 工作时${pause}`, en: `${hoursText(left)} working hours left`, paused,
    overdue };
}
