"""Pre-rendered guidance clips: ``ClipCache`` (TTS → target audio format, cached on disk) and upload validation.

A clip is keyed by a hash of (engine, voice, text, format), so the same message is synthesised once and then only
served. Formats follow the speaker's interface: G.711 A-law 8 kHz mono WAV for GB/T 28181-style speakers, MP3 for
vendor HTTP speakers, Opus in Ogg for the browser. Files are written to a temporary name and renamed (atomic), so a
speaker fetching a clip never sees half a file.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import io
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream

from guidance.tts import TtsEngine


class ClipFormat(str, enum.Enum):
    """Output format of a clip; the value is used in file names and config."""

    ALAW_WAV = "alaw_wav"  # G.711 A-law, 8 kHz mono, in WAV (GB/T 28181 broadcast, SIP/RTP speakers)
    MP3 = "mp3"  # 22.05 kHz mono MP3 (vendor HTTP speakers: "play this URL")
    OPUS = "opus"  # 48 kHz mono Opus in Ogg (browser)


# (container, codec, sample format, rate, file extension, bit rate)
_ENCODINGS: dict[ClipFormat, tuple[str, str, str, int, str, int | None]] = {
    ClipFormat.ALAW_WAV: ("wav", "pcm_alaw", "s16", 8000, "wav", None),
    ClipFormat.MP3: ("mp3", "libmp3lame", "s16p", 22050, "mp3", 48_000),
    ClipFormat.OPUS: ("ogg", "libopus", "s16", 48000, "opus", 32_000),
}


@dataclass(frozen=True)
class AudioInfo:
    """What decoding an audio file found: codec, container, duration, rate, channels, size and loudness."""

    codec: str
    container: str
    duration_s: float
    sample_rate: int
    channels: int
    size_bytes: int
    rms_dbfs: float  # RMS level relative to full scale; about -inf for silence


@dataclass(frozen=True)
class Clip:
    """A cached clip on disk: ``name`` is the file name inside the cache dir (what a URL serves)."""

    key: str
    name: str
    path: Path
    format: ClipFormat
    text: str
    info: AudioInfo


MAX_SAMPLE_RATE = 48_000
"""Highest sample rate accepted in an upload (every speaker format is at most 48 kHz)."""
MAX_CHANNELS = 8


def _decode(data: bytes, *, max_duration_s: float | None = None) -> AudioInfo:
    """Decode all audio of ``data`` and describe it; ValueError "not an audio file" if it is not audio.

    Bounded: the rate, channel count and (when the header says) duration are checked before anything is decoded,
    and decoding keeps only running sums, never the samples, so memory does not grow with the audio's length (a
    27 KB FLAC can hold two minutes at 384 kHz)."""
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise ValueError(f"not an audio file: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise ValueError("not an audio file: no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate or 0
        channels = stream.codec_context.channels
        if max_duration_s is not None:  # an upload: its budget is checked from the header first
            if not 0 < rate <= MAX_SAMPLE_RATE:
                raise ValueError(f"sample rate {rate} Hz is not between 1 and {MAX_SAMPLE_RATE} Hz")
            if not 0 < channels <= MAX_CHANNELS:
                raise ValueError(f"{channels} channels; at most {MAX_CHANNELS}")
            declared = (float(stream.duration * stream.time_base) if stream.duration and stream.time_base
                        else container.duration / 1_000_000 if container.duration else None)
            if declared is not None and declared > max_duration_s:
                raise ValueError(f"audio is {declared:.1f} s, longer than max_duration_s={max_duration_s}")
        if rate <= 0:
            raise ValueError("not an audio file: no sample rate")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        samples = 0
        energy = 0.0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1)
                    samples += arr.size
                    energy += float(np.dot(arr.astype(np.float64), arr))
                if max_duration_s is not None and samples / rate > max_duration_s:
                    raise ValueError(f"audio is longer than max_duration_s={max_duration_s}")
            for out in resampler.resample(None):
                arr = out.to_ndarray().reshape(-1)
                samples += arr.size
                energy += float(np.dot(arr.astype(np.float64), arr))
        except av.error.FFmpegError as exc:
            raise ValueError(f"not an audio file: {exc}") from exc
        if samples == 0:
            raise ValueError("not an audio file: no audio samples decoded")
        if max_duration_s is not None and samples / rate > max_duration_s:
            raise ValueError(f"audio is {samples / rate:.1f} s, longer than max_duration_s={max_duration_s}")
        rms = (energy / samples) ** 0.5
        return AudioInfo(codec=stream.codec_context.name, container=container.format.name,
                         duration_s=samples / rate, sample_rate=rate, channels=channels, size_bytes=len(data),
                         rms_dbfs=float(20.0 * np.log10(rms)) if rms > 0 else float("-inf"))


def probe_audio(data: bytes) -> AudioInfo:
    """Decode ``data`` fully and describe it (duration counted from decoded samples, not trusted from headers)."""
    return _decode(data)


def validate_upload(data: bytes, *, max_bytes: int = 5_000_000, max_duration_s: float = 120.0,
                    min_duration_s: float = 0.2) -> AudioInfo:
    """Check an uploaded guidance clip: ValueError "not an audio file", over ``max_bytes`` or over
    ``max_duration_s``."""
    if len(data) > max_bytes:
        raise ValueError(f"upload is {len(data)} bytes, over max_bytes={max_bytes}")
    if not data:
        raise ValueError("not an audio file: empty upload")
    info = _decode(data, max_duration_s=max_duration_s)
    if info.duration_s < min_duration_s:
        raise ValueError(f"audio is {info.duration_s:.2f} s, shorter than min_duration_s={min_duration_s}")
    return info


def transcode(wav: bytes, fmt: ClipFormat, out_path: Path) -> None:
    """Encode the audio of ``wav`` (any decodable input) into ``fmt`` at ``out_path`` (mono, the format's rate)."""
    container_name, codec, sample_fmt, rate, _, bit_rate = _ENCODINGS[fmt]
    with av.open(io.BytesIO(wav), mode="r") as src, av.open(str(out_path), mode="w", format=container_name) as dst:
        in_stream = src.streams.audio[0]
        out_stream = dst.add_stream(codec, rate=rate, layout="mono")
        if not isinstance(out_stream, AudioStream):
            raise TypeError(f"codec {codec} did not give an audio stream")
        out_stream.codec_context.format = sample_fmt
        if bit_rate:
            out_stream.codec_context.bit_rate = bit_rate
        out_stream.codec_context.time_base = Fraction(1, rate)
        resampler = av.AudioResampler(format=sample_fmt, layout="mono", rate=rate,
                                      frame_size=out_stream.codec_context.frame_size or None)
        for frame in src.decode(in_stream):
            frame.pts = None
            for out in resampler.resample(frame):
                dst.mux(out_stream.encode(out))
        for out in resampler.resample(None):
            dst.mux(out_stream.encode(out))
        dst.mux(out_stream.encode(None))


SECRET_FILE = ".clip-secret"
"""In the clip directory, mode 0600; a dot file, so ``/clips/`` never serves it (names there are hex only)."""


def site_secret(path: Path) -> bytes:
    """32 random bytes kept in ``path`` (created once, 0600, never replaced): the same across restarts and processes
    sharing the directory, so cached clip names stay valid."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) < 32:
            raise ValueError(f"{path} is not a clip secret (expected 32 bytes, found {len(secret)})") from None
        return secret
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


class ClipCache:
    """Renders guidance text with a TTS engine into clips of each format, cached as files under ``directory``.

    Thread-safe; ``hits``/``misses`` count lookups. ``get`` is blocking (TTS + encode, ~0.1 s): call it through
    ``asyncio.to_thread`` from async code, or pre-render at start-up with ``prerender``.
    """

    def __init__(self, directory: Path, engine: TtsEngine) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.engine = engine
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._infos: dict[str, AudioInfo] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._secret = site_secret(self.directory / SECRET_FILE)

    def key(self, text: str, fmt: ClipFormat) -> str:
        """Keyed hash of (engine, voice, text, format): the cache key and file stem. HMAC with this clip directory's
        secret, so ``/clips/<name>`` (public: speakers fetch without a session) cannot be found from a guessed text."""
        material = "\x1f".join((self.engine.name, self.engine.voice, text.strip(), ClipFormat(fmt).value))
        return hmac.new(self._secret, material.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def get(self, text: str, fmt: ClipFormat | str) -> Clip:
        """The clip for ``text`` in ``fmt``, rendering it on a miss (ValueError for bad text or unknown format)."""
        try:
            fmt = ClipFormat(fmt)
        except ValueError:
            raise ValueError(f"unknown clip format {fmt!r} (known: {', '.join(f.value for f in ClipFormat)})") \
                from None
        key = self.key(text, fmt)
        name = f"{key}.{_ENCODINGS[fmt][4]}"
        path = self.directory / name
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one render per key: concurrent requests for a new message wait for it, then hit
            with self._lock:
                info = self._infos.get(key)
            if info is None and path.exists():
                info = probe_audio(path.read_bytes())  # rendered by an earlier process
            if info is not None and path.exists():
                with self._lock:
                    self.hits += 1
                    self._infos[key] = info
                return Clip(key, name, path, fmt, text, info)
            info = self._render(text, fmt, key, path)
            with self._lock:
                self.misses += 1
                self._infos[key] = info
        return Clip(key, name, path, fmt, text, info)

    def _render(self, text: str, fmt: ClipFormat, key: str, path: Path) -> AudioInfo:
        wav = self.engine.render_wav(text)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=path.suffix, dir=self.directory)
        os.close(fd)
        try:
            transcode(wav, fmt, Path(tmp))
            info = probe_audio(Path(tmp).read_bytes())
            os.replace(tmp, path)  # atomic: a speaker never fetches half a clip
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return info

    def prerender(self, texts: list[str], formats: list[ClipFormat]) -> list[Clip]:
        """Render every text in every format now (start-up), so alarms only ever hit the cache."""
        return [self.get(t, f) for t in texts for f in formats]

    def stats(self) -> dict[str, float]:
        """Counters for metrics: hits, misses, hit_rate."""
        with self._lock:
            total = self.hits + self.misses
            return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hits / total if total else 0.0}
