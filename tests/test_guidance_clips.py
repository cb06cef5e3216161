"""TTS and the clip cache: real espeak-ng, real PyAV encoders; formats, caching, atomic files, upload checks."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from guidance.clips import ClipCache, ClipFormat, probe_audio, validate_upload
from guidance.tts import EspeakTts, TtsError

TEXT = "您好，此处为人民路，禁止占道经营，请立即离开。"


@pytest.fixture(scope="module")
def tts() -> EspeakTts:
    return EspeakTts()


@pytest.fixture(scope="module")
def source_wav(tts: EspeakTts) -> bytes:
    return tts.render_wav(TEXT)


def test_espeak_reads_chinese_characters_as_mandarin(tts: EspeakTts, source_wav: bytes) -> None:
    info = probe_audio(source_wav)
    assert info.rms_dbfs > -30.0
    # ~22 syllables spoken, not skipped or spelled as "Chinese letter" names: 0.15-0.6 s per character.
    assert 0.15 * len(TEXT) < info.duration_s < 0.6 * len(TEXT)
    # English voice for the same text says "Chinese letter ..." for each character: far longer.
    longer = EspeakTts(voice="en").render_wav(TEXT)
    assert probe_audio(longer).duration_s > 2 * info.duration_s


@pytest.mark.parametrize(("text", "message"), [("", "text is empty"), ("长" * 501, "max_chars=500")])
def test_tts_rejects_bad_text(tts: EspeakTts, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tts.render_wav(text)


def test_tts_errors_name_the_problem() -> None:
    with pytest.raises(TtsError, match="not found"):
        EspeakTts(binary="espeak-ng-missing")
    with pytest.raises(TtsError, match="no-such-voice"):
        EspeakTts(voice="no-such-voice")
    assert EspeakTts().render_wav("-q --help")[:4] == b"RIFF"  # text cannot become an option


@pytest.mark.parametrize(("fmt", "codec", "rate", "suffix"), [
    (ClipFormat.ALAW_WAV, "pcm_alaw", 8000, ".wav"),
    (ClipFormat.MP3, "mp3float", 22050, ".mp3"),
    (ClipFormat.OPUS, "opus", 48000, ".opus"),
])
def test_clip_formats(tmp_path: Path, tts: EspeakTts, source_wav: bytes, fmt: ClipFormat, codec: str, rate: int,
                      suffix: str) -> None:
    clip = ClipCache(tmp_path, tts).get(TEXT, fmt)
    assert clip.path.suffix == suffix and clip.path.parent == tmp_path
    info = probe_audio(clip.path.read_bytes())
    assert (info.codec, info.sample_rate, info.channels) == (codec, rate, 1)
    expected = probe_audio(source_wav).duration_s
    assert info.duration_s == pytest.approx(expected, rel=0.03)
    assert info.rms_dbfs == pytest.approx(probe_audio(source_wav).rms_dbfs, abs=2.0)


def test_alaw_is_g711_8khz_mono_wav(tmp_path: Path, tts: EspeakTts) -> None:
    clip = ClipCache(tmp_path, tts).get(TEXT, "alaw_wav")
    raw = clip.path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    fmt_at = raw.index(b"fmt ")
    audio_format, channels, rate = np.frombuffer(raw[fmt_at + 8:fmt_at + 16], dtype="<u2")[:2].tolist() + [
        int(np.frombuffer(raw[fmt_at + 12:fmt_at + 16], dtype="<u4")[0])]
    bits = int(np.frombuffer(raw[fmt_at + 22:fmt_at + 24], dtype="<u2")[0])
    assert (audio_format, channels, rate, bits) == (6, 1, 8000, 8)  # WAVE_FORMAT_ALAW


def test_cache_hits_misses_and_keys(tmp_path: Path, tts: EspeakTts) -> None:
    cache = ClipCache(tmp_path, tts)
    a = cache.get(TEXT, ClipFormat.MP3)
    mtime = a.path.stat().st_mtime_ns
    b = cache.get(TEXT, ClipFormat.MP3)
    assert b.path == a.path and b.path.stat().st_mtime_ns == mtime
    c = cache.get(TEXT, ClipFormat.ALAW_WAV)
    d = cache.get("您好，此处为解放路，禁止占道经营，请立即离开。", ClipFormat.MP3)
    assert len({a.key, c.key, d.key}) == 3
    assert cache.stats() == {"hits": 1, "misses": 3, "hit_rate": 0.25}
    assert cache.key(TEXT, ClipFormat.MP3) != ClipCache(tmp_path / "x", EspeakTts(voice="en")).key(TEXT, ClipFormat.MP3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".clip-secret"]  # no temp files
    assert (tmp_path / ".clip-secret").stat().st_mode & 0o777 == 0o600
    assert cache.key(TEXT, ClipFormat.MP3) != ClipCache(tmp_path / "y", tts).key(TEXT, ClipFormat.MP3)  # keyed
    # A new process finds the files: hits, no re-render.
    again = ClipCache(tmp_path, tts)
    assert again.get(TEXT, ClipFormat.MP3).info.duration_s == pytest.approx(a.info.duration_s)
    assert again.stats()["hits"] == 1 and again.stats()["misses"] == 0
    with pytest.raises(ValueError, match="unknown clip format 'aac'"):
        cache.get(TEXT, "aac")


def _tone_wav(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def test_validate_upload_accepts_audio(tmp_path: Path, tts: EspeakTts) -> None:
    info = validate_upload(_tone_wav(2.0))
    assert info.duration_s == pytest.approx(2.0, abs=0.01)
    assert info.rms_dbfs == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.2)
    mp3 = ClipCache(tmp_path, tts).get(TEXT, ClipFormat.MP3).path.read_bytes()
    assert validate_upload(mp3).codec == "mp3float"


@pytest.mark.parametrize(("data", "kwargs", "message"), [
    (b"", {}, "not an audio file"),
    (b"%PDF-1.4 this is not audio at all " * 50, {}, "not an audio file"),
    (_tone_wav(3.0), {"max_bytes": 1000}, "max_bytes=1000"),
    (_tone_wav(3.0), {"max_duration_s": 2.0}, "max_duration_s=2.0"),
    (_tone_wav(0.05), {}, "min_duration_s"),
])
def test_validate_upload_rejects(data: bytes, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_upload(data, **kwargs)  # type: ignore[arg-type]


def test_validate_upload_rejects_video_without_audio() -> None:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(ValueError, match="not an audio file: no audio stream"):
        validate_upload(buf.getvalue())


def test_concurrent_requests_for_a_new_message_render_once(tmp_path: Path, tts: EspeakTts) -> None:
    from concurrent.futures import ThreadPoolExecutor

    cache = ClipCache(tmp_path, tts)
    with ThreadPoolExecutor(4) as pool:
        clips = list(pool.map(lambda _: cache.get(TEXT, ClipFormat.ALAW_WAV), range(4)))
    assert len({c.path for c in clips}) == 1
    assert cache.stats()["misses"] == 1 and cache.stats()["hits"] == 3
