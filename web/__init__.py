"""The browser side: the big-screen wall page, console pages and the live video tile element (static files)."""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
