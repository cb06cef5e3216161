"""The ``learning`` section: where reviewers' labels, datasets and site models live, the dataset's retention and
de-duplication, how training is bounded, and the shadow run of a candidate model. See ``learning/README.md``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShadowSettings(_Strict):
    interval_s: float = Field(default=10.0, ge=1, le=3600, description="one frame per camera at most this often")
    duration_s: float = Field(default=86_400.0, gt=0, le=30 * 86_400, description="how long a shadow run lasts")
    queue: int = Field(default=8, ge=1, le=1024, description="frames waiting for the candidate; more are dropped")


class TrainSettings(_Strict):
    threads: int = Field(default=1, ge=1, le=64, description="torch threads of the training process")
    memory_mb: int = Field(default=6144, ge=512, description="address-space limit of the training process (RLIMIT_AS)")
    nice: int = Field(default=15, ge=0, le=19, description="scheduling niceness of the training process")
    timeout_s: float = Field(default=6 * 3600, gt=0, description="a training run past this is stopped")


class LearningSettings(_Strict):
    dir: Path | None = Field(default=None, description="labels' snapshots, datasets, models; empty: "
                                                       "storage.data_dir/learning")
    retention_days: float = Field(default=365.0, gt=0, le=3650, description="labelled snapshots older are pruned")
    retention_bytes: int = Field(default=20 * 2**30, ge=1, description="labelled snapshots beyond this total are "
                                                                         "pruned, oldest first")
    dedupe_bits: int = Field(default=4, ge=0, le=32, description="frames of one camera whose 64-bit thumbnail "
                                                                  "hashes differ in at most this many bits are one")
    val_share: float = Field(default=0.2, gt=0, lt=1, description="share of (camera, day) groups held back for "
                                                                  "validation")
    train: TrainSettings = TrainSettings()
    shadow: ShadowSettings = ShadowSettings()
