"""Field photos (处置反馈照片): an uploaded phone picture checked, turned upright, resized and re-encoded (pure).

A phone sends a 4–12 MB JPEG (or PNG/WebP/HEIF-as-JPEG) several thousand pixels wide; the case needs a picture a
desk can see and print. :func:`prepare_photo` refuses what is not a still image (with a Chinese message the page
shows as is), reads when it was taken (EXIF ``DateTimeOriginal``, else ``DateTime``), applies the EXIF orientation,
shrinks the longest side to ``max_side`` and writes a JPEG without the rest of the metadata (no GPS of the
worker's phone ends up in the evidence directory).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "MPO"})
"""Pillow format names accepted (MPO: the multi-picture JPEG some phones write)."""
MAX_PIXELS = 60_000_000
"""Larger pictures are refused before decoding (a decompression bomb is a few KB that decode to gigabytes)."""
JPEG_QUALITY = 85
_EXIF_DATETIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})")
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132


class PhotoRejected(ValueError):
    """Not an acceptable photo; ``zh`` is the sentence for the person, the message the English one."""

    def __init__(self, zh: str, en: str):
        super().__init__(en)
        self.zh = zh


@dataclass(frozen=True)
class PreparedPhoto:
    jpeg: bytes
    width: int
    height: int
    taken_at: str | None
    """EXIF time as ``YYYY-MM-DDTHH:MM:SS`` (the phone's local time, as the camera wrote it), or None."""
    source_format: str
    source_size: tuple[int, int]


def exif_time(image: Image.Image) -> str | None:
    """When the picture was taken, from its EXIF (``DateTimeOriginal``, else ``DateTime``), or None."""
    try:
        exif = image.getexif()
    except Exception:  # a broken EXIF block is no reason to refuse the photo
        return None
    values = [exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL), exif.get(_DATETIME)]
    for raw in values:
        if isinstance(raw, bytes):
            raw = raw.decode("ascii", "replace")
        m = _EXIF_DATETIME.match(str(raw or "").strip())
        if m and m.group(1) != "0000":
            y, mo, d, h, mi, s = m.groups()
            return f"{y}-{mo}-{d}T{h}:{mi}:{s}"
    return None


def prepare_photo(data: bytes, *, max_side: int = 1600) -> PreparedPhoto:
    """Check, orient, resize (longest side ≤ ``max_side``) and re-encode ``data`` as JPEG; :class:`PhotoRejected`."""
    if not data:
        raise PhotoRejected("没有收到照片（文件为空）", "the upload is empty")
    try:
        image: Image.Image = Image.open(io.BytesIO(data))
        fmt = image.format or ""
        size = image.size
        if fmt not in ACCEPTED_FORMATS:
            raise PhotoRejected("只能上传照片（JPEG、PNG 或 WebP 图片）",
                                f"not a JPEG, PNG or WebP image (found {fmt or 'unknown'})")
        if size[0] * size[1] > MAX_PIXELS:
            raise PhotoRejected("照片像素过大，请用手机相机正常拍摄后上传",
                                f"image of {size[0]}x{size[1]} pixels is over {MAX_PIXELS}")
        taken = exif_time(image)
        image.load()
    except PhotoRejected:
        raise
    # ImportError: a library may patch Image.open to load a plugin for files Pillow cannot identify (ultralytics
    # does, for HEIF); without the plugin that is still "not a picture we read".
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError, Image.DecompressionBombError):
        raise PhotoRejected("只能上传照片：文件不是可识别的图片（JPEG、PNG 或 WebP），请重新拍照上传",
                            "not a readable image") from None
    image = ImageOps.exif_transpose(image)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return PreparedPhoto(out.getvalue(), image.width, image.height, taken, fmt, size)
