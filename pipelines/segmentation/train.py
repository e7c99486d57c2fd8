"""``cococxr train segmentation``: train a segmentation model on COCO files into a run folder.

The settings are a :class:`~cococxr.pipelines.segmentation.config.SegmentationConfig`;
the default recipe (``configs/segmentation.yaml``, every flag left at its default) is the
one docs/results.md reports on cxr-lungs.

The run folder holds ``config.json`` (the resolved config; ``--config`` accepts it),
``model.h5`` (best on validation), ``history.csv``, ``learning_curves.png``,
``metrics.json`` (validation metrics from :func:`evaluate_segmentation` at the original
resolution, plus training facts), ``per_image.csv``, ``overlays/best.png`` and
``overlays/worst.png``, ``report.html`` and ``tensorboard/``.

With ``--strategy mirrored|multiworker`` the data is fed as a ``tf.data.Dataset``
(``CocoSegmentationSequence.as_tf_dataset``) batched at the *global* batch size
(``--batch-size``), which the strategy splits between replicas.

With ``backend="smp"`` :func:`train_segmentation` trains in a child process
(``python -m cococxr train segmentation --backend smp``, see
:mod:`cococxr.pipelines.segmentation.train_smp`): this module has loaded TensorFlow, and
segmentation_models_pytorch cannot be imported after it.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import sys
import time

from cococxr._tf import keras, tf
from cococxr.coco import CocoDataset
from cococxr.config import config_to_dict, load_config, save_config
from cococxr.errors import ConfigError
from cococxr.model_input import ModelInput
from cococxr.models.segmentation import build_segmentation_model, compile_segmentation_model
from cococxr.pipelines.engine.batchnorm import set_bn_momentum
from cococxr.pipelines.engine.callbacks import build_callbacks
from cococxr.pipelines.engine.cards import write_card
from cococxr.pipelines.engine.distribute import is_chief, make_strategy, worker_dir
from cococxr.pipelines.engine.evaluation import format_metrics
from cococxr.pipelines.engine.runs import create_run_dir, read_json
from cococxr.pipelines.segmentation.config import (BEST_MONITOR, CONFIG_FILE, METRICS_FILE, SegmentationConfig,
                                                   check_config, run_name)
from cococxr.pipelines.segmentation.finish import finish_run
from cococxr.sequences import CocoSegmentationSequence

log = logging.getLogger(__name__)


def mask_classes(coco) -> list[str]:
    """Names of the categories that have segmentation annotations, in file order."""
    used = {a.get("category_id") for a in coco.anns.values() if "segmentation" in a}
    return [cat["name"] for cat_id, cat in coco.cats.items() if cat_id in used]


def _arch_kwargs(config: SegmentationConfig) -> dict:
    if config.arch != "plain_unet":
        return {}
    if not config.filters:
        raise ConfigError("plain_unet needs at least one filters entry")
    return {"filters": tuple(config.filters)}


def _sequences(config: SegmentationConfig, train_coco, val_coco, classes: list[str]):
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
    options = tf.data.Options()
    # Items come from a Python generator (no files to shard): every worker builds the
    # batches and keeps its share of each global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = train_seq.as_tf_dataset().repeat().with_options(options)
    val = val_seq.as_tf_dataset().repeat().with_options(options)
    return dict(x=train, validation_data=val, steps_per_epoch=steps, validation_steps=val_steps)


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
    check_config(cfg)
    if cfg.backend == "smp":
        return _train_in_child(cfg)
    strategy = make_strategy(cfg.strategy)  # first: multiworker must precede any TF op
    chief = is_chief(strategy)
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
    write_card(model_path, "segmentation", cfg.classes,
               ModelInput(cfg.input_size, cfg.channels, cfg.equalize, cfg.preprocessing),
               arch=cfg.arch, backbone=cfg.backbone)
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
    return finish_run(run_dir, model_path, cfg, val_coco, history.history, epoch_seconds=cbs.timer.seconds,
                      stopped=bool(cbs.budget and cbs.budget.stopped), best_epoch=cbs.saver.best_epoch,
                      best=cbs.saver.best, train_seconds=train_seconds, replicas=strategy.num_replicas_in_sync)


def _train_in_child(cfg: SegmentationConfig) -> dict:
    """Run an smp training as ``python -m cococxr train segmentation`` and read its run folder."""
    run_dir = create_run_dir(cfg.out, run_name(cfg), cfg.runs_dir)
    cfg = dataclasses.replace(cfg, out=str(run_dir))
    save_config(cfg, run_dir / CONFIG_FILE)
    done = subprocess.run([sys.executable, "-m", "cococxr", "train", "segmentation", "--config",
                           str(run_dir / CONFIG_FILE)], stdout=None if cfg.progress else subprocess.DEVNULL)
    if done.returncode != 0:
        raise ConfigError(f"smp training of {run_name(cfg)} failed (exit {done.returncode}; its messages are above)")
    return {"run_dir": str(run_dir), "model": str(run_dir / "model.pt"),
            "metrics": read_json(run_dir / METRICS_FILE), "config": config_to_dict(cfg)}


def main(config: SegmentationConfig) -> int:
    """Train with a resolved config and print the summary (``cococxr train segmentation``)."""
    result = train_segmentation(config)
    if result["run_dir"] is None:
        return 0
    print(format_metrics(result["metrics"]))
    print(f"run folder: {result['run_dir']}")
    return 0


__all__ = ["train_segmentation", "mask_classes", "main"]
