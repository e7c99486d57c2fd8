"""The settings of ``cococxr train segmentation`` and ``cococxr compare`` (no TensorFlow here).

:class:`SegmentationConfig` is the schema of the flags and of ``--config`` files; its
built-in recipe is ``configs/segmentation.yaml`` (installed as ``cococxr.configs``), whose
values are these defaults: the plain U-Net (``plain_unet``, 8-16-32-64-128 filters, no
backbone) trained from scratch on 320x320 histogram-equalised grayscale images, bce+Dice
loss, Adam at 1e-3 halved after 4 epochs without validation-loss improvement, light
joint augmentation with letterboxing and exposure changes, batch 8, the model kept at
its best validation Dice. It was chosen for a CPU: ``--arch unet --backbone
efficientnetb0`` (10M parameters, depthwise convolutions) trains several times slower
per image there.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cococxr.augment_names import parse_augment
from cococxr.config import option
from cococxr.configs import recipe_path
from cococxr.errors import ConfigError
from cococxr.models.registry import BACKENDS, LOSSES, OPTIMIZERS, SMP_ARCHITECTURES, architecture_names
from cococxr.pipelines.engine.batchnorm import check_bn_momentum
from cococxr.pipelines.engine.distribute import STRATEGIES

ARCHITECTURES = architecture_names()
#: the --arch choices: segmentation_models' and plain_unet (backend sm), then smp's others
ARCH_CHOICES = ARCHITECTURES + tuple(a for a in SMP_ARCHITECTURES if a not in ARCHITECTURES)
#: losses the smp backend implements (with segmentation_models_pytorch.losses)
SMP_LOSSES = ("bce_dice", "dice", "bce", "focal", "focal_dice", "jaccard")
SMP_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam")
BEST_MONITOR = "val_f1-score"  # segmentation_models' F-score at threshold 0.5 = Dice
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "learning_curves.png"
REPORT_FILE = "report.html"


@dataclass
class SegmentationConfig:
    """Settings of a segmentation training run (flags and config-file keys)."""

    RECIPE: ClassVar[Path] = recipe_path("segmentation")

    train: str | None = option(None, "COCO JSON of the training images", required=True, metavar="JSON")
    val: str | None = option(None, "COCO JSON of the validation images", required=True, metavar="JSON")
    image_root: str | None = option(None, "folder of the images (default: as each COCO file says)",
                                    metavar="DIR")
    classes: list[str] = option([], "class names = output channels, in order "
                                    "(default: every category with masks in --train)", metavar="NAME")
    backend: str = option("sm", "training backend: sm (tf-keras segmentation_models, and plain_unet) or "
                                "smp (PyTorch segmentation_models_pytorch; saves model.pt)", choices=BACKENDS)
    arch: str = option("plain_unet", "architecture (sm: unet, fpn, linknet, pspnet, plain_unet; smp: any "
                                     "of its architectures)", choices=ARCH_CHOICES)
    backbone: str = option("efficientnetb0", "encoder: any segmentation_models backbone, or with "
                                             "--backend smp any smp encoder such as resnet18, "
                                             "efficientnet-b0, tu-<timm model> (ignored by plain_unet)")
    filters: list[int] = option([8, 16, 32, 64, 128], "plain_unet filters per level, one level per "
                                "entry (ignored by the other architectures)", metavar="N")
    encoder_weights: str | None = option(None, "none, imagenet (downloads; needs network) or a .h5 file",
                                         metavar="WEIGHTS")
    encoder_freeze: bool = option(False, "freeze the encoder (only sensible with pretrained weights)")
    bn_momentum: float | None = option(None, "momentum of every BatchNormalization layer (default: the "
                                             "model's, 0.99 or MobileNetV2's 0.999); 0.9 lets the statistics "
                                             "used at inference catch up in a short training from scratch")
    input_size: int = option(320, "images are resized to SIZE x SIZE", metavar="SIZE")
    channels: int = option(1, "input channels (1 = grayscale, 3 = gray repeated)", choices=(1, 3))
    preprocessing: str | None = option(None, "backbone name whose input normalisation to apply "
                                             "(needs --channels 3; default: scale to 0..1)")
    equalize: str | None = option("hist", "histogram equalisation at the native size before resizing "
                                          "(none to turn it off)", choices=("hist", "clahe"))
    augment: str | None = option("light+letterbox+exposure", "joint image+mask augmentation: a preset (light, medium), levers "
                                          "(exposure, noise, blur, rotate, zoom, letterbox, text) or both joined "
                                          "by '+', e.g. light+letterbox+exposure (none to disable)",
                                 parse=parse_augment, metavar="PRESET[+LEVER]")
    loss: str = option("dice", "loss (soft Dice; bce_dice adds binary cross-entropy)", choices=LOSSES)
    optimizer: str = option("adam", "optimizer", choices=OPTIMIZERS)
    lr: float = option(1e-3, "initial learning rate")
    epochs: int = option(100, "maximum number of epochs (early stopping usually ends sooner)")
    batch_size: int = option(8, "global batch size (split between replicas by a strategy)")
    steps_per_epoch: int | None = option(None, "training batches per epoch (default: one pass)")
    validation_steps: int | None = option(None, "validation batches per epoch (default: one pass)")
    max_train_seconds: float | None = option(None, "wall-clock budget of training (stops after the "
                                                   "batch that spends it, then validates)",
                                             metavar="SECONDS")
    reduce_lr_patience: int = option(4, "epochs without val-loss improvement before halving the "
                                        "learning rate (0: never)")
    early_stopping_patience: int = option(10, "epochs without val-loss improvement before stopping "
                                              "(0: never)")
    seed: int = option(0, "seed of weights, shuffling and augmentation")
    strategy: str = option("none", "distribution strategy", choices=STRATEGIES)
    out: str | None = option(None, "run folder (default: RUNS_DIR/NAME-TIMESTAMP)", metavar="DIR")
    runs_dir: str = option("runs", "parent folder of timestamped run folders", metavar="DIR")
    name: str | None = option(None, "run name (default: ARCH-BACKBONE)")
    model_format: str = option("h5", "model file format of the sm backend (smp always writes "
                                     "TorchScript model.pt)", choices=("h5", "keras"))
    tensorboard: bool = option(True, "write TensorBoard logs")
    overlays: int = option(4, "best and worst validation images drawn")
    progress: int = option(1, "Keras output: 0 silent, 1 progress bar, 2 one line per epoch",
                           choices=(0, 1, 2))


def run_name(config: SegmentationConfig) -> str:
    """``config.name`` or ``ARCH-BACKBONE`` (``plain_unet`` alone; ``smp-ARCH-BACKBONE`` for smp)."""
    if config.name:
        return config.name
    if config.backend == "smp":
        return f"smp-{config.arch}-{config.backbone}"
    return config.arch if config.arch == "plain_unet" else f"{config.arch}-{config.backbone}"


def _check_smp(config: SegmentationConfig) -> None:
    if config.arch not in SMP_ARCHITECTURES:
        raise ConfigError(f"backend smp has no architecture {config.arch!r}; choose one of {sorted(SMP_ARCHITECTURES)}")
    for name, value, known in (("loss", config.loss, SMP_LOSSES), ("optimizer", config.optimizer, SMP_OPTIMIZERS)):
        if value not in known:
            raise ConfigError(f"backend smp has no {name} {value!r}; choose one of {list(known)}")
    if config.preprocessing is not None:
        raise ConfigError("backend smp scales inputs to 0..1: leave preprocessing unset")
    if config.strategy != "none":
        raise ConfigError("backend smp trains in one process: use strategy none")


def check_config(config: SegmentationConfig) -> None:
    """Raise :class:`ConfigError` for values no run can use."""
    if config.strategy == "multiworker" and config.max_train_seconds:
        raise ConfigError("max_train_seconds is not supported with strategy 'multiworker': each "
                          "worker's clock would stop it at a different step; use epochs/steps_per_epoch")
    for name in ("epochs", "batch_size", "input_size"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(config, name)}")
    check_bn_momentum(config.bn_momentum)
    if config.backend == "smp":
        _check_smp(config)
    elif config.arch not in ARCHITECTURES:
        raise ConfigError(f"backend sm has no architecture {config.arch!r}; choose one of {list(ARCHITECTURES)} "
                          f"or use --backend smp")


__all__ = ["SegmentationConfig", "ARCHITECTURES", "ARCH_CHOICES", "SMP_LOSSES", "SMP_OPTIMIZERS", "LOSSES",
           "OPTIMIZERS", "BEST_MONITOR", "CONFIG_FILE", "METRICS_FILE", "CURVES_FILE", "REPORT_FILE", "run_name", "check_config"]
