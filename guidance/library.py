"""Uploaded recordings (录音): validated by decoding, then kept in every clip format under an unguessable id.

An upload is decoded fully (not trusted from its headers), checked against size and duration limits, and
transcoded to each ``ClipFormat`` as ``<clip_id>.<ext>`` in the clip directory, where the clip routes serve it.
``clip_id`` is 32 random hex digits, so a clip's URL cannot be guessed.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import uuid
from pathlib import Path

from guidance.clips import _ENCODINGS, AudioInfo, Clip, ClipFormat, probe_audio, transcode, validate_upload

CLIP_ID_PATTERN = r"^[0-9a-f]{32}$"
"""An uploaded clip's id: 32 lower-case hex digits."""
_CLIP_ID = re.compile(CLIP_ID_PATTERN)


class ClipLibrary:
    """Uploaded clips in ``directory`` (the clip cache's directory: one place to serve)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._infos: dict[tuple[str, ClipFormat], AudioInfo] = {}
        self._lock = threading.Lock()

    @staticmethod
    def valid_id(clip_id: str) -> bool:
        return bool(_CLIP_ID.match(clip_id))

    def save(self, data: bytes, *, max_bytes: int, max_duration_s: float) -> tuple[str, AudioInfo]:
        """Validate and store an upload; ValueError ("not an audio file", over a limit) naming what was wrong."""
        info = validate_upload(data, max_bytes=max_bytes, max_duration_s=max_duration_s)
        clip_id = uuid.uuid4().hex
        fd, src = tempfile.mkstemp(prefix=".upload.", dir=self.directory)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            for fmt in ClipFormat:
                path = self.path(clip_id, fmt)
                tmp = path.with_name(f".{path.name}.tmp")
                transcode(Path(src).read_bytes(), fmt, tmp)
                os.replace(tmp, path)
        finally:
            Path(src).unlink(missing_ok=True)
        return clip_id, info

    def path(self, clip_id: str, fmt: ClipFormat) -> Path:
        return self.directory / f"{clip_id}.{_ENCODINGS[ClipFormat(fmt)][4]}"

    def exists(self, clip_id: str) -> bool:
        return self.valid_id(clip_id) and self.path(clip_id, ClipFormat.OPUS).is_file()

    def get(self, clip_id: str, fmt: ClipFormat) -> Clip:
        """The uploaded clip in ``fmt``; KeyError naming an unknown id."""
        if not self.exists(clip_id):
            raise KeyError(f"unknown clip {clip_id!r}")
        fmt = ClipFormat(fmt)
        path = self.path(clip_id, fmt)
        with self._lock:
            info = self._infos.get((clip_id, fmt))
        if info is None:
            info = probe_audio(path.read_bytes())
            with self._lock:
                self._infos[(clip_id, fmt)] = info
        return Clip(clip_id, path.name, path, fmt, f"[录音 {clip_id[:8]}]", info)
