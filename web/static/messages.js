// What a person in the hall reads when something goes wrong: every API error turned into Chinese in this one
// place (the server's own text is English, for logs and API clients; it never reaches a page). Pure functions.
// A known message pattern gives a precise sentence; otherwise the status and the field the server named do.

/** Role code → Chinese name (headers, audit, refusals). */
export const ROLE_LABELS = { watch_officer: "值班员", monitor: "监控员", leader: "指挥长", admin: "管理员", unit: "责任单位" };

/** The Chinese name of a role; an unknown code reads as 未知角色 rather than the code. */
export function roleLabel(role) {
  return ROLE_LABELS[role] || "未知角色";
}

/** Request fields the API names in its 400s → what the person filled in. */
const FIELD_LABELS = {
  body: "请求内容", username: "用户名", password: "密码", limit: "条数", offset: "页码", since: "开始时间",
  until: "结束时间", before: "更早于", after: "晚于", q: "搜索词", note: "备注", reason: "理由", text: "广播内容",
  version: "版本", action: "操作", time_limit: "期限", extension: "延期期限", tile: "画面", camera: "摄像头",
  layout: "布局", tour: "轮巡", dwell_s: "停留秒数", speaker: "喇叭", speakers: "喇叭", group: "喇叭分组",
  clip: "录音", decision: "判定", current: "当前条目", direction: "方向", state: "状态", category: "类别",
  unit_id: "责任单位", by: "维度", period: "粒度", date: "日期", actor: "用户", outcome: "结果",
  Upgrade: "连接方式", file: "文件", plan: "预案", alarm_id: "告警", from: "开始日期", to: "结束日期",
  query: "查询条件", id: "编号", clip_id: "录音", target: "广播对象",
  deadline: "时限", supervised: "督办", sort: "排序", cursor: "翻页位置", grid: "网格", street: "街道", community: "社区",
  camera_id: "摄像头", photo: "照片", urgency: "紧急程度",
};

// [pattern on the server's text, Chinese (a function of the match or a string)], first match wins.
const PATTERNS = [
  [/^wrong username or password/i, "用户名或密码错误"],
  [/^too many failed logins.*?(\d+) s/i, (m) => `登录失败次数过多，请 ${m[1]} 秒后再试`],
  [/^login required/i, "未登录或登录已过期，请重新登录"],
  [/^CSRF token/i, "页面已过期，请刷新后重试"],
  [/^cross-origin/i, "来自其他站点的请求已被拒绝"],
  [/^role (\w+) may not .*?; needs (.+)$/i, (m) => `当前角色（${roleLabel(m[1])}）无权执行此操作，需要：${
    Object.keys(ROLE_LABELS).filter((r) => new RegExp(`\\b${r}\\b`).test(m[2])).map((r) => ROLE_LABELS[r]).join("、")
    || "其他角色"}`],
  [/^cannot \w+ a case in state \w+ \(([^)]+)\)/i, (m) => `案件当前为「${m[1]}」，不能办理此操作`],
  [/was changed by someone else/i, "案件已被他人处理，已显示最新状态，请核对后再操作"],
  [/already (confirmed|rejected|decided)/i, "该告警已由他人判定"],
  [/claimed by|held by|is being reviewed/i, "该告警正由他人复核"],
  [/extension time limit|extend needs/i, "延期需要填写新的期限"],
  [/event bus unavailable|bus unavailable|redis/i, "事件服务暂时不可用，请稍后再试"],
  [/case store|database/i, "案件库暂时不可用，请稍后再试"],
  [/voice guidance is not enabled/i, "本系统未启用语音广播"],
  [/rate limit|too many broadcasts/i, "广播过于频繁，请稍后再试"],
  [/^unknown case/i, "找不到该案件"],
  [/^unknown review item/i, "该告警已不在复核队列中"],
  [/^unknown camera/i, "找不到该摄像头"],
  [/^unknown screen/i, "找不到该屏幕"],
  [/^unknown plan/i, "找不到该预案"],
  [/^unknown (alarm|speaker|group|clip|tour)/i, (m) => `找不到该${{ alarm: "告警", speaker: "喇叭", group: "喇叭分组",
    clip: "录音", tour: "轮巡" }[m[1].toLowerCase()]}`],
  [/no plan is active|no active plan/i, "当前没有正在执行的预案"],
  [/finished case|case is (closed|finished)/i, "案件已办结，不能再操作"],
  [/no tour|not running|already paused|not paused/i, "轮巡当前状态不允许此操作"],
  [/upload is .*max_upload_bytes|over max_upload_bytes/i, "上传的文件过大"],
];

const STATUS_TEXT = {
  400: "输入有误", 401: "未登录或登录已过期，请重新登录", 403: "无权限执行此操作", 404: "找不到要操作的对象",
  405: "不支持的操作", 409: "当前状态不允许此操作", 413: "内容过大", 422: "无法办理此操作", 429: "操作过于频繁，请稍后再试",
  500: "服务器内部错误，已记录", 502: "服务器暂时不可用", 503: "服务暂时不可用，请稍后再试", 504: "服务器响应超时",
};

/** The Chinese sentence for an API failure: ``status`` (0 = no answer at all) and the server's ``error`` text. */
export function errorText(status, error = "") {
  const raw = String(error || "");
  if (!status) return "无法连接服务器，请检查网络";
  for (const [pattern, zh] of PATTERNS) {
    const m = raw.match(pattern);
    if (m) return typeof zh === "function" ? zh(m) : zh;
  }
  if (status === 400) {
    // "field: reason" (wall.errors.BadRequest): name the field in Chinese, leave the English reason out.
    const field = raw.match(/^([A-Za-z_.\[\]0-9]+):/);
    const name = field && FIELD_LABELS[field[1].replace(/\[.*$/, "").split(".").pop()];
    return name ? `输入有误：${name}不符合要求` : "输入有误，请检查后重试";
  }
  return STATUS_TEXT[status] || (status >= 500 ? "服务器出错，请稍后再试" : `操作未能完成（${status}）`);
}
