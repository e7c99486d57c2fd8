"""The settings of ``cococxr train classifier`` (no TensorFlow here).

:class:`ClassificationConfig` is the schema of the flags and of ``--config`` files; its
built-in recipe is ``configs/classifier.yaml`` (installed as ``cococxr.configs``), whose
values are these defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml

from cococxr.config import option
from cococxr.configs import recipe_path
from cococxr.errors import ConfigError
from cococxr.models.registry import OPTIMIZERS, SCRATCH_CLASSIFIERS, TRANSFER_CLASSIFIERS
from cococxr.pipelines.engine.batchnorm import check_bn_momentum

SCRATCH_MODELS = SCRATCH_CLASSIFIERS
TRANSFER_MODELS = TRANSFER_CLASSIFIERS
TUNE_MODES = ("f1", "sensitivity")
GRADCAM_METHODS = ("gradcam", "gradcam++")  # cococxr explain --method
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "learning_curves.png"
REPORT_FILE = "report.html"
MONITOR = "val_loss"


@dataclass
class ClassificationConfig:
    """Settings of a classifier training run (flags and config-file keys)."""

    RECIPE: ClassVar[Path] = recipe_path("classifier")

    train: str | None = option(None, "COCO JSON of the training images (image-level labels)", required=True,
                               metavar="JSON")
    val: str | None = option(None, "COCO JSON of the validation images (threshold tuned on it)", required=True,
                             metavar="JSON")
    image_root: str | None = option(None, "folder of the images (default: as each COCO file says)",
                                    metavar="DIR")
    classes: str | None = option(None, "output classes: 'A,B' or 'COVID=COVID-19*;other=*' (';' between "
                                       "classes, ',' between merged labels, globs allowed)", required=True,
                                 metavar="SPEC")
    one_vs_rest: bool = option(False, "--classes names one class; add 'not <class>' = every other label")
    model: str = option("separable_cnn", "classifier architecture", choices=SCRATCH_MODELS + TRANSFER_MODELS)
    model_options: str | None = option(None, "options of the --model builder, 'key=value;key=value' with YAML "
                                             "values, e.g. 'batch_norm=false;base_filters=16' for cnn",
                                       metavar="OPTIONS")
    bn_momentum: float | None = option(None, "momentum of every BatchNormalization layer (default: the model's, "
                                             "0.99); 0.9 lets the statistics used at inference catch up in a "
                                             "short training")
    weights: str | None = option(None, "none, imagenet (transfer models; needs network or the Keras cache) "
                                       "or a .h5 file", metavar="WEIGHTS")
    mask_with: str = option("none", "none (whole image), coco (the COCO file's lung masks) or a "
                                    "segmentation model file (its predicted lungs)", metavar="none|coco|MODEL")
    mask_classes: list[str] = option(["lung"], "mask categories (coco) or segmentation classes united "
                                               "into the lung mask", metavar="NAME")
    input_size: int = option(224, "images are resized to SIZE x SIZE", metavar="SIZE")
    channels: int = option(1, "input channels (1 = grayscale; transfer models repeat it)", choices=(1, 3))
    equalize: str | None = option("hist", "histogram equalisation (none to disable)", choices=("hist", "clahe"))
    augment: str | None = option("light", "augmentation of training images (none to disable)",
                                 choices=("light", "medium"))
    balance: bool = option(True, "class-balanced training batches")
    optimizer: str = option("adam", "optimizer", choices=OPTIMIZERS)
    lr: float = option(1e-3, "initial learning rate")
    epochs: int = option(30, "maximum number of epochs (first phase)")
    fine_tune_epochs: int = option(0, "transfer models: epochs of a second phase with the backbone unfrozen")
    fine_tune_lr: float = option(1e-5, "learning rate of the fine-tuning phase")
    fine_tune_layers: int | None = option(None, "unfreeze only the backbone's last N layers (default: all)")
    batch_size: int = option(16, "images per batch")
    steps_per_epoch: int | None = option(None, "training batches per epoch (default: one balanced pass)")
    validation_steps: int | None = option(None, "validation batches per epoch (default: all)")
    max_train_seconds: float | None = option(None, "wall-clock budget of each training phase", metavar="SECONDS")
    reduce_lr_patience: int = option(3, "epochs without val-loss improvement before halving the "
                                        "learning rate (0: never)")
    early_stopping_patience: int = option(8, "epochs without val-loss improvement before stopping (0: never)")
    tune: str | None = option("f1", "threshold tuning on validation (none: most probable class)",
                              choices=TUNE_MODES)
    target_sensitivity: float = option(0.9, "sensitivity to reach with --tune sensitivity")
    positive_class: str | None = option(None, "class whose threshold is tuned (default: the first)",
                                        metavar="CLASS")
    n_boot: int = option(1000, "bootstrap resamples for the AUC interval")
    seed: int = option(0, "seed of weights, sampling and augmentation")
    out: str | None = option(None, "run folder (default: RUNS_DIR/NAME-TIMESTAMP)", metavar="DIR")
    runs_dir: str = option("runs", "parent folder of timestamped run folders", metavar="DIR")
    name: str | None = option(None, "run name (default: classifier-MODEL)")
    model_format: str = option("h5", "model file format", choices=("h5", "keras"))
    tensorboard: bool = option(True, "write TensorBoard logs")
    progress: int = option(1, "Keras output: 0 silent, 1 progress bar, 2 one line per epoch", choices=(0, 1, 2))


def parse_model_options(text: str | None) -> dict:
    """``"a=1;b=false;c=[8,16]"`` -> ``{"a": 1, "b": False, "c": [8, 16]}`` (values parsed as YAML)."""
    options = {}
    for part in (p for p in (text or "").split(";") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"model_options: expected 'key=value', got {part!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"model_options: cannot read the value of {key.strip()!r} ({exc})") from exc
    taken = sorted(set(options) & {"optimizer", "learning_rate", "loss", "weights", "input_shape", "num_classes"})
    if taken:
        raise ConfigError(f"model_options: {taken} are set by their own flags (--optimizer, --lr, --weights, "
                          f"--input-size, --classes)")
    return options


def check_config(cfg: ClassificationConfig) -> None:
    """Raise :class:`ConfigError` for values no run can use."""
    for name in ("epochs", "batch_size", "input_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.fine_tune_epochs < 0:
        raise ConfigError(f"fine_tune_epochs must be >= 0, got {cfg.fine_tune_epochs}")
    if cfg.fine_tune_epochs and cfg.model in SCRATCH_MODELS:
        raise ConfigError(f"fine_tune_epochs: {cfg.model} is trained from scratch in one phase; fine-tuning "
                          f"needs a transfer model ({', '.join(TRANSFER_MODELS)})")
    if not 0 < cfg.target_sensitivity <= 1:
        raise ConfigError(f"target_sensitivity must be in (0, 1], got {cfg.target_sensitivity}")
    parse_model_options(cfg.model_options)
    check_bn_momentum(cfg.bn_momentum)


__all__ = ["ClassificationConfig", "parse_model_options", "check_config", "SCRATCH_MODELS", "TRANSFER_MODELS", "OPTIMIZERS",
           "TUNE_MODES", "GRADCAM_METHODS", "CONFIG_FILE", "METRICS_FILE", "CURVES_FILE", "REPORT_FILE", "MONITOR"]
