"""The settings schema: one pydantic model tree, validated once at start-up.

Unknown keys are rejected everywhere (``extra="forbid"``); cross-field checks raise errors that name the key
path. ``load_settings`` turns any failure into :class:`ConfigError`, whose message lists every problem as
``key.path: reason`` so an operator can fix the file without reading code.
"""

from __future__ import annotations

import ipaddress
import os
import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from config.guidance import GuidanceSettings, guidance_problems
from config.learning import LearningSettings
from config.recording import RecordingSettings
from config.video_wall import VideoWall

CONFIG_DIR = Path(__file__).resolve().parent


class ConfigError(ValueError):
    """A config file that cannot be used; ``problems`` holds ``(key_path, reason)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {path}: {reason}" for path, reason in problems)
        super().__init__(f"invalid config {source}:\n{lines}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventType(str, Enum):
    """The street events citywall detects; each maps to a standard case category in ``cases``."""

    VENDING = "vending"  # 无照经营游商 0501 (0504 outside a shop front)
    ROAD_OCCUPATION = "road_occupation"  # 乱堆物堆料 0507
    BIN_OVERFLOW = "bin_overflow"  # 垃圾箱满溢: 部件 0305
    BIKE_PARKING = "bike_parking"  # 非机动车乱停放 0506: a bicycle / e-bike / tricycle left with nobody at it
    SHOP_FRONT = "shop_front"  # 店外经营 0504: a shop's goods set out beyond its front (a shop-front zone)
    EXPOSED_RUBBISH = "exposed_rubbish"  # 暴露垃圾 0102: bags and litter on the ground away from a bin


Point = tuple[float, float]


class Zone(Strict):
    """A polygon in normalised image coordinates (0..1, origin top-left) where some events apply."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    name: str = ""
    events: list[EventType] = Field(min_length=1)
    polygon: list[Point] = Field(min_length=3)
    dwell_s: float = Field(default=60.0, gt=0, le=86400, description="seconds an object must stay before an alarm")
    min_area: float = Field(default=0.002, gt=0, lt=1, description="smallest object, as a fraction of the frame")
    cooldown_s: float = Field(default=30.0, ge=0, description="quiet time after a cleared event before re-alarming")
    schedule: list[str] = Field(
        default_factory=list,
        description='active hours as "HH:MM-HH:MM" (local time); empty means always',
    )

    @field_validator("polygon")
    @classmethod
    def _normalised(cls, poly: list[Point]) -> list[Point]:
        for i, (x, y) in enumerate(poly):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside 0..1; zone polygons use normalised coordinates")
        # Shoelace area: a degenerate polygon (all points on a line) can never contain anything.
        area = 0.0
        for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=False):
            area += x1 * y2 - x2 * y1
        if abs(area) / 2 < 1e-6:
            raise ValueError("polygon has no area (points are collinear or repeated)")
        return poly

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, spans: list[str]) -> list[str]:
        for span in spans:
            m = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)", span)
            if not m:
                raise ValueError(f'"{span}" is not "HH:MM-HH:MM"')
        return spans


class Position(Strict):
    """Where the camera is: WGS-84 longitude/latitude plus the street address shown on cases."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    address: str = ""
    street: str = ""  # 街道
    community: str = ""  # 社区


class CameraLogin(Strict):
    """How a camera that refuses the login is retried: cameras lock an account after a few failed logins, so after
    a refusal the next try waits ``backoff_s`` (1st, 2nd, … refusal; the last repeats) and at most
    ``max_attempts`` logins are made in any ``window_s`` while refused. Defaults: ≤ 3 logins in 10 minutes."""

    backoff_s: list[float] = Field(default_factory=lambda: [60.0, 300.0, 900.0], min_length=1, max_length=10,
                                   description="seconds to wait after the 1st, 2nd, … refused login")
    max_attempts: int = Field(default=3, ge=1, le=20, description="logins at most per window_s while refused")
    window_s: float = Field(default=600.0, gt=0, le=86400)

    @field_validator("backoff_s")
    @classmethod
    def _growing(cls, delays: list[float]) -> list[float]:
        if any(not d > 0 for d in delays):
            raise ValueError(f"every delay must be > 0 seconds, got {delays}")
        if any(b < a for a, b in zip(delays, delays[1:], strict=False)):
            raise ValueError(f"delays must not shrink, got {delays}")
        return delays


Transport = Literal["auto", "tcp", "udp"]


class Ingest(Strict):
    """Defaults for every camera's connection (a camera's own ``transport``/``login`` override them)."""

    transport: Transport = Field(default="auto", description="RTP over tcp (interleaved), udp, or auto: TCP, "
                                                             "then UDP when the camera answers 461")
    login: CameraLogin = CameraLogin()


class Camera(Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    name: str = Field(min_length=1)
    url: str = Field(description="rtsp://[user:pass@]host[:port]/path, or demo://<scene> for the built-in scenes")
    substream_url: str | None = Field(default=None, description="lower-resolution stream for wall tiles")
    analysis_url: str | None = Field(default=None, description="sub-stream (D1/CIF) decoded for detection only; "
                                                               "tiles and clips keep url/substream_url")
    position: Position
    zones: list[Zone] = Field(default_factory=list)
    enabled: bool = True
    transport: Transport | None = Field(default=None, description="auto/tcp/udp; empty: ingest.transport")
    login: CameraLogin | None = Field(default=None, description="refused-login backoff; empty: ingest.login")

    @field_validator("url", "substream_url", "analysis_url")
    @classmethod
    def _scheme(cls, url: str | None) -> str | None:
        if url is None:
            return url
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in {"rtsp", "rtsps", "demo"}:
            raise ValueError(f"unsupported URL scheme {scheme or '(none)'!r}; use rtsp:// or demo://")
        problem = url_problem(url) if scheme != "demo" else None
        if problem:
            raise ValueError(f"URL {redact_url(url)!r} {problem}")
        return url

    @model_validator(mode="after")
    def _unique_zones(self) -> Camera:
        seen: set[str] = set()
        for zone in self.zones:
            if zone.id in seen:
                raise ValueError(f"zone id {zone.id!r} is used twice")
            seen.add(zone.id)
        return self


class Demo(Strict):
    """The built-in demo cameras: synthetic street scenes served by a private RTSP server."""

    enabled: bool = False
    seed: int = 7
    rtsp_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    media_dir: Path = Field(default=Path("var/demo-media"), description="cache of the generated scene videos")


class Brokers(Strict):
    redis_url: str | None = Field(default=None, description="redis://host:port/db; empty starts a private redis-server")
    mqtt_url: str | None = Field(default=None, description="mqtt://host:port; empty starts a private mosquitto")
    topic_prefix: str = Field(default="citywall", pattern=r"^[A-Za-z0-9_/-]+$")
    stream_maxlen: int = Field(default=100_000, ge=1000, description="approximate entries kept per Redis stream")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, url: str | None) -> str | None:
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url or None

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt(cls, url: str | None) -> str | None:
        if url and not url.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must start with mqtt:// or mqtts://")
        return url or None


class Storage(Strict):
    data_dir: Path = Field(default=Path("var"), description="evidence, the SQLite case database, demo media")
    cases_url: str | None = Field(
        default=None, description="sqlite:///path or postgresql://...; empty means data_dir/cases.sqlite"
    )

    def resolved_cases_url(self) -> str:
        return self.cases_url or f"sqlite:///{self.data_dir / 'cases.sqlite'}"

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"

    @property
    def learning_dir(self) -> Path:
        return self.data_dir / "learning"


class Role(str, Enum):
    WATCH_OFFICER = "watch_officer"  # 值班员
    MONITOR = "monitor"  # 监控员
    LEADER = "leader"  # 指挥长
    ADMIN = "admin"  # 管理员
    UNIT = "unit"  # 责任单位 (处置人员): sees and works only its units' cases (the field page)


class User(Strict):
    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    display_name: str = ""
    role: Role
    password_hash: str = Field(description='from "citywall hash-password"; format scrypt$n$r$p$salt$hash')
    enabled: bool = Field(default=True, description="a disabled user cannot log in; their sessions end at once")
    units: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]] = Field(
        default_factory=list, description="role unit only: the responsible units (dispatch file unit ids) whose "
                                          "cases this user sees and works")

    @model_validator(mode="after")
    def _units_for_unit_role(self) -> User:
        if self.role is Role.UNIT and not self.units:
            raise ValueError("units: a unit user needs at least one unit id (from the dispatch file)")
        if self.role is not Role.UNIT and self.units:
            raise ValueError(f"units: only role unit is scoped to units (this user is {self.role.value})")
        return self

    @field_validator("password_hash")
    @classmethod
    def _hash_format(cls, value: str) -> str:
        if not re.fullmatch(r"scrypt\$\d+\$\d+\$\d+\$[0-9a-f]+\$[0-9a-f]+", value):
            raise ValueError('not a password hash; create one with "citywall hash-password"')
        return value


class WallLogin(Strict):
    """Login limits (``wall.limits``): failed attempts are counted before the password is checked."""

    window_s: float = Field(default=60.0, gt=0, le=86400, description="sliding window of the failure limits")
    failures_per_user_address: int = Field(default=10, ge=1)
    failures_per_address: int = Field(default=30, ge=1)
    failures_per_user: int = Field(default=50, ge=1)
    failures_total: int = Field(default=300, ge=1, description="every username and address together")
    successes_per_user: int = Field(default=60, ge=1, description="successful logins per user per success window")
    success_window_s: float = Field(default=600.0, gt=0, le=86400)
    sessions_per_user: int = Field(default=64, ge=1, description="a new login ends that user's oldest session")
    password_workers: int = Field(default=2, ge=1, le=16, description="threads hashing passwords (own pool)")
    password_queue: int = Field(default=32, ge=1, description="password checks waiting; more → 503")


class WallServer(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    session_ttl_s: int = Field(default=12 * 3600, ge=60)
    client_queue: int = Field(default=256, ge=8, description="frames buffered per WebSocket client before dropping")
    login: WallLogin = Field(default_factory=WallLogin)
    header_timeout_s: float = Field(default=10.0, gt=0, le=300, description="a request's head must arrive within")
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600, description="a request's body must arrive within")
    idle_timeout_s: float = Field(default=30.0, gt=0, le=3600, description="keep-alive connection left idle")
    max_connections: int = Field(default=600, ge=8, description="open HTTP connections; more are refused (503)")
    max_connections_per_address: int = Field(default=128, ge=1)
    live_sockets_per_user: int = Field(default=64, ge=1, description="open /api/live + /api/ws sockets per user")
    live_sockets_total: int = Field(default=400, ge=1)
    tls_cert: Path | None = Field(default=None, description="PEM certificate chain: the wall serves HTTPS")
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")
    trusted_proxies: list[str] = Field(default_factory=list, description="reverse proxies (IPs or CIDRs) whose "
                                       "X-Forwarded-For / X-Forwarded-Proto are believed")
    allowed_hosts: list[str] = Field(default_factory=list, description="Host header names besides loopback")
    allow_demo_users_beyond_loopback: bool = Field(default=False, description="only to show the demo on a LAN")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> WallServer:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together (both or neither)")
        return self


class ObjectRole(str, Enum):
    """What a model class means to the rules (a user's model maps its own class names onto these)."""

    PERSON = "person"
    STALL = "stall"
    CART = "cart"
    UMBRELLA = "umbrella"
    GOODS = "goods"
    BIN = "bin"
    BIN_OVERFLOW = "bin_overflow"
    GARBAGE = "garbage"
    VEHICLE = "vehicle"
    BIKE = "bike"
    """A non-motor vehicle: bicycle, shared bike, e-bike, tricycle (a model's bicycle/motorcycle classes)."""


class DetectorModel(Strict):
    """A detection model (detectors.models): ``onnx`` = a user's YOLO-style .onnx file with a class map;
    ``ultralytics`` = a user's .pt through the optional ultralytics extra; ``hog`` = OpenCV's built-in HOG people
    detector (no file)."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    backend: str = Field(default="onnx", pattern=r"^(onnx|ultralytics|hog)$")
    path: Path | None = None
    class_map: dict[str, ObjectRole] = Field(default_factory=dict,
                                             description="model class name (or index) -> role")
    input_size: int | None = Field(default=None, ge=32, le=4096, description="for models with a dynamic input size")
    confidence: float = Field(default=0.25, gt=0, le=1)
    iou: float = Field(default=0.45, gt=0, le=1)
    max_batch: int = Field(default=16, ge=1, le=256)

    @model_validator(mode="after")
    def _needs_file(self) -> DetectorModel:
        if self.backend in ("onnx", "ultralytics") and (self.path is None or not self.class_map):
            raise ValueError(f"an {self.backend} model needs path and a non-empty class_map")
        return self


class Detection(Strict):
    interval_s: float = Field(default=1.0, gt=0, le=60, description="seconds between analysed frames per camera")
    decode: Literal["interval", "keyframes", "all"] = Field(
        default="interval", description="interval: a picture every interval_s whatever the GOP (decodes what it "
                                        "needs between keyframes); keyframes: keyframes only; all: every frame")
    analysis_width: int = Field(default=320, ge=64, le=1920)
    analysis_threads: int = Field(default=2, ge=1, le=64, description="threads analysing a round's cameras in "
                                  "parallel (one camera on one thread at a time); about the number of cores")
    models: list[DetectorModel] = Field(default_factory=list)


class Cluster(Strict):
    """Separate process roles (``citywall worker`` / ``wall`` / ``cases``) sharing one Redis; ``up`` ignores it."""

    token: str = Field(default="", description="shared secret between wall servers and workers (live-video proxy); "
                                                "required by the separate roles")
    lease_ttl_s: float = Field(default=6.0, ge=1.0, le=60.0,
                               description="a dead worker's cameras move to the others after about this long")
    lease_interval_s: float = Field(default=1.0, gt=0, le=10.0, description="seconds between lease rounds")
    live_host: str = Field(default="127.0.0.1", description="address a worker's internal live-video server binds "
                                                            "and advertises to wall servers")

    @model_validator(mode="after")
    def _timing(self) -> Cluster:
        if self.lease_interval_s >= self.lease_ttl_s / 2:
            raise ValueError(f"lease_interval_s ({self.lease_interval_s}) must be under half of lease_ttl_s "
                             f"({self.lease_ttl_s})")
        return self


class AutoFileOverride(Strict):
    """One event type's own thresholds; a key left out falls back to the global one."""

    min_confidence: float | None = Field(default=None, ge=0, le=1)
    min_dwell_s: float | None = Field(default=None, ge=0, le=86400)


class AutoFile(Strict):
    """The AI filing policy (``cases.policy``): a raised alarm at or above both thresholds is filed as a case at once;
    below either it waits in the review queue and becomes a case only when a reviewer confirms it. The defaults (0)
    file every alarm."""

    min_confidence: float = Field(default=0.0, ge=0, le=1, description="detector confidence needed to file at once")
    min_dwell_s: float = Field(default=0.0, ge=0, le=86400, description="seconds of dwell needed to file at once")
    events: dict[EventType, AutoFileOverride] = Field(
        default_factory=dict, description="per detector event (vending, road_occupation, bin_overflow): overrides")

    def thresholds(self, event: str) -> tuple[float, float]:
        """``(min_confidence, min_dwell_s)`` for ``event`` (an unknown event gets the global ones)."""
        try:
            own = self.events.get(EventType(event))
        except ValueError:
            own = None
        if own is None:
            return self.min_confidence, self.min_dwell_s
        return (self.min_confidence if own.min_confidence is None else own.min_confidence,
                self.min_dwell_s if own.min_dwell_s is None else own.min_dwell_s)


class DeadlineWatch(Strict):
    """Wall alarms for open cases near or past their deadline (``cases.deadlines``), once per case and stage."""

    enabled: bool = True
    near_fraction: float | None = Field(default=0.8, gt=0, lt=1,
                                        description="near deadline once this share of the time limit has passed")
    near_remaining_s: float | None = Field(default=None, gt=0,
                                           description="near deadline once at most this many seconds remain")
    interval_s: float = Field(default=30.0, ge=1, le=3600, description="seconds between checks")


class FieldPhotos(Strict):
    """Photos the units upload from the field page (``wall.case_office``): refused over the size, resized."""

    max_mb: float = Field(default=10.0, gt=0, le=100, description="largest accepted upload, in MB (2^20 bytes)")
    max_side_px: int = Field(default=1600, ge=320, le=8000, description="longest side after the server's resize")
    per_user_per_hour: int = Field(default=60, ge=1, le=10000, description="uploads per user per hour (sliding)")


class Cases(Strict):
    categories_file: Path = CONFIG_DIR / "categories.yaml"
    dispatch_file: Path = CONFIG_DIR / "dispatch.yaml"
    calendar_file: Path = CONFIG_DIR / "calendar.yaml"
    grid_file: Path = CONFIG_DIR / "grid.geojson"
    auto_file: AutoFile = AutoFile()
    deadline_watch: DeadlineWatch = DeadlineWatch()
    field_photos: FieldPhotos = FieldPhotos()


class WebhookTarget(Strict):
    """One city platform that receives every case event (POST JSON, ``Idempotency-Key`` header)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="stable id; deliveries are kept per name")
    url: str = Field(pattern=r"^https?://", description="http(s) endpoint")
    events: list[str] = Field(default_factory=list, description="case event actions to send; empty means all")
    secret: str | None = Field(default=None, description="when set, X-Citywall-Signature: sha256=HMAC(body)")
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class Webhooks(Strict):
    """Outbound webhooks per case event, delivered from the case store's outbox; retried until delivered."""

    targets: list[WebhookTarget] = Field(default_factory=list)
    backoff_s: float = Field(default=1.0, gt=0, le=3600, description="first retry delay; doubles each failure")
    backoff_max_s: float = Field(default=300.0, gt=0, le=86400, description="longest retry delay")
    poll_s: float = Field(default=1.0, gt=0, le=60, description="how often the outbox is checked for new events")

    @model_validator(mode="after")
    def _unique(self) -> Webhooks:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"webhook target names must be unique: {', '.join(dupes)}")
        return self


class MapSettings(Strict):
    """The situation map's basemap (``map:``). ``tiles: offline`` (default) draws the site's ``cases.grid_file`` as
    plain tiles on the wall server (no network); else an XYZ URL template (``{z}``/``{x}``/``{y}``, ``{s}`` for
    ``subdomains``), or with ``kind: wmts`` a WMTS KVP endpoint whose Web-Mercator matrix set (天地图 ``w``,
    GoogleMapsCompatible) is asked tile by tile."""

    tiles: str = Field(default="offline", description='"offline" or the tile URL (http(s)://…)')
    kind: Literal["xyz", "wmts"] = "xyz"
    wmts_layer: str = Field(default="", description="WMTS LAYER (e.g. 天地图 vec)")
    wmts_style: str = "default"
    wmts_matrix_set: str = Field(default="w", description="a Web-Mercator TILEMATRIXSET (天地图: w)")
    wmts_format: str = Field(default="tiles", description="WMTS FORMAT (天地图: tiles; others image/png)")
    subdomains: str = Field(default="", description='letters or digits for {s} (天地图: "01234567")')
    attribution: str = Field(default="", description="credit shown on the map (e.g. 审图号, the data owner)")
    crs: Literal["wgs84", "gcj02", "cgcs2000"] = Field(
        default="wgs84", description="coordinate system of the tiles: gcj02 (高德/腾讯) shifts the stored WGS-84 "
                                     "points onto them; cgcs2000 (天地图) is WGS-84 at map scale")
    min_zoom: int = Field(default=10, ge=0, le=22)
    max_zoom: int = Field(default=19, ge=0, le=22)

    @field_validator("tiles")
    @classmethod
    def _tiles(cls, value: str) -> str:
        if value == "offline":
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError('must be "offline" or an http(s):// tile URL')
        return value

    @model_validator(mode="after")
    def _template(self) -> MapSettings:
        if self.tiles != "offline":
            if self.kind == "xyz" and not all(k in self.tiles for k in ("{z}", "{x}", "{y}")):
                raise ValueError("tiles: an XYZ URL needs {z}, {x} and {y}")
            if self.kind == "wmts" and not self.wmts_layer:
                raise ValueError("wmts_layer: required with kind: wmts")
            if "{s}" in self.tiles and not self.subdomains:
                raise ValueError("subdomains: required when tiles uses {s}")
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"min_zoom ({self.min_zoom}) is above max_zoom ({self.max_zoom})")
        return self


class Settings(Strict):
    site_name: str = "城市运行管理中心"
    timezone: str = "Asia/Shanghai"
    demo: Demo = Demo()
    brokers: Brokers = Brokers()
    storage: Storage = Storage()
    wall: WallServer = WallServer()
    detection: Detection = Detection()
    ingest: Ingest = Ingest()
    cases: Cases = Cases()
    cluster: Cluster = Cluster()
    guidance: GuidanceSettings = GuidanceSettings()
    webhooks: Webhooks = Webhooks()
    users: list[User] = Field(min_length=1)
    cameras: list[Camera] = Field(default_factory=list)
    video_wall: VideoWall = VideoWall()
    recording: RecordingSettings = RecordingSettings()
    map: MapSettings = MapSettings()
    learning: LearningSettings = LearningSettings()

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(dupes)}")
        names = [u.username for u in self.users]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"usernames must be unique; repeated: {', '.join(dupes)}")
        demo_cams = [c.id for c in self.cameras if c.url.startswith("demo://")]
        if demo_cams and not self.demo.enabled:
            raise ValueError(f"cameras {', '.join(demo_cams)} use demo:// URLs but demo.enabled is false")
        wall_problems = self.video_wall.unknown_cameras(set(ids)) + self.recording.unknown_cameras(set(ids))
        if wall_problems:
            raise ValueError("; ".join(wall_problems))
        return self

    def camera(self, camera_id: str) -> Camera:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)


def _loc(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


_ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(text: str) -> str:
    """``${NAME}`` / ``${NAME:-default}`` in the YAML text come from the environment (secrets stay out of files)."""

    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            if m.group(2) is None:
                raise ConfigError("(environment)", [(f"${{{m.group(1)}}}", "environment variable is not set")])
            return m.group(2)
        return value

    return _ENV_REF.sub(sub, text)


def parse_settings(data: object, source: str = "<config>", base_dir: Path | None = None) -> Settings:
    """Validate already-parsed YAML/JSON data; relative paths resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(source, [("(top level)", "expected a mapping of settings")])
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = [(_loc(err["loc"]), err["msg"].removeprefix("Value error, ")) for err in exc.errors()]
        raise ConfigError(source, problems) from None
    problems = guidance_problems(settings)
    if problems:
        raise ConfigError(source, problems)
    if base_dir is not None:
        settings = _resolve_paths(settings, base_dir)
    return settings


def _resolve_paths(settings: Settings, base_dir: Path) -> Settings:
    def rel(p: Path) -> Path:
        return p if p.is_absolute() else (base_dir / p)

    storage = settings.storage.model_copy(update={"data_dir": rel(settings.storage.data_dir)})
    demo = settings.demo.model_copy(update={"media_dir": rel(settings.demo.media_dir)})
    cases = settings.cases.model_copy(
        update={k: rel(getattr(settings.cases, k))
                for k in ("categories_file", "dispatch_file", "calendar_file", "grid_file")}
    )
    guidance = settings.guidance
    if guidance.clip_dir is not None:
        guidance = guidance.model_copy(update={"clip_dir": rel(guidance.clip_dir)})
    return settings.model_copy(update={"storage": storage, "demo": demo, "cases": cases, "guidance": guidance})


def load_settings(path: str | Path) -> Settings:
    """Read, expand ``${ENV}`` references, and validate a YAML config file.

    Relative paths in the file (``storage.data_dir``, the ``cases`` files) are resolved against the current
    working directory, the way an operator typing a command expects.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [("(file)", "no such file")]) from None
    except OSError as exc:
        raise ConfigError(str(path), [("(file)", exc.strerror or str(exc))]) from None
    try:
        data = yaml.safe_load(_expand_env(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    except ConfigError as exc:
        raise ConfigError(str(path), exc.problems) from None
    return parse_settings(data, str(path), base_dir=Path.cwd())


_URL_PASSWORD = re.compile(r"(://[^:/@\s'\"]*):(?!\d+(?:[/?#\s'\"]|$))(?:(?!://)[^\n'\"]){0,256}@")
"""The password of every ``scheme://user:password@`` in a text: up to the *last* ``@`` before the next URL, so an
unencoded ``@``, ``/`` or space in the password (``admin:p@ss/w rd@host``) is masked whole; ``host:554/a@b`` (a
port, then a path) is not a password."""


_QUERY_SECRET = re.compile(
    r"([?&;](?:password|passwd|passwort|pass|pwd|psw|pw|loginpass|login_pass|authbasic|auth|token|access_token|"
    r"key|apikey|api_key|secret|signature|sig|credentials?)=)[^&;#\s'\"]*", re.IGNORECASE)
"""Cameras that take credentials in the query or as path parameters (``?user=admin&psw=...``, ``;password=...``)."""


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` → ``rtsp://user:***@host/x`` (and ``?password=secret`` → ``?password=***``)
    in a URL or in any text that holds URLs (an error message, a log line): credentials never leave the server.
    The user name is kept (it says which account)."""
    return _QUERY_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", url))


def url_problem(url: str) -> str | None:
    """Why a configured stream URL cannot be used (or shown safely), parsed like a client would; None when fine."""
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "contains a space or control character; percent-encode it (space: %20)"
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "is not scheme://host/path"
    authority = re.split(r"[?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        userinfo, _, hostpart = authority.rpartition("@")
        if "/" in userinfo:
            return ("has an '@' after a '/': in a password write '/' as %2F (and '@' as %40), in a path write '@' "
                    "as %40, so the URL parses the same everywhere (and its password is never shown)")
        authority = hostpart
    try:
        parts = urlsplit(f"{scheme}://{authority}")
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"cannot be parsed: {exc}"
    if not parts.hostname:
        return "has no host"
    return None


__all__ = [
    "Camera",
    "ConfigError",
    "Demo",
    "EventType",
    "Position",
    "Role",
    "Settings",
    "User",
    "Zone",
    "load_settings",
    "parse_settings",
    "redact_url",
]

