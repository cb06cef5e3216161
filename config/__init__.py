"""Settings schema and the shipped YAML (demo config, event categories, dispatch rules, work calendar, grid)."""

from config.settings import (
    CONFIG_DIR,
    AutoFile,
    Camera,
    ConfigError,
    DeadlineWatch,
    EventType,
    Position,
    Role,
    Settings,
    User,
    Zone,
    load_settings,
    parse_settings,
    redact_url,
)

__all__ = [
    "CONFIG_DIR",
    "AutoFile",
    "Camera",
    "ConfigError",
    "DeadlineWatch",
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
