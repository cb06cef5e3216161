"""Chinese text on evidence pictures: glyphs rendered by the system's FreeType (``libfreetype.so.6``, through
ctypes) from the Noto Sans CJK font (Debian ``fonts-noto-cjk``). OpenCV's ``putText`` only has Latin Hershey
fonts, this OpenCV build has no ``cv2.freetype`` and Pillow is not installed; FreeType itself is always there
(a dependency of the browser and the fonts).

``CjkText.load()`` returns None when the library or the font is missing — the caller then writes an ASCII
caption instead. One instance per thread (FreeType faces are not thread-safe); glyph bitmaps are cached.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from pathlib import Path

import numpy as np

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)
FT_LOAD_RENDER = 1 << 2
FT_PIXEL_MODE_GRAY = 2
_Long = ctypes.c_long


class _Generic(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("finalizer", ctypes.c_void_p)]


class _BBox(ctypes.Structure):
    _fields_ = [("xMin", _Long), ("yMin", _Long), ("xMax", _Long), ("yMax", _Long)]


class _Bitmap(ctypes.Structure):
    _fields_ = [("rows", ctypes.c_uint), ("width", ctypes.c_uint), ("pitch", ctypes.c_int),
                ("buffer", ctypes.POINTER(ctypes.c_ubyte)), ("num_grays", ctypes.c_ushort),
                ("pixel_mode", ctypes.c_ubyte), ("palette_mode", ctypes.c_ubyte), ("palette", ctypes.c_void_p)]


class _Metrics(ctypes.Structure):
    _fields_ = [(n, _Long) for n in ("width", "height", "horiBearingX", "horiBearingY", "horiAdvance",
                                     "vertBearingX", "vertBearingY", "vertAdvance")]


class _Vector(ctypes.Structure):
    _fields_ = [("x", _Long), ("y", _Long)]


class _GlyphSlot(ctypes.Structure):
    # FT_GlyphSlotRec up to bitmap_top (freetype/freetype.h; the layout is stable since 2.x).
    _fields_ = [("library", ctypes.c_void_p), ("face", ctypes.c_void_p), ("next", ctypes.c_void_p),
                ("glyph_index", ctypes.c_uint), ("generic", _Generic), ("metrics", _Metrics),
                ("linearHoriAdvance", _Long), ("linearVertAdvance", _Long), ("advance", _Vector),
                ("format", ctypes.c_uint), ("bitmap", _Bitmap), ("bitmap_left", ctypes.c_int),
                ("bitmap_top", ctypes.c_int)]


class _Face(ctypes.Structure):
    # FT_FaceRec up to glyph (what is read here).
    _fields_ = [("num_faces", _Long), ("face_index", _Long), ("face_flags", _Long), ("style_flags", _Long),
                ("num_glyphs", _Long), ("family_name", ctypes.c_char_p), ("style_name", ctypes.c_char_p),
                ("num_fixed_sizes", ctypes.c_int), ("available_sizes", ctypes.c_void_p),
                ("num_charmaps", ctypes.c_int), ("charmaps", ctypes.c_void_p), ("generic", _Generic),
                ("bbox", _BBox), ("units_per_EM", ctypes.c_ushort), ("ascender", ctypes.c_short),
                ("descender", ctypes.c_short), ("height", ctypes.c_short), ("max_advance_width", ctypes.c_short),
                ("max_advance_height", ctypes.c_short), ("underline_position", ctypes.c_short),
                ("underline_thickness", ctypes.c_short), ("glyph", ctypes.POINTER(_GlyphSlot))]


def _library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("freetype") or "libfreetype.so.6"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.FT_Init_FreeType.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    lib.FT_New_Face.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _Long, ctypes.POINTER(ctypes.POINTER(_Face))]
    lib.FT_Set_Pixel_Sizes.argtypes = [ctypes.POINTER(_Face), ctypes.c_uint, ctypes.c_uint]
    lib.FT_Load_Char.argtypes = [ctypes.POINTER(_Face), ctypes.c_ulong, ctypes.c_int32]
    lib.FT_Done_Face.argtypes = [ctypes.POINTER(_Face)]
    return lib


class CjkText:
    """Renders a line of text (any script the font has) to an 8-bit coverage mask at a pixel size."""

    def __init__(self, lib: ctypes.CDLL, handle: ctypes.c_void_p, face: ctypes._Pointer[_Face]) -> None:
        self._lib, self._handle, self._face = lib, handle, face
        self._size = 0
        self._cache: dict[tuple[str, int], tuple[np.ndarray, int, int, int]] = {}

    @classmethod
    def load(cls, fonts: tuple[str, ...] = FONT_CANDIDATES) -> CjkText | None:
        """A renderer over the first CJK font found (its Simplified Chinese face), or None."""
        lib = _library()
        if lib is None:
            return None
        handle = ctypes.c_void_p()
        if lib.FT_Init_FreeType(ctypes.byref(handle)) != 0:
            return None
        for path in fonts:
            if not Path(path).is_file():
                continue
            face = ctypes.POINTER(_Face)()
            if lib.FT_New_Face(handle, path.encode(), 0, ctypes.byref(face)) != 0:
                continue
            count = face.contents.num_faces
            for index in range(count):  # prefer the SC face of a collection (Chinese glyph shapes)
                candidate = ctypes.POINTER(_Face)()
                if lib.FT_New_Face(handle, path.encode(), index, ctypes.byref(candidate)) != 0:
                    continue
                if b"SC" in (candidate.contents.family_name or b""):
                    lib.FT_Done_Face(face)
                    return cls(lib, handle, candidate)
                lib.FT_Done_Face(candidate)
            return cls(lib, handle, face)
        return None

    def _glyph(self, ch: str, px: int) -> tuple[np.ndarray, int, int, int]:
        key = (ch, px)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if self._size != px:
            self._lib.FT_Set_Pixel_Sizes(self._face, 0, px)
            self._size = px
        if self._lib.FT_Load_Char(self._face, ord(ch), FT_LOAD_RENDER) != 0:
            out = (np.zeros((0, 0), np.uint8), 0, 0, px // 2)
        else:
            slot = self._face.contents.glyph.contents
            bm = slot.bitmap
            rows, width, pitch = bm.rows, bm.width, bm.pitch
            if rows and width and bm.pixel_mode == FT_PIXEL_MODE_GRAY:
                raw = np.ctypeslib.as_array(bm.buffer, shape=(rows * abs(pitch),)).reshape(rows, abs(pitch))
                mask = raw[:, :width].copy()
            else:
                mask = np.zeros((0, 0), np.uint8)
            out = (mask, slot.bitmap_left, slot.bitmap_top, slot.advance.x >> 6)
        if len(self._cache) < 4096:
            self._cache[key] = out
        return out

    def render(self, text: str, px: int) -> np.ndarray:
        """The text's coverage mask (uint8, 0..255), ``px`` pixels per em, one line; height ≈ 1.3 px."""
        glyphs = [self._glyph(ch, px) for ch in text]
        ascent = int(round(px * 1.0))
        height = int(round(px * 1.3))
        width = max(1, sum(g[3] for g in glyphs) + 2)
        mask = np.zeros((height, width), np.uint8)
        x = 1
        for bitmap, left, top, advance in glyphs:
            h, w = bitmap.shape
            if h and w:
                y0, x0 = ascent - top, x + left
                ys, xs = max(0, y0), max(0, x0)
                ye, xe = min(height, y0 + h), min(width, x0 + w)
                if ye > ys and xe > xs:
                    part = bitmap[ys - y0:ye - y0, xs - x0:xe - x0]
                    np.maximum(mask[ys:ye, xs:xe], part, out=mask[ys:ye, xs:xe])
            x += advance
        return mask

    def close(self) -> None:
        self._lib.FT_Done_Face(self._face)


_local = threading.local()


def renderer() -> CjkText | None:
    """This thread's renderer (loaded once; None when FreeType or the CJK font is not installed)."""
    if not hasattr(_local, "text"):
        _local.text = CjkText.load()
    return _local.text
