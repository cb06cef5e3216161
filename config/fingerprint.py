"""The parts of a configuration that every worker of one cluster must agree on, as short digests.

A worker joining a cluster compares its fingerprint with the cluster's (``broker.leases.LeaseKeeper.check_config``)
and refuses to join naming each differing key — one key per camera, so "cameras.cam-07 differs" says where to look.
Local matters (ports, data directory, brokers, users) are left out: they may differ between machines.

The digests are keyed: HMAC-SHA256 with ``cluster.token`` (and a fixed domain label), so the fingerprint stored in
Redis cannot be brute-forced offline to recover a camera password — without the token a guess cannot be checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from config.settings import Settings

SHARED_SECTIONS = ("site_name", "timezone", "detection", "cases", "guidance")


_LABEL = b"citywall config fingerprint v2\x00"


def _digest(key: bytes, name: str, value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hmac.new(key, _LABEL + name.encode() + b"\x00" + text.encode(), hashlib.sha256).hexdigest()[:32]


def fingerprint(settings: Settings) -> dict[str, str]:
    """Key → digest: ``cameras.<id>`` for each camera and one key per shared section (keyed by cluster.token)."""
    data = settings.model_dump(mode="json")
    key = settings.cluster.token.encode()
    out = {f"cameras.{cam['id']}": _digest(key, f"cameras.{cam['id']}", cam) for cam in data["cameras"]}
    for section in SHARED_SECTIONS:
        if section in data:
            out[section] = _digest(key, section, data[section])
    return out
