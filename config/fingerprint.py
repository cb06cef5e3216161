"""The parts of a configuration that every worker of one cluster must agree on, as short digests.

A worker joining a cluster compares its fingerprint with the cluster's (``broker.leases.LeaseKeeper.check_config``)
and refuses to join naming each differing key — one key per camera, so "cameras.cam-07 differs" says where to look.
Local matters (ports, data directory, brokers, users) are left out: they may differ between machines.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from config.settings import Settings

SHARED_SECTIONS = ("site_name", "timezone", "detection", "cases", "guidance")


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(settings: Settings) -> dict[str, str]:
    """Key → digest: ``cameras.<id>`` for each camera and one key per shared section."""
    data = settings.model_dump(mode="json")
    out = {f"cameras.{cam['id']}": _digest(cam) for cam in data["cameras"]}
    for section in SHARED_SECTIONS:
        if section in data:
            out[section] = _digest(data[section])
    return out
