"""The ``video_wall`` section: physical wall screens, camera tours (轮巡) and emergency plans (预案).

Structure only; ``Settings`` checks that every camera named here exists, and the wall server
(``wall.screen_service.build_wall``) checks the geometry (tile indexes against layouts) when it starts.
Absent section → one screen ``main`` in 2x2 with the first four enabled cameras, no tours, no plans.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ScreenId = Annotated[str, Field(pattern=ID_PATTERN)]


class CustomLayout(_Strict):
    """A custom grid: ``rows`` × ``cols`` cells; each span ``[row, col, rowspan, colspan]`` merges cells into one
    tile."""

    rows: int = Field(ge=1, le=8)
    cols: int = Field(ge=1, le=8)
    spans: list[Annotated[list[int], Field(min_length=4, max_length=4)]] = Field(default_factory=list)


PRESET_LAYOUTS = ("1", "2x2", "3x3", "4x4", "1+5", "1+7")


def _preset(name: str) -> str:
    if name not in PRESET_LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; presets are {', '.join(PRESET_LAYOUTS)} or {{rows, cols, spans}}")
    return name


# A tagged union so an error names one branch: "layout.preset: unknown layout" or "layout.custom.rows: ...".
LayoutSpec = Annotated[
    Annotated[Annotated[str, AfterValidator(_preset)], Tag("preset")] | Annotated[CustomLayout, Tag("custom")],
    Discriminator(lambda v: "preset" if isinstance(v, str) else "custom"),
]


class ScreenConfig(_Strict):
    id: ScreenId
    name: str = ""
    layout: LayoutSpec = "2x2"
    tiles: list[str | None] = Field(default_factory=list, description="camera id per tile, row-major; null: empty")
    alarm_tile: int | None = Field(default=None, ge=0, description="tile where a new alarm's camera pops up")
    alarm_timeout_s: float = Field(default=120.0, gt=0, le=86400, description="pop-up reverts after this")


class TourConfig(_Strict):
    id: ScreenId
    name: str = ""
    cameras: list[str] = Field(min_length=1)
    dwell_s: float = Field(default=10.0, ge=3.0, le=3600.0, description="seconds each step stays (≥ 3)")


class PlanScreenConfig(_Strict):
    layout: LayoutSpec
    tiles: list[str | None] = Field(default_factory=list)
    tour: str | None = None
    tour_tiles: list[int] | None = None


class PlanBroadcast(_Strict):
    """Spoken at the sites when the plan is invoked (a leader's manual broadcast: pre-empts, passes quiet hours)."""

    targets: list[str] = Field(min_length=1, description="speaker ids, group:<name> or all (guidance.speakers)")
    text: str = Field(min_length=1, max_length=500)


class PlanConfig(_Strict):
    id: ScreenId
    name: str = ""
    roles: list[str] = Field(default_factory=lambda: ["leader"], description="roles that may invoke it (admin always)")
    screens: dict[str, PlanScreenConfig] = Field(min_length=1)
    broadcast: PlanBroadcast | None = None

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: list[str]) -> list[str]:
        from config.settings import Role  # imported here: settings imports this module

        known = [r.value for r in Role]
        for role in roles:
            if role not in known:
                raise ValueError(f"unknown role {role!r}; roles are {', '.join(known)}")
        return roles


class VideoWall(_Strict):
    screens: list[ScreenConfig] = Field(default_factory=list)
    tours: list[TourConfig] = Field(default_factory=list)
    plans: list[PlanConfig] = Field(default_factory=list)
    alarm_priority: dict[str, int] = Field(
        default_factory=lambda: {"road_occupation": 3, "vending": 2, "shop_front": 2, "exposed_rubbish": 1,
                                 "bin_overflow": 1, "bike_parking": 1},
        description="event type → priority; the higher wins the alarm tile (an alarm's extra.priority overrides)",
    )

    @model_validator(mode="after")
    def _unique(self) -> VideoWall:
        for kind, items in (("screen", self.screens), ("tour", self.tours), ("plan", self.plans)):
            ids = [i.id for i in items]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{kind} ids must be unique; repeated: {', '.join(dupes)}")
        screen_ids = {s.id for s in self.screens} or {"main"}
        tour_ids = {t.id for t in self.tours}
        for p in self.plans:
            for sid, ps in p.screens.items():
                if sid not in screen_ids:
                    raise ValueError(f"plans[{p.id}].screens.{sid}: unknown screen")
                if ps.tour is not None and ps.tour not in tour_ids:
                    raise ValueError(f"plans[{p.id}].screens.{sid}.tour: unknown tour {ps.tour!r}")
        return self

    def unknown_cameras(self, cameras: set[str]) -> list[str]:
        """``key.path: unknown camera X`` for every camera named here that is not configured."""
        problems: list[str] = []

        def check(path: str, cams: list[str | None]) -> None:
            for i, cam in enumerate(cams):
                if cam is not None and cam not in cameras:
                    problems.append(f"{path}[{i}]: unknown camera {cam!r}")

        for i, s in enumerate(self.screens):
            check(f"video_wall.screens[{i}].tiles", list(s.tiles))
        for i, t in enumerate(self.tours):
            check(f"video_wall.tours[{i}].cameras", list(t.cameras))
        for i, p in enumerate(self.plans):
            for sid, ps in p.screens.items():
                check(f"video_wall.plans[{i}].screens.{sid}.tiles", list(ps.tiles))
        return problems
