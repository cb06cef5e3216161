"""Metric providers for ``/metrics``: each room's counters as Prometheus families (see ``wall.metrics``).

The composition root is the one place that knows every room, so the translation from each room's ``stats`` to
metric names lives here; the rooms keep plain counters and know nothing of Prometheus.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from wall.metrics import Family, family, histogram

if TYPE_CHECKING:
    from broker.bus import Bus
    from broker.leases import LeaseKeeper
    from cases.store import CaseStore
    from cases.worker import CaseWorker
    from citywall.keepalive import WatchedChild
    from detectors.worker import DetectionWorker
    from recording.service import RecordingService
    from video_ingest.clip_buffer import ClipRecorder
    from video_ingest.service import IngestService

STATES = ("connecting", "online", "reconnecting", "offline")


def _per_camera(rows: dict[str, dict[str, Any]], key: str) -> list[tuple[dict[str, str], float]]:
    return [({"camera": cid}, float(row.get(key) or 0)) for cid, row in sorted(rows.items())]


def ingest_metrics(ingest: IngestService) -> Callable[[], Iterable[Family]]:
    """Per camera: state, fps, reconnects, packets, relay viewers and drops, sampler figures."""

    def provide() -> list[Family]:
        statuses = ingest.statuses()
        stats = ingest.stats()
        cams: dict[str, dict[str, Any]] = stats["cameras"]
        live = {cid: row.get("live", {}) for cid, row in cams.items()}
        return [
            family("citywall_camera_up", "gauge", "1 when the camera is online",
                   [({"camera": s.camera_id}, 1.0 if s.state == "online" else 0.0) for s in statuses]),
            family("citywall_camera_state", "gauge", "1 for the camera's current connection state",
                   [({"camera": s.camera_id, "state": st}, 1.0 if s.state == st else 0.0)
                    for s in statuses for st in STATES]),
            family("citywall_camera_fps", "gauge", "Frames per second received", [({"camera": s.camera_id}, s.fps)
                                                                                    for s in statuses]),
            family("citywall_camera_reconnects_total", "counter", "Reconnect attempts since start",
                   [({"camera": s.camera_id}, s.reconnects) for s in statuses]),
            family("citywall_ingest_packets_total", "counter", "Video packets received", _per_camera(cams, "packets")),
            family("citywall_ingest_sink_errors_total", "counter", "Packet consumers that raised",
                   _per_camera(cams, "sink_errors")),
            family("citywall_ingest_frames_decoded_total", "counter", "Frames decoded for detection",
                   _per_camera(cams, "sampled")),
            family("citywall_ingest_sample_drops_total", "counter",
                   "Frames dropped from the bounded decode queue", _per_camera(cams, "sample_queue_drops")),
            family("citywall_ingest_decode_errors_total", "counter", "Frames that failed to decode",
                   _per_camera(cams, "decode_errors")),
            family("citywall_ingest_decode_cpu_seconds_total", "counter",
                   "CPU seconds spent decoding (and converting) frames for detection",
                   _per_camera(cams, "decode_cpu_s")),
            family("citywall_ingest_decode_skipped_total", "counter",
                   "Non-reference frames not decoded (no analysed picture needed them)",
                   _per_camera(cams, "decode_skipped")),
            family("citywall_relay_viewers", "gauge", "Live viewers per camera relay", _per_camera(live, "viewers")),
            family("citywall_relay_viewer_drops_total", "counter",
                   "Fragments dropped from viewers' bounded queues (all viewers of the camera)",
                   [({"camera": cid}, float(sum(row.get("viewer_drops", [])))) for cid, row in sorted(live.items())]),
            family("citywall_ingest_status_drops_total", "counter", "Status updates dropped from bounded queues",
                   stats["status_drops"]),
        ]

    return provide


def detection_metrics(detection: DetectionWorker) -> Callable[[], Iterable[Family]]:
    """Frames analysed, detector latency, alarms, the bounded alarm outbox."""

    def provide() -> list[Family]:
        s: dict[str, Any] = detection.stats()
        cams: dict[str, dict[str, Any]] = s.get("cameras", {})
        return [
            family("citywall_detector_frames_analysed_total", "counter", "Frames analysed",
                   _per_camera(cams, "frames_analysed")),
            family("citywall_detector_errors_total", "counter", "Analyses that raised", _per_camera(cams, "errors")),
            family("citywall_detector_analysis_ms", "gauge", "Last analysis time per frame (ms)",
                   _per_camera(cams, "analysis_ms_last")),
            histogram("citywall_detector_analysis_seconds", "Analysis time per frame, all cameras of the worker",
                      detection.analysis_seconds),
            family("citywall_detector_tick_ms", "gauge", "Last batch tick over all cameras (ms)", s["tick_ms_last"]),
            family("citywall_alarms_raised_total", "counter", "Alarms raised", _per_camera(cams, "alarms_raised")),
            family("citywall_alarms_cleared_total", "counter", "Alarms cleared", _per_camera(cams, "alarms_cleared")),
            family("citywall_detector_outbox", "gauge", "Alarms waiting to be published (bounded)", s["outbox"]),
            family("citywall_detector_outbox_dropped_total", "counter", "Alarms dropped from a full outbox",
                   s["outbox_dropped"]),
            family("citywall_evidence_errors_total", "counter", "Evidence files that could not be written",
                   s["evidence_errors"]),
        ]

    return provide


def case_worker_metrics(worker: CaseWorker) -> Callable[[], Iterable[Family]]:
    """Alarms consumed into cases, by outcome."""

    def provide() -> list[Family]:
        st = worker.stats
        return [
            family("citywall_case_worker_received_total", "counter", "Alarms consumed", st.received),
            family("citywall_case_worker_outcomes_total", "counter", "Filing outcomes",
                   [({"outcome": k}, v) for k, v in sorted(st.outcomes.items())]),
            family("citywall_case_worker_malformed_total", "counter", "Malformed alarm entries", st.malformed),
            family("citywall_case_worker_failed_total", "counter", "Filing failures", st.failed),
            family("citywall_case_events_published_total", "counter", "Case events published", st.published),
        ]

    return provide


def case_store_metrics(store: CaseStore, clock: Callable[[], float] = time.time) -> Callable[[], Iterable[Family]]:
    """Cases by workflow state and how many open ones are past their deadline (one small query per scrape)."""

    def provide() -> list[Family]:
        c = store.counts(clock())
        return [
            family("citywall_cases", "gauge", "Cases by workflow state",
                   [({"state": st}, n) for st, n in sorted(c["by_state"].items())]),
            family("citywall_cases_overdue", "gauge", "Open cases past their deadline", c["overdue"]),
        ]

    return provide


def bus_metrics(bus: Bus) -> Callable[[], Iterable[Family]]:
    def provide() -> list[Family]:
        s = bus.stats()
        return [family(f"citywall_bus_{k}_total", "counter", f"Bus {k.replace('_', ' ')}", v)
                for k, v in sorted(s.items())] + [
            histogram("citywall_bus_publish_seconds", "Time to publish one message (XADD round trip)",
                      bus.publish_seconds)]

    return provide


def clip_metrics(clips: ClipRecorder) -> Callable[[], Iterable[Family]]:
    """Evidence clips per camera: written, failed (disk full, write errors), refused (too many pending)."""

    def provide() -> list[Family]:
        rows = clips.stats()
        return [family(f"citywall_evidence_clips_{key}_total", "counter", f"Evidence clips {key}",
                       _per_camera(rows, key)) for key in ("written", "failed", "refused")]

    return provide


def recording_metrics(recording: RecordingService) -> Callable[[], Iterable[Family]]:
    """Recording: bytes and segments written, disk-full stops, write errors, deletions; per camera gaps and drops."""

    def provide() -> list[Family]:
        st = recording.stats()
        cams = st["cameras"]
        out = [family(f"citywall_recording_{key}_total", "counter", f"Recording {key.replace('_', ' ')}",
                      [({}, st[key])]) for key in ("bytes_written", "segments_written", "disk_full", "write_errors",
                                                   "deleted", "deleted_bytes")]
        out.append(family("citywall_recording_stopped_disk_full", "gauge",
                          "1 while recording is stopped because the disk is full", [({}, st["stopped_disk_full"])]))
        out += [family(f"citywall_recording_{key}_total", "counter", f"Recording {key} per camera",
                       _per_camera(cams, key)) for key in ("gaps", "dropped")]
        return out

    return provide


def child_metrics(children: list[WatchedChild]) -> Callable[[], Iterable[Family]]:
    """Private child servers (``citywall.keepalive``): restarts after their process died, failed restarts."""

    def provide() -> list[Family]:
        return [
            family("citywall_private_server_restarts_total", "counter",
                   "Private servers started again after their process died",
                   [({"server": c.name}, c.restarts) for c in children]),
            family("citywall_private_server_restart_failures_total", "counter",
                   "Attempts to restart a dead private server that failed",
                   [({"server": c.name}, c.failed_restarts) for c in children]),
        ]

    return provide


def lease_metrics(keeper: LeaseKeeper) -> Callable[[], Iterable[Family]]:
    def provide() -> list[Family]:
        s = keeper.stats
        return [
            family("citywall_leases_held", "gauge", "Cameras this worker holds", len(keeper.held)),
            family("citywall_cluster_live_workers", "gauge", "Workers with a live heartbeat", s.live_workers),
            family("citywall_lease_rounds_failed_total", "counter", "Lease rounds that could not reach Redis",
                   s.failed_rounds),
            family("citywall_lease_takeovers_total", "counter", "Leases taken over from dead workers", s.taken_over),
            family("citywall_lease_fenced_total", "counter", "Times this worker dropped its cameras (Redis lost)",
                   s.fenced),
        ]

    return provide
