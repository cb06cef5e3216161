"""The access policy: which role may call which route and send which WebSocket message — one table, one check.

Every route the wall server registers is a row of :data:`ROUTES`, keyed by ``(method, canonical path)`` (the
pattern as written in ``add_routes``, e.g. ``/api/screens/{id}/layout``). A row is a :class:`Rule`:

- ``PUBLIC``: no session needed (login, health, the OpenAPI document, pages whose script sends the browser to
  the login page, clip files the speakers fetch, Prometheus' ``/metrics``);
- ``SIGNED_IN``: any logged-in user of the centre; ``UNITS_TOO``: unit users (role ``unit``) as well — they may use
  only the rows that say so (their own cases: ``wall.case_office`` narrows what they see to their units);
- a set of roles (``admin`` always passes: the administrator may do everything);
- a rule decided per request (:class:`PerAction` for case actions, whose action is in the body and whose roles
  come from ``cases.workflow``; :class:`PerPlan` for emergency plans, whose roles are in the configuration).

Client → server messages on ``/api/ws`` have the same kind of table, :data:`WS_MESSAGES`. The middleware
(:func:`make_access_middleware`) runs after authentication, refuses with 403 ``{"error": "role R may not M P;
needs ..."}``, and checks the CSRF token of state-changing requests (``X-CSRF-Token``, bound to the session).
A route missing from the table is refused (500, logged): nothing new is reachable until someone decides who may
use it, and ``tests/test_wall_access.py`` fails first.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cases.desk import SUPERVISE_ROLES
from cases.workflow import TRANSITIONS
from config import Role
from wall import state
from wall.auth import Session, current_session
from wall.errors import BadRequest, Handler, json_error, parsed_json

log = logging.getLogger("citywall.wall.access")

W, M, L, A, U = Role.WATCH_OFFICER, Role.MONITOR, Role.LEADER, Role.ADMIN, Role.UNIT
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CLIENT_GONE = 499
"""The outcome recorded when the client went away before the answer (nginx's convention)."""
CSRF_EXEMPT = frozenset({("POST", "/api/login")})
"""State-changing requests that need no CSRF token (there is no session yet to bind it to)."""


@dataclass(frozen=True)
class Rule:
    """Who may use a route: ``public`` (no session), ``roles`` None (any signed-in user) or those roles (+admin)."""

    roles: frozenset[Role] | None = None
    public: bool = False
    label: str = ""
    """What the route does, for the 403 message (e.g. ``改变布局 change the layout``)."""
    audit: str = ""
    """The control action's name in the audit log (``screen.layout``); state-changing routes only."""
    target_field: str = ""
    """WebSocket messages: the field naming the action's target (for the audit entry of a refusal)."""
    read_audit: str = ""
    """Reads worth an audit row (evidence, live video, exports): the action name recorded for a GET."""
    read_audit_when: Callable[[web.Request], bool] | None = None
    """Only the reads this says (e.g. statistics only when exported as CSV/XLSX)."""
    units_too: bool = False
    """Open to unit users (role ``unit``) as well: they may use only the routes that say so (their cases)."""

    def audits_read(self, request: web.Request) -> bool:
        return bool(self.read_audit) and (self.read_audit_when is None or self.read_audit_when(request))

    def allowed(self, session: Session | None) -> bool:
        if self.public:
            return True
        if session is None:
            return False
        if self.roles is None:
            return session.role is not U or self.units_too
        return session.role is A or session.role in self.roles

    def needs(self) -> str:
        if self.public:
            return "nothing"
        if self.roles is None:
            return "any signed-in user" if self.units_too else "any signed-in user of the centre (not unit)"
        return _needs(self.roles)

    async def decide(self, request: web.Request, session: Session | None) -> tuple[bool, str]:
        """(allowed, what is needed) for this request; per-request rules override this."""
        return self.allowed(session), self.needs()


def _needs(allowed: frozenset[Role] | set[Role]) -> str:
    """``admin, leader`` — the roles, admin included, sorted."""
    return ", ".join(sorted({r.value for r in allowed} | {A.value}))


PUBLIC = Rule(public=True)
SIGNED_IN = Rule()
UNITS_TOO = Rule(units_too=True)
"""Any signed-in user, unit users included (who see only their units' cases: ``wall.case_office``)."""


def roles(*allowed: Role, label: str = "", audit: str = "", target_field: str = "") -> Rule:
    """Only ``allowed`` (and admin)."""
    return Rule(roles=frozenset(allowed), label=label, audit=audit, target_field=target_field)


def workflow_roles(action: str | None = None) -> frozenset[Role]:
    """The people roles that may take ``action`` from some state (every case action's roles when None)."""
    names = {r for t in TRANSITIONS if action is None or t.action.value == action for r in t.roles}
    return frozenset(r for r in Role if r.value in names)


@dataclass(frozen=True)
class PerAction(Rule):
    """Case actions: the body's ``action`` decides; its roles are those of ``cases.workflow`` for that action.

    The workflow still checks state *and* role when the action is taken (a 403 there names the state's options);
    this row only refuses early, before the store is touched. An unknown or missing action is held to every case
    action's roles, and the handler answers 400 naming the field."""

    def needs(self) -> str:
        return "the roles cases.workflow gives the action (admin always)"

    async def decide(self, request: web.Request, session: Session | None) -> tuple[bool, str]:
        if session is None:
            return False, "any signed-in user"
        try:
            body = await parsed_json(request)
        except ValueError:
            body = None
        action = body.get("action") if isinstance(body, dict) else None
        allowed = workflow_roles(action) if isinstance(action, str) else frozenset()
        if not allowed:
            allowed = workflow_roles()
        what = f"case action {action}" if isinstance(action, str) else "case actions"
        return session.role is A or session.role in allowed, f"{_needs(allowed)} for {what}"


@dataclass(frozen=True)
class PerPlan(Rule):
    """Emergency plans: each plan's ``roles`` in ``video_wall.plans`` (default leader); an unknown plan passes to
    the handler (404)."""

    def needs(self) -> str:
        return "the plan's roles (video_wall.plans[].roles, default leader; admin always)"

    async def decide(self, request: web.Request, session: Session | None) -> tuple[bool, str]:
        if session is None:
            return False, "any signed-in user"
        plan_id = request.match_info.get("id", "")
        settings = request.app[state.SETTINGS]
        plan = next((p for p in settings.video_wall.plans if p.id == plan_id), None)
        if plan is None:
            return True, ""
        allowed = {Role(r) for r in plan.roles}
        return session.role is A or session.role in allowed, f"{_needs(allowed)} for plan {plan_id}"


# ------------------------------------------------------------------------------------------------------ the table

WALL_ROLES = (W, L)
"""The wall: layouts, tiles, tours and alarm acknowledgements (值班员; the leader on duty too)."""
REVIEW_ROLES = (M, L)
"""The review desk (监控员): confirm or reject alarms, which files cases; the leader too, who works (and 督办s)
from the review console."""
EXPORT_ROLES = (M, L)
"""Recording export (监控员, 指挥长; admin always): evidence leaves the system."""
BROADCAST_ROLES = (L,)
"""Manual voice broadcasts and the recordings they play (指挥长)."""

ROUTES: dict[tuple[str, str], Rule] = {
    # session
    ("GET", "/api/health"): PUBLIC,
    ("POST", "/api/login"): Rule(public=True, label="登录 login", audit="login"),
    ("POST", "/api/logout"): Rule(label="退出 logout", audit="logout", units_too=True),
    ("GET", "/api/me"): UNITS_TOO,
    ("GET", "/api/openapi.json"): PUBLIC,
    # reads every role needs on the wall, the console and the situation panel
    ("GET", "/api/cameras"): SIGNED_IN,
    ("GET", "/api/alarms"): SIGNED_IN,
    ("GET", "/api/case-deadlines"): SIGNED_IN,
    ("GET", "/api/system-alarms"): SIGNED_IN,
    ("GET", "/api/ws"): SIGNED_IN,
    ("GET", "/api/live/{camera_id}"): Rule(read_audit="live.view"),
    ("GET", "/evidence/{path}"): Rule(read_audit="evidence.read", units_too=True),
    ("GET", "/api/screens"): SIGNED_IN,
    ("GET", "/api/screens/{id}"): SIGNED_IN,
    ("GET", "/api/map"): SIGNED_IN,
    # the basemap and its tiles (read-only) for unit users too: their case's place on the case and phone pages;
    # maps.api lists no cameras to them
    ("GET", "/api/map/basemap"): UNITS_TOO,
    ("GET", "/api/map/convert"): SIGNED_IN,
    ("GET", "/api/map/tiles/{z}/{x}/{y}.png"): UNITS_TOO,
    ("GET", "/api/cases"): UNITS_TOO,
    ("GET", "/api/cases/{id}"): UNITS_TOO,
    ("GET", "/api/case-filters"): UNITS_TOO,
    ("GET", "/api/work-calendar"): UNITS_TOO,
    ("GET", "/api/stats"): Rule(read_audit="stats.export",
                                read_audit_when=lambda r: r.query.get("format") in ("csv", "xlsx")),
    ("GET", "/api/speakers"): SIGNED_IN,
    ("GET", "/api/broadcasts"): SIGNED_IN,
    ("GET", "/api/guidance/stats"): SIGNED_IN,
    # recordings (录像回放): playback for everyone signed in, export for the desks that hand evidence on
    ("GET", "/api/recordings/{camera_id}"): SIGNED_IN,
    ("GET", "/api/recordings/{camera_id}/play"): Rule(read_audit="recording.play"),
    ("GET", "/api/recordings/{camera_id}/export"): Rule(roles=frozenset(EXPORT_ROLES),
                                                        label="导出录像 export a recording",
                                                        read_audit="recording.export"),
    ("GET", "/api/cases/{id}/recordings"): Rule(roles=frozenset(EXPORT_ROLES),
                                                label="导出案件录像 export a case's recordings",
                                                read_audit="recording.export_case"),
    # the wall (值班员)
    ("PUT", "/api/screens/{id}/layout"): roles(*WALL_ROLES, label="改变布局 change the layout", audit="screen.layout"),
    ("PUT", "/api/screens/{id}/tiles/{tile}"): roles(*WALL_ROLES, label="切换画面 assign a tile", audit="screen.tile"),
    ("POST", "/api/screens/{id}/tour/start"): roles(*WALL_ROLES, label="开始轮巡 start a tour", audit="tour.start"),
    ("POST", "/api/screens/{id}/tour/pause"): roles(*WALL_ROLES, label="暂停轮巡 pause a tour", audit="tour.pause"),
    ("POST", "/api/screens/{id}/tour/resume"): roles(*WALL_ROLES, label="继续轮巡 resume a tour", audit="tour.resume"),
    ("POST", "/api/screens/{id}/tour/stop"): roles(*WALL_ROLES, label="停止轮巡 stop a tour", audit="tour.stop"),
    ("POST", "/api/alarms/{alarm_id}/ack"): roles(*WALL_ROLES, label="确认报警 acknowledge an alarm",
                                                 audit="alarm.ack"),
    # the review desk and cases (监控员; case actions per cases.workflow)
    ("GET", "/api/review"): roles(*REVIEW_ROLES, label="查看复核队列 read the review queue"),
    ("POST", "/api/review/claim"): roles(*REVIEW_ROLES, label="领取复核 claim a review item", audit="review.claim"),
    ("POST", "/api/review/{id}/decision"): roles(*REVIEW_ROLES, label="复核判定 review decision",
                                                audit="review.decision"),
    ("GET", "/api/review/{id}/labels"): roles(*REVIEW_ROLES, label="查看标注 read a review label"),
    ("PUT", "/api/review/{id}/labels"): roles(*REVIEW_ROLES, label="标注目标 label a reviewed alarm",
                                              audit="review.label"),
    ("POST", "/api/cases/{id}/actions"): PerAction(label="案件操作 case action", audit="case.action"),
    ("POST", "/api/cases/{id}/photos"): roles(W, U, label="上传处置照片 upload a field photo", audit="case.photo"),
    ("POST", "/api/cases/{id}/snapshot"): roles(W, M, L, label="现场抓拍 take the camera's picture now",
                                                audit="case.snapshot"),
    ("POST", "/api/cases/{id}/supervise"): roles(*(Role(r) for r in SUPERVISE_ROLES), label="督办 supervise a case",
                                                 audit="case.supervise"),
    # the leader (指挥长)
    ("POST", "/api/plans/{id}/invoke"): PerPlan(label="启动预案 invoke an emergency plan", audit="plan.invoke"),
    ("POST", "/api/plans/{id}/end"): PerPlan(label="结束预案 end an emergency plan", audit="plan.end"),
    ("POST", "/api/broadcasts"): roles(*BROADCAST_ROLES, label="人工广播 manual broadcast", audit="broadcast.manual"),
    ("POST", "/api/clips"): roles(*BROADCAST_ROLES, label="上传录音 upload a recording", audit="clip.upload"),
    # the administrator (管理员): configuration and the audit log
    ("GET", "/api/webhooks"): roles(label="查看推送配置 read the webhook configuration"),
    ("GET", "/api/audit"): roles(label="查询审计日志 search the audit log"),
    ("GET", "/api/audit/verify"): roles(label="校验审计日志 verify the audit log's hash chain"),
    ("GET", "/api/admin/cameras"): roles(label="查看摄像机配置 read the camera configuration"),
    ("POST", "/api/admin/cameras"): roles(label="添加摄像机 add a camera", audit="camera.add"),
    ("PUT", "/api/admin/cameras/{id}"): roles(label="修改摄像机 edit a camera", audit="camera.edit"),
    ("PATCH", "/api/admin/cameras/{id}"): roles(label="修改摄像机 edit a camera", audit="camera.edit"),
    ("DELETE", "/api/admin/cameras/{id}"): roles(label="删除摄像机 delete a camera", audit="camera.delete"),
    ("POST", "/api/admin/cameras/test"): roles(label="测试连接 test a camera connection", audit="camera.test"),
    ("GET", "/api/admin/cameras/{id}/candidates"): roles(label="预览检测候选 preview detection candidates"),
    ("GET", "/api/admin/users"): roles(label="查看用户 read the users"),
    ("POST", "/api/admin/users"): roles(label="添加用户 add a user", audit="user.add"),
    ("PUT", "/api/admin/users/{username}"): roles(label="修改用户 edit a user", audit="user.edit"),
    ("POST", "/api/me/password"): Rule(label="修改密码 change own password", audit="user.password", units_too=True),
    ("GET", "/api/admin/config"): Rule(roles=frozenset(), label="导出配置 export the configuration",
                                       read_audit="config.export"),
    ("POST", "/api/admin/config/import"): roles(label="导入配置 import a configuration", audit="config.import"),
    ("GET", "/api/admin/models"): roles(label="查看站点模型 read the site models"),
    ("POST", "/api/admin/models/{version}/promote"): roles(label="启用模型 promote a site model",
                                                          audit="model.promote"),
    ("POST", "/api/admin/models/rollback"): roles(label="回退模型 roll the site model back", audit="model.rollback"),
    ("POST", "/api/admin/models/{version}/shadow"): roles(label="影子运行 start a shadow run", audit="model.shadow"),
    # monitoring and speakers (no browser session)
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/clips/{name}"): PUBLIC,
    # pages: public at the HTTP level; their data comes from the API above (pages that need a session redirect)
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("GET", "/wall"): PUBLIC,
    ("GET", "/wall/{screen}"): PUBLIC,
    ("GET", "/console"): PUBLIC,
    ("GET", "/playback"): PUBLIC,
    ("GET", "/situation"): PUBLIC,
    ("GET", "/review"): PUBLIC,
    ("GET", "/stats"): PUBLIC,
    ("GET", "/broadcast"): PUBLIC,
    ("GET", "/report/daily"): PUBLIC,
    ("GET", "/audit"): PUBLIC,
    ("GET", "/admin/cameras"): PUBLIC,
    ("GET", "/admin/users"): PUBLIC,
    ("GET", "/admin/models"): PUBLIC,
    ("GET", "/cases"): PUBLIC,
    ("GET", "/cases/{id}"): PUBLIC,
    ("GET", "/cases/{id}/print"): PUBLIC,
    ("GET", "/field"): PUBLIC,
    ("GET", "/static"): PUBLIC,
}

WS_MESSAGES: dict[str, Rule] = {
    "ping": SIGNED_IN,
    "resume": SIGNED_IN,
    "ack": roles(*WALL_ROLES, label="确认报警 acknowledge an alarm", audit="alarm.ack", target_field="alarm_id"),
}
"""Client → server message types on ``/api/ws`` (``/api/live/{camera_id}`` takes none: it only sends)."""


def route_key(request: web.Request) -> tuple[str, str] | None:
    """``(method, canonical pattern)`` of the matched route; None when nothing matched (404/405)."""
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return method, info.route.resource.canonical


def registered_routes(app: web.Application) -> list[tuple[str, str]]:
    """Every ``(method, canonical pattern)`` the app's router serves (HEAD folded into GET)."""
    out = set()
    for route in app.router.routes():
        if route.resource is None or route.method in ("HEAD", "*"):
            continue
        out.add((route.method, route.resource.canonical))
    return sorted(out)


def ws_check(session: Session, kind: str, *, handled: bool) -> str | None:
    """None when ``session`` may send a ``kind`` message on ``/api/ws``; else the error naming role and need.

    ``handled``: the hub has a handler for ``kind`` — one without a rule is refused, like a route without one."""
    rule = WS_MESSAGES.get(kind)
    if rule is None:
        return f"message type {kind} has no access rule (server misconfiguration)" if handled else None
    if rule.allowed(session):
        return None
    return f"role {session.role.value} may not send {kind}; needs {rule.needs()}"


def check_csrf(request: web.Request, session: Session | None) -> str | None:
    """None when the request carries the session's CSRF token (or needs none); else what is wrong."""
    if request.method in SAFE_METHODS or session is None:
        return None
    if route_key(request) in CSRF_EXEMPT:
        return None
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        return f"CSRF token missing: send the {CSRF_HEADER} header (csrf_token from /api/login or /api/me)"
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        return f"CSRF token wrong: the {CSRF_HEADER} header does not match this session (reload the page)"
    return None


NOTES = web.RequestKey("audit_notes", dict)


def note(request: web.Request, **details: Any) -> None:
    """Add details to this request's audit entry (``target=``, ``actor=`` and ``role=`` replace the defaults)."""
    notes = request.get(NOTES)
    if notes is None:
        notes = request[NOTES] = {}
    notes.update(details)


Recorder = Callable[[web.Request, Session | None, Rule, int, str], Awaitable[None]]
RefusalHook = Callable[[web.Request, Session, str], Awaitable[None]]
ON_REFUSED: web.AppKey[dict[tuple[str, str], RefusalHook]] = web.AppKey("access_on_refused")
"""Per route, what else to do when the policy refuses a request (the broadcast log lists refused broadcasts)."""


def make_access_middleware(record: Recorder | None = None) -> Any:
    """The policy, enforced after authentication: 403 for a role (or CSRF token) that does not fit the route.

    ``record`` is called for every state-changing request (allowed or refused) with the outcome status — the
    audit log's one entry point for HTTP control actions."""

    @web.middleware
    async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = route_key(request)
        if key is None:
            return await handler(request)  # 404/405: the error middleware answers
        rule = ROUTES.get(key)
        if rule is None:
            log.error("route %s %s is not in wall.access.ROUTES; refused until someone decides who may use it", *key)
            return json_error(500, f"route {key[0]} {key[1]} has no access rule (server misconfiguration)")
        session = current_session(request)
        state_changing = request.method not in SAFE_METHODS
        audited = state_changing or rule.audits_read(request)
        if not rule.public and session is None:
            return json_error(401, "login required")
        problem = check_csrf(request, session)
        status = 0
        if problem is None:
            allowed, needs = await rule.decide(request, session)
            if not allowed:
                assert session is not None
                what = rule.label or f"{key[0]} {key[1]}"
                problem = f"role {session.role.value} may not {what}; needs {needs}"
        if problem is not None:
            hook = request.app.get(ON_REFUSED, {}).get(key)
            if hook is not None and session is not None:
                await hook(request, session, problem)
            if audited and record is not None:
                await record(request, session, rule, 403, problem)
            return json_error(403, problem)
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except BadRequest:
            status = 400
            raise
        except asyncio.CancelledError:
            status = CLIENT_GONE
            raise
        except BaseException:
            status = 500
            raise
        finally:
            if audited and record is not None and status:
                await record(request, current_session(request), rule, status, "")

    return access_middleware
