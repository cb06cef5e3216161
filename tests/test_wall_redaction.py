"""Camera credentials never leave the server: a secret in camera URLs (user:password@, an ``@`` inside the
password, ``?password=`` in the query) is searched for in every API response, ``/metrics``, the pages, both
WebSockets, configuration errors and every log line, while real ingest fails to reach those cameras (its errors
carry the URLs) and its statuses flow over the real Redis bus to the wall."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import aiohttp
import pytest

from citywall.builders.worker import publish_statuses
from citywall.metrics import ingest_metrics
from config import ConfigError, parse_settings, redact_url
from tests.fixtures.wall import PASSWORD_HASH, login, wall_client
from tests.test_wall_live import _closed_port
from tests.waiting import eventually
from video_ingest.service import IngestService
from video_ingest.source import CameraSource
from wall.app import create_app
from wall.openapi import build_document

SECRET = "Zq7s3cr3tPW"


def _urls(port: int) -> dict[str, str]:
    return {
        "cam-a": f"rtsp://admin:{SECRET}@127.0.0.1:{port}/a",
        "cam-b": f"rtsp://admin:p@{SECRET}@127.0.0.1:{port}/b",  # an unencoded @ in the password
        "cam-c": f"rtsp://127.0.0.1:{port}/c?channel=1&user=admin&password={SECRET}",
    }


@pytest.mark.parametrize("text", [
    f"rtsp://viewer:{SECRET}@10.0.0.1/a", f"rtsp://admin:p@{SECRET}@10.0.0.1:554/h264",
    f"rtsps://u:{SECRET}%40x@h/x", f"cannot open 'rtsp://u:{SECRET}@h/x': Connection refused",
    f"rtsp://h/x?user=a&password={SECRET}", f"rtsp://h/x?PWD={SECRET}&a=1", f"rtsp://h/x?token={SECRET}",
    f"two: rtsp://a:{SECRET}@h/x, rtsp://b:{SECRET}@i/y", f"postgresql://u:{SECRET}@h:5432/db",
])
def test_redact_url_masks_every_credential_form(text: str) -> None:
    out = redact_url(text)
    assert SECRET not in out, out
    assert "***" in out


def test_redact_url_keeps_what_is_not_a_credential() -> None:
    for text in ["rtsp://10.0.0.1:554/a@b", "demo://vending", "rtsp://viewer@10.0.0.1/a", "no url here"]:
        assert redact_url(text) == text


def test_config_errors_and_source_repr_hide_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"cameras": [{"id": "bad id!", "name": "x", "url": f"rtsp://u:{SECRET}@h/a",
                                     "position": {"lon": 1, "lat": 2}}]})
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_settings({"cameras": [{"id": "c", "name": "x", "url": f"http://u:{SECRET}@h/a",
                                     "position": {"lon": 1, "lat": 2}}]})
    assert SECRET not in str(info.value) and "url" in str(info.value)
    with pytest.raises(ValueError) as err:
        IngestService({"c": f"u:{SECRET}@h/a"})
    assert SECRET not in str(err.value)
    assert SECRET not in repr(CameraSource("c", f"rtsp://u:{SECRET}@h/a"))


def _settings(tmp_path, urls: dict[str, str]):
    return parse_settings({
        "site_name": "测试中心",
        "storage": {"data_dir": str(tmp_path / "var")},
        "users": [{"username": "admin", "display_name": "管理员", "role": "admin", "password_hash": PASSWORD_HASH}],
        "cameras": [{"id": cid, "name": f"camera {cid}", "url": url, "substream_url": url.replace("/a", "/a-sub"),
                     "position": {"lon": 120.15, "lat": 30.27}} for cid, url in urls.items()],
    })


@pytest.mark.slow
async def test_secret_in_camera_urls_is_in_no_response_frame_metric_page_or_log(tmp_path, bus, store, caplog):
    caplog.set_level(logging.DEBUG)
    urls = _urls(_closed_port())
    ingest = IngestService(urls, open_timeout_s=1.0, read_timeout_s=1.0)
    await ingest.start()
    publisher = asyncio.create_task(publish_statuses(ingest, bus))
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    app = create_app(_settings(tmp_path, urls), bus=bus, cases=store, live=ingest.live, evidence_dir=evidence,
                     metric_providers=[ingest_metrics(ingest)])
    seen: dict[str, str] = {}
    try:
        async with wall_client(app) as client:
            assert (await login(client)).status == 200
            async with client.ws_connect("/api/ws") as ws:
                async def failed_everywhere() -> bool:
                    cams = (await (await client.get("/api/cameras")).json())["cameras"]
                    return all(c["status"] and c["status"].get("error") for c in cams)

                await eventually(failed_everywhere, timeout=30, what="every camera's connection error")
                frames = []
                while len(frames) < 50:  # the camera_status frames pushed meanwhile (their errors hold the URL)
                    try:
                        msg = await ws.receive(timeout=2)
                    except TimeoutError:
                        break
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    frames.append(msg.data)
                seen["ws"] = "\n".join(frames)
                assert any('"camera_status"' in f for f in frames), frames[:3]
            async with client.ws_connect("/api/live/cam-b") as live:  # offline: says so, without its URL
                seen["live cam-b"] = str((await live.receive(timeout=30)).data)
            for path in _get_paths() + ["/metrics", "/wall", "/console", "/situation", "/review", "/stats",
                                        "/report/daily", "/api/nothing-here", "/api/cameras/cam-a"]:
                resp = await client.get(path)
                seen[path] = await resp.text()
            assert "cam-a" in seen["/api/cameras"] and "***" in seen["/api/cameras"]
    finally:
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
        await ingest.stop()
    leaks = {where: _around(text) for where, text in seen.items() if SECRET in text}
    assert not leaks, leaks
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "Connection refused" in logged or "connection" in logged.lower(), logged[-500:]
    assert SECRET not in logged, _around(logged)


def _get_paths() -> list[str]:
    """Every GET in the OpenAPI document that needs no path parameter."""
    doc = build_document("test")
    return [p for p, ops in doc["paths"].items() if "get" in ops and "{" not in p and p not in ("/api/ws",)]


def _around(text: str) -> str:
    i = text.find(SECRET)
    return text[max(0, i - 80): i + 40]


def test_camera_dicts_in_the_api_have_no_raw_url_field() -> None:
    """The camera schema names only redacted URLs (a new URL field must be added through ``redact_url``)."""
    camera = build_document("test")["components"]["schemas"]["Camera"]
    url_fields = [name for name in camera["properties"] if re.search("url", name)]
    assert set(url_fields) <= {"url", "substream_url"}, url_fields
    assert all("redact" in json.dumps(camera["properties"][f]).lower() or "***" in json.dumps(camera["properties"][f])
               for f in url_fields), {f: camera["properties"][f] for f in url_fields}


def test_command_line_logging_masks_credentials_in_messages_and_tracebacks(tmp_path) -> None:
    """Even a log line that forgot ``redact_url`` (or a library's exception text in a traceback) is masked by the
    formatter every ``citywall`` command logs through."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import logging\n"
        "from citywall.cli import configure_logging\n"
        "configure_logging(verbose=False)\n"
        f"url = 'rtsp://admin:{SECRET}@10.0.0.9/a?password={SECRET}'\n"
        "logging.getLogger('citywall.test').warning('cannot open %s', url)\n"
        "try:\n"
        "    raise OSError(f'connection refused: {url}')\n"
        "except OSError:\n"
        "    logging.getLogger('citywall.test').exception('ingest failed')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "cannot open rtsp://admin:***@10.0.0.9/a?password=***" in out.stderr, out.stderr
    assert "Traceback" in out.stderr and SECRET not in out.stderr, out.stderr
