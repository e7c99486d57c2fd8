"""``cococxr train segmentation``: train a segmentation model on COCO files into a run folder.

The default recipe (every flag left at its default) is the one docs/results.md reports
on cxr-lungs: the plain U-Net (``plain_unet``, 8-16-32-64-128 filters, no backbone)
trained from scratch on 256x256 grayscale images, bce+Dice loss, Adam at 1e-3 halved
after 4 epochs without validation-loss improvement, light joint augmentation, batch 8,
the model kept at its best validation Dice. It was chosen for a CPU: ``--arch unet
--backbone efficientnetb0`` (10M parameters, depthwise convolutions) trains several
times slower per image there.

The run folder holds ``config.json`` (the resolved config; ``--config`` accepts it),
``model.h5`` (best on validation), ``history.csv``, ``learning_curves.png``,
``metrics.json`` (validation metrics from :func:`evaluate_segmentation` at the original
resolution, plus training facts), ``per_image.csv``, ``overlays/best.png`` and
``overlays/worst.png``, ``report.html`` and ``tensorboard/``.

With ``--strategy mirrored|multiworker`` the data is fed as a ``tf.data.Dataset``
(``CocoSegmentationSequence.as_tf_dataset``) batched at the *global* batch size
(``--batch-size``), which the strategy splits between replicas.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cococxr.errors import ConfigError
from cococxr.pipelines.engine.batchnorm import check_bn_momentum, set_bn_momentum
from cococxr.config import (add_config_arguments, config_from_args, config_to_dict,
                                      load_config, option, save_config)
from cococxr.pipelines.engine.runs import STRATEGIES

log = logging.getLogger(__name__)

# Mirrors cococxr.models.segmentation (not imported here: it loads TensorFlow).
ARCHITECTURES = ("unet", "fpn", "linknet", "pspnet", "plain_unet")
LOSSES = ("bce_dice", "dice", "bce", "focal", "focal_dice", "jaccard")
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
BEST_MONITOR = "val_f1-score"  # segmentation_models' F-score at threshold 0.5 = Dice
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "learning_curves.png"
REPORT_FILE = "report.html"


@dataclass
class SegmentationConfig:
    """Settings of a segmentation training run (flags and config-file keys)."""

    train: str | None = option(None, "COCO JSON of the training images", required=True, metavar="JSON")
    val: str | None = option(None, "COCO JSON of the validation images", required=True, metavar="JSON")
    image_root: str | None = option(None, "folder of the images (default: as each COCO file says)",
                                    metavar="DIR")
    classes: list[str] = option([], "class names = output channels, in order "
                                    "(default: every category with masks in --train)", metavar="NAME")
    arch: str = option("plain_unet", "architecture", choices=ARCHITECTURES)
    backbone: str = option("efficientnetb0", "encoder: any segmentation_models backbone "
                                             "(ignored by plain_unet)")
    filters: list[int] = option([8, 16, 32, 64, 128], "plain_unet filters per level, one level per "
                                "entry (ignored by the other architectures)", metavar="N")
    encoder_weights: str | None = option(None, "none, imagenet (downloads; needs network) or a .h5 file",
                                         metavar="WEIGHTS")
    encoder_freeze: bool = option(False, "freeze the encoder (only sensible with pretrained weights)")
    bn_momentum: float | None = option(None, "momentum of every BatchNormalization layer (default: the "
                                             "model's, 0.99 or MobileNetV2's 0.999); 0.9 lets the statistics "
                                             "used at inference catch up in a short training from scratch")
    input_size: int = option(256, "images are resized to SIZE x SIZE", metavar="SIZE")
    channels: int = option(1, "input channels (1 = grayscale, 3 = gray repeated)", choices=(1, 3))
    preprocessing: str | None = option(None, "backbone name whose input normalisation to apply "
                                             "(needs --channels 3; default: scale to 0..1)")
    equalize: str | None = option(None, "histogram equalisation", choices=("hist", "clahe"))
    augment: str | None = option("light", "joint image+mask augmentation (none to disable)",
                                 choices=("light", "medium"))
    loss: str = option("bce_dice", "loss", choices=LOSSES)
    optimizer: str = option("adam", "optimizer", choices=OPTIMIZERS)
    lr: float = option(1e-3, "initial learning rate")
    epochs: int = option(40, "maximum number of epochs")
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
    model_format: str = option("h5", "model file format", choices=("h5", "keras"))
    tensorboard: bool = option(True, "write TensorBoard logs")
    overlays: int = option(4, "best and worst validation images drawn")
    progress: int = option(1, "Keras output: 0 silent, 1 progress bar, 2 one line per epoch",
                           choices=(0, 1, 2))


def run_name(config: SegmentationConfig) -> str:
    """``config.name`` or ``ARCH-BACKBONE`` (``plain_unet`` alone)."""
    if config.name:
        return config.name
    return config.arch if config.arch == "plain_unet" else f"{config.arch}-{config.backbone}"


def mask_classes(coco) -> list[str]:
    """Names of the categories that have segmentation annotations, in file order."""
    used = {a.get("category_id") for a in coco.anns.values() if "segmentation" in a}
    return [cat["name"] for cat_id, cat in coco.cats.items() if cat_id in used]


def _check(config: SegmentationConfig) -> None:
    if config.strategy == "multiworker" and config.max_train_seconds:
        raise ConfigError("max_train_seconds is not supported with strategy 'multiworker': each "
                          "worker's clock would stop it at a different step; use epochs/steps_per_epoch")
    for name in ("epochs", "batch_size", "input_size"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(config, name)}")
    check_bn_momentum(config.bn_momentum)


def _arch_kwargs(config: SegmentationConfig) -> dict:
    if config.arch != "plain_unet":
        return {}
    if not config.filters:
        raise ConfigError("plain_unet needs at least one filters entry")
    return {"filters": tuple(config.filters)}


def _sequences(config: SegmentationConfig, train_coco, val_coco, classes: list[str]):
    from cococxr.sequences import CocoSegmentationSequence

    common = dict(batch_size=config.batch_size, input_size=config.input_size, channels=config.channels,
                  preprocessing=config.preprocessing, equalize=config.equalize, seed=config.seed)
    train = CocoSegmentationSequence(train_coco, classes, augment=config.augment, shuffle=True, **common)
    val = CocoSegmentationSequence(val_coco, classes, augment=None, shuffle=False, **common)
    return train, val


def _fit_inputs(train_seq, val_seq, config: SegmentationConfig, distributed: bool) -> dict:
    """``fit`` arguments: the Sequences, or repeated tf.data Datasets under a strategy."""
    steps = config.steps_per_epoch or len(train_seq)
    val_steps = config.validation_steps or len(val_seq)
    if not distributed:
        return dict(x=train_seq, validation_data=val_seq, steps_per_epoch=config.steps_per_epoch,
                    validation_steps=config.validation_steps)
    from cococxr._tf import tf

    options = tf.data.Options()
    # Items come from a Python generator (no files to shard): every worker builds the
    # batches and keeps its share of each global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = train_seq.as_tf_dataset().repeat().with_options(options)
    val = val_seq.as_tf_dataset().repeat().with_options(options)
    return dict(x=train, validation_data=val, steps_per_epoch=steps, validation_steps=val_steps)


def seconds_per_epoch(seconds: list[float], last_truncated: bool) -> float | None:
    """Mean training seconds of the full epochs after the first (which traces the graph)."""
    full = seconds[:-1] if last_truncated and len(seconds) > 1 else seconds
    steady = full[1:] if len(full) > 1 else full
    return sum(steady) / len(steady) if steady else None


def _write_report(run_dir: Path, config: SegmentationConfig, metrics: dict) -> None:
    from cococxr.reports import HtmlReport

    report = HtmlReport(f"cococxr segmentation run {run_dir.name}")
    report.heading("Validation metrics")
    report.table({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
    report.table([{"class": name, **values} for name, values in metrics["per_class"].items()])
    for name, caption in ((CURVES_FILE, "learning curves"), ("overlays/best.png", "best validation images"),
                          ("overlays/worst.png", "worst validation images")):
        if (run_dir / name).is_file():
            report.heading(caption.capitalize())
            report.image((run_dir / name).read_bytes(), caption)
    report.heading("Config")
    report.json_block(config_to_dict(config))
    report.write(run_dir / REPORT_FILE)


def train_segmentation(config=None, **overrides) -> dict:
    """Train a segmentation model and write its run folder.

    Args:
        config: a :class:`SegmentationConfig`, a dict, a YAML/JSON file path, or None.
        **overrides: config fields that win over ``config``.

    Returns:
        ``{"run_dir", "model", "metrics", "config"}`` (``run_dir``/``model``/``metrics``
        are None on a non-chief multi-worker process).
    """
    cfg = load_config(SegmentationConfig, config, **overrides)
    _check(cfg)
    from cococxr.pipelines.engine.runs import build_callbacks, create_run_dir, is_chief, make_strategy, worker_dir

    strategy = make_strategy(cfg.strategy)  # first: multiworker must precede any TF op
    chief = is_chief(strategy)
    from cococxr._tf import keras
    from cococxr.coco import CocoDataset
    from cococxr.models.segmentation import build_segmentation_model, compile_segmentation_model

    keras.utils.set_random_seed(cfg.seed)
    train_coco, val_coco = CocoDataset(cfg.train, cfg.image_root), CocoDataset(cfg.val, cfg.image_root)
    cfg = dataclasses.replace(cfg, classes=cfg.classes or mask_classes(train_coco))
    if not cfg.classes:
        raise ConfigError(f"{cfg.train}: no category has segmentation annotations")
    run_dir = create_run_dir(cfg.out, run_name(cfg), cfg.runs_dir) if chief else None
    work_dir = worker_dir(run_dir, chief)
    save_config(cfg, work_dir / CONFIG_FILE)
    train_seq, val_seq = _sequences(cfg, train_coco, val_coco, cfg.classes)
    with strategy.scope():
        model = build_segmentation_model(cfg.arch, cfg.backbone, len(cfg.classes),
                                         input_shape=(cfg.input_size, cfg.input_size, cfg.channels),
                                         encoder_weights=cfg.encoder_weights,
                                         encoder_freeze=cfg.encoder_freeze, **_arch_kwargs(cfg))
        if cfg.bn_momentum is not None:
            set_bn_momentum(model, cfg.bn_momentum)
        compile_segmentation_model(model, cfg.loss, cfg.lr, cfg.optimizer, cfg.classes)
    model_path = work_dir / f"model.{cfg.model_format}"
    cbs = build_callbacks(work_dir, model_path, monitor=BEST_MONITOR, mode="max",
                          reduce_lr_patience=cfg.reduce_lr_patience,
                          early_stopping_patience=cfg.early_stopping_patience,
                          tensorboard=cfg.tensorboard and chief, max_train_seconds=cfg.max_train_seconds)
    log.info("training %s on %d images (%d validation), %s strategy with %d replica(s) -> %s",
             run_name(cfg), len(train_seq.image_ids), len(val_seq.image_ids), cfg.strategy,
             strategy.num_replicas_in_sync, run_dir)
    start = time.perf_counter()
    history = model.fit(**_fit_inputs(train_seq, val_seq, cfg, cfg.strategy != "none"),
                        epochs=cfg.epochs, callbacks=cbs.callbacks, verbose=cfg.progress, workers=1)
    train_seconds = time.perf_counter() - start
    if not chief:
        shutil.rmtree(work_dir, ignore_errors=True)
        return {"run_dir": None, "model": None, "metrics": None, "config": config_to_dict(cfg)}
    return _finish_run(run_dir, model_path, cfg, val_coco, history.history, cbs, train_seconds,
                       strategy.num_replicas_in_sync)


def _finish_run(run_dir: Path, model_path: Path, cfg: SegmentationConfig, val_coco, history: dict,
                cbs, train_seconds: float, replicas: int) -> dict:
    """Plot curves, evaluate the best model on validation, write metrics.json and the report."""
    from cococxr.pipelines.engine.runs import write_json
    from cococxr.pipelines.segmentation.evaluate import evaluate_segmentation
    from cococxr.reports import learning_curves_png

    learning_curves_png({k: v for k, v in history.items() if k != "epoch_seconds"}, run_dir / CURVES_FILE)
    stopped = bool(cbs.budget and cbs.budget.stopped)
    metrics = evaluate_segmentation(model_path, val_coco, out=run_dir, overlays=cfg.overlays,
                                    batch_size=cfg.batch_size, progress=False)
    metrics = {
        "name": run_name(cfg), **metrics,
        "seconds_per_epoch": seconds_per_epoch(cbs.timer.seconds, stopped),
        "epochs": len(cbs.timer.seconds), "best_epoch": cbs.saver.best_epoch,
        f"best_{BEST_MONITOR}": cbs.saver.best, "train_seconds": train_seconds,
        "stopped_by_budget": stopped, "strategy": cfg.strategy, "replicas": replicas,
    }
    write_json(run_dir / METRICS_FILE, metrics)
    _write_report(run_dir, cfg, metrics)
    return {"run_dir": str(run_dir), "model": str(model_path), "metrics": metrics,
            "config": config_to_dict(cfg)}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr train segmentation`` (the :class:`SegmentationConfig` schema)."""
    add_config_arguments(parser, SegmentationConfig)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr train segmentation``."""
    from cococxr.pipelines.segmentation.evaluate import format_metrics

    result = train_segmentation(config_from_args(SegmentationConfig, args))
    if result["run_dir"] is None:
        return 0
    print(format_metrics(result["metrics"]))
    print(f"run folder: {result['run_dir']}")
    return 0


__all__ = ["SegmentationConfig", "train_segmentation", "run_name", "mask_classes", "seconds_per_epoch"]
