"""Text-to-speech: the ``TtsEngine`` protocol and ``EspeakTts`` (espeak-ng in a subprocess, WAV out).

espeak-ng's ``cmn-latn-pinyin`` voice looks Chinese characters up in its own cmn dictionary (您 → nin2) and reads
them correctly; ``-v cmn``/``zh`` switch to English for the same text. So no pinyin conversion is needed: the
text goes to espeak-ng as it is, on stdin (no shell, and a text starting with "-" cannot become an option).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Protocol, runtime_checkable

DEFAULT_MAX_CHARS = 500


class TtsError(RuntimeError):
    """The TTS engine could not render (binary missing, non-zero exit, timeout, output not WAV)."""


@runtime_checkable
class TtsEngine(Protocol):
    """Renders text to a WAV file's bytes (PCM, any rate; the clip cache converts)."""

    name: str
    voice: str

    def render_wav(self, text: str) -> bytes:
        """Return the spoken ``text`` as a complete WAV file; ValueError for bad text, TtsError for engine failure."""
        ...


def _espeak_voices(binary: str) -> set[str]:
    """Lower-case names espeak-ng accepts for ``-v``: languages, voice names, file names (``espeak-ng --voices``)."""
    try:
        out = subprocess.run([binary, "--voices"], capture_output=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise TtsError(f"cannot list espeak-ng voices: {exc}") from exc
    names: set[str] = set()
    for line in out.decode("utf-8", "replace").splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5:
            continue
        names.update({cols[1].lower(), cols[3].lower(), cols[4].lower(), cols[4].rsplit("/", 1)[-1].lower()})
        names.update(m.lower() for m in re.findall(r"\(([^ ()]+) \d+\)", line))  # "(zh-cmn 5)(zh 5)"
    return names


class EspeakTts:
    """espeak-ng, by default with the ``cmn-latn-pinyin`` voice (Mandarin read from Chinese characters).

    ``speed_wpm`` is espeak's ``-s``; slower than its 175 default is clearer through a street horn speaker.
    """

    name = "espeak-ng"

    def __init__(self, voice: str = "cmn-latn-pinyin", *, speed_wpm: int = 150, amplitude: int = 150,
                 binary: str = "espeak-ng", timeout_s: float = 10.0, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        path = shutil.which(binary)
        if path is None:
            raise TtsError(f"espeak-ng binary {binary!r} not found on PATH (apt-get install espeak-ng)")
        if not 80 <= speed_wpm <= 450:
            raise ValueError(f"speed_wpm must be 80..450, got {speed_wpm}")
        if not 0 <= amplitude <= 200:
            raise ValueError(f"amplitude must be 0..200, got {amplitude}")
        self.binary = path
        known = _espeak_voices(path)
        if voice.split("+", 1)[0].lower() not in known:
            # espeak-ng silently falls back to English for an unknown voice; refuse instead.
            raise TtsError(f"espeak-ng has no voice {voice!r} (try cmn-latn-pinyin for Mandarin)")
        self.voice = voice
        self.speed_wpm = speed_wpm
        self.amplitude = amplitude
        self.timeout_s = timeout_s
        self.max_chars = max_chars

    def render_wav(self, text: str) -> bytes:
        """Speak ``text`` into WAV bytes (16-bit mono, 22050 Hz from espeak-ng)."""
        text = text.strip()
        if not text:
            raise ValueError("text is empty")
        if len(text) > self.max_chars:
            raise ValueError(f"text is {len(text)} characters, over the limit of max_chars={self.max_chars}")
        cmd = [self.binary, "-v", self.voice, "-s", str(self.speed_wpm), "-a", str(self.amplitude),
               "-b", "1", "--stdin", "--stdout"]  # -b 1: input is UTF-8
        try:
            proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=self.timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise TtsError(f"espeak-ng took longer than timeout_s={self.timeout_s} for {len(text)} chars") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[:300]
            raise TtsError(f"espeak-ng voice {self.voice!r} exited {proc.returncode}: {err}")
        wav = proc.stdout
        if len(wav) <= 44 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
            raise TtsError(f"espeak-ng voice {self.voice!r} produced no WAV ({len(wav)} bytes)")
        return wav
