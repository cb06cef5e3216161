// The case list of the wall and the situation page: open cases first (overdue, then nearest deadline), then recently
// finished ones dimmed. Each row: case number, code + category, state label (督办 ×n when a leader supervised it),
// responsible unit, deadline with time left — counted in working time on the work calendar (剩余 x 工作时, standing
// still off hours), as the case office's pages count it (case-common.js); natural time for natural-hour limits.

import { countdown, loadWorkCalendar } from "./case-common.js";
import { bilingual, el, fitRows } from "./dom.js";
import { FINISHED_STATES, timeText } from "./format.js";

const MAX_ROWS = 40;

/** Whether a case is overdue at ``now`` (the server's flag, or an open case past its deadline). */
export function isOverdue(c, now) {
  if (FINISHED_STATES.has(c.state)) return false;  // judged on time when it was finished, not now
  return Boolean(c.overdue) || (Number.isFinite(c.deadline_at) && c.deadline_at < now);
}

export class CasePanel {
  /** ``onOpen(case)``: a row was clicked (or Enter on it) — the page opens the case. */
  constructor(list, { onOpen = null } = {}) {
    this.list = list;
    this.onOpen = onOpen;
    this.cases = [];
    this.total = 0;
    this.problem = "";
  }

  /** Replace the list with ``cases`` (from GET /api/cases) and render at ``now``; again once the work calendar's
   *  periods these deadlines need are loaded (until then, natural time). */
  set(cases, total, now) {
    this.problem = "";
    this.cases = Array.isArray(cases) ? cases : [];
    this.total = Number.isFinite(total) ? total : this.cases.length;
    this.render(now);
    const shown = this.cases;
    loadWorkCalendar(shown, now).then(() => { if (this.cases === shown) this.render(Date.now() / 1000); });
  }

  /** {open, overdue} among the loaded cases. */
  counts(now) {
    let open = 0;
    let overdue = 0;
    for (const c of this.cases) {
      if (FINISHED_STATES.has(c.state)) continue;
      open += 1;
      if (isOverdue(c, now)) overdue += 1;
    }
    return { open, overdue };
  }

  /** The case list could not be read (``text``: why, in Chinese): said at the top, the last rows kept greyed. */
  unavailable(text) {
    this.problem = text || "案件服务暂时不可用";
    this.render(Date.now() / 1000);
  }

  render(now) {
    const open = this.cases.filter((c) => !FINISHED_STATES.has(c.state));
    const done = this.cases.filter((c) => FINISHED_STATES.has(c.state));
    open.sort((a, b) => (isOverdue(b, now) - isOverdue(a, now)) || ((a.deadline_at ?? Infinity) - (b.deadline_at ?? Infinity)));
    const rows = [...open, ...done].slice(0, MAX_ROWS).map((c) => this._row(c, now));
    if (this.problem) {
      for (const row of rows) row.classList.add("stale");
      rows.unshift(el("div", "panel-note case-problem", `案件列表暂时无法读取：${this.problem}，正在重试`,
        this.cases.length ? "（以下为最后一次读取的数据）" : ""));
    } else if (!rows.length) rows.push(el("div", "empty", bilingual("暂无案件", "No cases")));
    this.list.replaceChildren(...rows);
    fitRows(this.list);
  }

  _row(c, now) {
    const finished = FINISHED_STATES.has(c.state);
    const overdue = !finished && isOverdue(c, now);
    const row = el("article", "case-row");
    row.dataset.caseId = String(c.id || "");
    row.classList.toggle("overdue", overdue);
    row.classList.toggle("finished", finished);
    row.classList.toggle("supervised", Boolean(c.supervised));
    // Two lines, so as many cases as possible fit the panel: what and its state; number, unit and time left.
    row.append(
      el("div", "line1",
        el("span", "code", c.code || ""),
        el("span", "category", c.category_name || c.title || ""),
        c.supervised ? el("span", "supervised", `督办 ×${c.supervise_count}`) : null,
        el("span", `state state-${String(c.state || "").replace(/[^a-z_]/g, "")}`, c.state_label || c.state || "")),
      el("div", "line2",
        el("span", "case-no", c.case_no || c.id || ""),
        el("span", "unit", c.unit_name || "未派遣单位"),
        finished
          ? el("span", "deadline", `截止 ${timeText(c.deadline_at, now)}`)
          : el("span", "deadline", el("span", "left", countdown(c, now)))),
    );
    row.title = `${c.case_no || ""} 截止 ${timeText(c.deadline_at, now)} · 点击打开案件`;
    if (this.onOpen) {
      row.tabIndex = 0;
      row.classList.add("openable");
      row.addEventListener("click", () => this.onOpen(c));
      row.addEventListener("keydown", (ev) => { if (ev.key === "Enter") this.onOpen(c); });
    }
    return row;
  }
}
