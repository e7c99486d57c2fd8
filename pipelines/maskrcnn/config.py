"""The settings of ``cococxr train maskrcnn`` (no torch here).

:class:`MaskRCNNConfig` is the schema of the flags and of ``--config`` files; its defaults
are the recipe docs/results.md reports on cxr-lungs.
"""
from __future__ import annotations

from dataclasses import dataclass

from cococxr.config import option
from cococxr.errors import ConfigError

BACKENDS = ("torchvision", "detectron2")
OPTIMIZERS = ("adamw", "sgd")
CONFIG_FILE = "config.json"
MODEL_FILE = "model.pt"
HISTORY_FILE = "history.csv"
CURVES_FILE = "loss_curves.png"


@dataclass
class MaskRCNNConfig:
    """Settings of a Mask R-CNN training run (flags and config-file keys)."""

    train: str | None = option(None, "COCO JSON of the training images", required=True, metavar="JSON")
    val: str | None = option(None, "COCO JSON of the validation images", required=True, metavar="JSON")
    image_root: str | None = option(None, "folder of the images (default: as each COCO file says)",
                                    metavar="DIR")
    backend: str = option("torchvision", "implementation", choices=BACKENDS)
    min_size: int = option(256, "short image side after the model's resize, px (torchvision's own "
                                "default 800 costs 10-18 s per CPU iteration)", metavar="PX")
    max_size: int = option(256, "upper bound of the long side after the resize, px", metavar="PX")
    rois_per_image: int = option(128, "proposals sampled per training image for the box and mask heads "
                                      "(512 in the COCO recipes; 128 is 3-4x cheaper on a CPU)",
                                 metavar="N")
    proposals_per_image: int = option(1000, "RPN proposals per image at inference (each goes through "
                                            "the box head)", metavar="N")
    detections_per_image: int = option(100, "most instances predicted per image", metavar="N")
    iterations: int = option(1000, "training iterations (batches)", metavar="N")
    batch_size: int = option(2, "images per iteration", metavar="N")
    lr: float = option(1e-4, "learning rate after warm-up", metavar="LR")
    optimizer: str = option("adamw", "adamw or sgd (momentum 0.9)", choices=OPTIMIZERS)
    weight_decay: float = option(1e-4, "weight decay", metavar="W")
    warmup_iterations: int = option(50, "iterations of linear learning-rate warm-up from lr/1000",
                                    metavar="N")
    grad_clip: float | None = option(10.0, "clip the gradient norm to this (none: no clipping)",
                                     metavar="NORM")
    hflip: float = option(0.5, "probability of a horizontal flip of a training image", metavar="P")
    max_train_seconds: float | None = option(None, "wall-clock budget of training (torchvision backend); "
                                                   "stops after the iteration that spends it",
                                             metavar="SECONDS")
    checkpoint_every: int = option(200, "rewrite model.pt every N iterations (0: only at the end)",
                                   metavar="N")
    score_threshold: float = option(0.05, "validation: detections scoring at least this count for AP",
                                    metavar="SCORE")
    union_score_threshold: float = option(0.5, "validation: detections scoring at least this form the "
                                               "per-class union mask scored by Dice", metavar="SCORE")
    device: str = option("auto", "cpu, cuda or auto (cuda when available)", choices=("auto", "cpu", "cuda"))
    workers: int = option(0, "data-loading worker processes", metavar="N")
    seed: int = option(0, "seed of weights, shuffling and flips", metavar="N")
    out: str | None = option(None, "run folder (default: RUNS_DIR/NAME-TIMESTAMP)", metavar="DIR")
    runs_dir: str = option("runs", "parent folder of timestamped run folders", metavar="DIR")
    name: str | None = option(None, "run name (default: maskrcnn-BACKEND)")
    overlays: int = option(4, "best and worst validation images drawn", metavar="N")
    progress: bool = option(True, "show progress bars")


def run_name(config: MaskRCNNConfig) -> str:
    """``config.name`` or ``maskrcnn-BACKEND``."""
    return config.name or f"maskrcnn-{config.backend}"


def check_config(config: MaskRCNNConfig) -> None:
    """Raise :class:`ConfigError` for values no run can use."""
    for name in ("min_size", "max_size", "rois_per_image", "proposals_per_image", "detections_per_image",
                 "iterations", "batch_size"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.max_size < config.min_size:
        raise ConfigError(f"max_size ({config.max_size}) must be at least min_size ({config.min_size})")
    if not 0.0 <= config.hflip <= 1.0:
        raise ConfigError(f"hflip is a probability in 0..1, got {config.hflip}")
    if not 0.0 <= config.score_threshold <= config.union_score_threshold <= 1.0:
        raise ConfigError("thresholds must satisfy 0 <= score_threshold <= union_score_threshold <= 1")
    if config.lr <= 0:
        raise ConfigError(f"lr must be positive, got {config.lr}")
    if config.backend == "detectron2" and config.max_train_seconds:
        raise ConfigError("max_train_seconds is not supported by the detectron2 backend; set iterations")


__all__ = ["BACKENDS", "OPTIMIZERS", "CONFIG_FILE", "MODEL_FILE", "HISTORY_FILE", "CURVES_FILE", "MaskRCNNConfig",
           "run_name", "check_config"]
