"""What a configuration change means for the running system: a pure diff of two validated ``Settings``.

``plan_changes(old, new)`` returns a :class:`ConfigChange` naming, per part of the system, what to do — ingest
opens, closes or reopens camera connections; detection rebuilds the analysers of cameras whose zones changed;
the wall refreshes its camera list; the wall server ends the sessions of users who were disabled, removed or
changed role; guidance reloads its speakers. ``diff_lines`` lists the changed key paths (values of secrets
masked) for the audit log and the import preview. No I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.settings import Camera, Settings, redact_url

EDITABLE = ("cameras", "users")
"""The sections the running configuration may change without a restart (the rest needs one)."""

_CONNECTION_KEYS = ("url", "substream_url", "analysis_url", "transport", "login")
_SECRET_KEYS = frozenset({"password_hash"})


@dataclass(frozen=True)
class ConfigChange:
    """Actions for the running system; empty lists mean "nothing to do there"."""

    cameras_added: list[str] = field(default_factory=list)
    """Enabled cameras to open (new, or newly enabled)."""
    cameras_removed: list[str] = field(default_factory=list)
    """Cameras to close (deleted, or disabled)."""
    cameras_reconnected: list[str] = field(default_factory=list)
    """Enabled cameras whose stream settings changed: close and open again."""
    cameras_reanalysed: list[str] = field(default_factory=list)
    """Enabled cameras kept open whose zones, name or position changed: detection rebuilds their analysers."""
    users_ended: list[str] = field(default_factory=list)
    """Users whose sessions end now (disabled, removed, role or password changed)."""
    users_changed: bool = False
    """The user list changed at all (the login check reloads it)."""
    restart_needed: list[str] = field(default_factory=list)
    """Top-level sections that changed but only take effect at the next start."""

    @property
    def camera_list_changed(self) -> bool:
        return bool(self.cameras_added or self.cameras_removed or self.cameras_reconnected or self.cameras_reanalysed)

    @property
    def empty(self) -> bool:
        return not (self.camera_list_changed or self.users_changed or self.restart_needed)

    def to_dict(self) -> dict[str, Any]:
        return {"cameras_added": self.cameras_added, "cameras_removed": self.cameras_removed,
                "cameras_reconnected": self.cameras_reconnected, "cameras_reanalysed": self.cameras_reanalysed,
                "users_ended": self.users_ended, "users_changed": self.users_changed,
                "restart_needed": self.restart_needed}


def _live(cams: list[Camera]) -> dict[str, Camera]:
    return {c.id: c for c in cams if c.enabled}


def plan_changes(old: Settings, new: Settings) -> ConfigChange:
    """The actions that take the running system from ``old`` to ``new`` (both already validated)."""
    before, after = _live(old.cameras), _live(new.cameras)
    added = [cid for cid in after if cid not in before]
    removed = [cid for cid in before if cid not in after]
    reconnected, reanalysed = [], []
    for cid in after:
        if cid not in before:
            continue
        a, b = before[cid], after[cid]
        if any(getattr(a, k) != getattr(b, k) for k in _CONNECTION_KEYS):
            reconnected.append(cid)
        elif a != b:
            reanalysed.append(cid)
    old_users = {u.username: u for u in old.users}
    new_users = {u.username: u for u in new.users}
    ended = []
    for name, user in old_users.items():
        now = new_users.get(name)
        if now is None or not now.enabled or now.role != user.role or now.password_hash != user.password_hash:
            ended.append(name)
    restart = [key for key in type(old).model_fields
               if key not in EDITABLE and getattr(old, key) != getattr(new, key)]
    return ConfigChange(cameras_added=added, cameras_removed=removed, cameras_reconnected=reconnected,
                        cameras_reanalysed=reanalysed, users_ended=ended, users_changed=old_users != new_users,
                        restart_needed=restart)


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) and ("id" in v or "username" in v)
                                                    for v in value):
        for v in value:  # lists of things with ids are keyed by id, so a deletion is one line, not a shift
            key = v.get("id", v.get("username"))
            _flatten(v, f"{path}[{key}]", out)
    else:
        out[path] = value


def _shown(path: str, value: Any) -> Any:
    if path.rsplit(".", 1)[-1] in _SECRET_KEYS:
        return "***"
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def diff_lines(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Key paths that differ between two plain config mappings: ``{"path", "old", "new"}`` (a missing side is
    absent), secrets masked, URL passwords redacted. Lists of items with ``id``/``username`` are keyed by it."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(old, "", a)
    _flatten(new, "", b)
    out = []
    for path in sorted(set(a) | set(b)):
        if a.get(path, ...) == b.get(path, ...) and (path in a) == (path in b):
            continue
        line: dict[str, Any] = {"path": path}
        if path in a:
            line["old"] = _shown(path, a[path])
        if path in b:
            line["new"] = _shown(path, b[path])
        out.append(line)
    return out


MASK = "***"
_SECRET_VALUE_KEYS = frozenset({"token", "secret", "auth_token", "password", "api_key"})


def mask_secrets(value: Any, key: str = "") -> Any:
    """Plain config data with every secret masked: URL passwords (``redact_url``) and the values of keys such as
    ``token``, ``secret``, ``auth_token`` (password hashes stay: they are what a site file holds)."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, str) and value:
        if key in _SECRET_VALUE_KEYS:
            return MASK
        if "://" in value:
            return redact_url(value)
    return value


def _keyed(items: list[Any]) -> dict[Any, Any] | None:
    if items and all(isinstance(v, dict) and ("id" in v or "username" in v or "name" in v) for v in items):
        return {v.get("id", v.get("username", v.get("name"))): v for v in items}
    return None


def restore_secrets(value: Any, current: Any, key: str = "") -> Any:
    """``value`` (data that went out through :func:`mask_secrets` and may have been edited) with each masked secret
    that is still shown as masked put back from ``current`` at the same place (list items matched by their
    ``id``/``username``/``name``); a secret typed anew is kept as typed."""
    if isinstance(value, dict):
        cur = current if isinstance(current, dict) else {}
        return {k: restore_secrets(v, cur.get(k), str(k)) for k, v in value.items()}
    if isinstance(value, list):
        cur_list = current if isinstance(current, list) else []
        by_key = _keyed(cur_list)
        mine = _keyed(value)
        if by_key is not None and mine is not None:
            return [restore_secrets(v, by_key.get(v.get("id", v.get("username", v.get("name")))), key)
                    for v in value]
        return [restore_secrets(v, cur_list[i] if i < len(cur_list) else None, key) for i, v in enumerate(value)]
    if isinstance(value, str) and MASK in value and isinstance(current, str) and mask_secrets(current, key) == value:
        return current
    return value
