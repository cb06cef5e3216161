"""The learning loop: reviewers' labels → a YOLO dataset → a site model trained here → shadow, compare, promote."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def learning_root(settings: Any) -> Path:
    """The learning folder: ``learning.dir``, or ``storage.data_dir/learning``."""
    return Path(settings.learning.dir or settings.storage.learning_dir)
