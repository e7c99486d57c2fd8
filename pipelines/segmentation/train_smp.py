"""``cococxr train segmentation --backend smp``: a segmentation_models_pytorch model trained with PyTorch.

The same config, data, run folder and model card as the tf-keras backend, so ``evaluate``,
``predict``, ``compare`` and the app read both alike:

* the batches are the framework-free core's (:class:`cococxr.batches.SegmentationBatches`,
  through :func:`cococxr.torch_data.make_loader`): the images, masks, augmentation and
  shuffling a tf-keras run of the same config and seed sees;
* the losses are segmentation_models' by name (``bce_dice`` = binary cross-entropy + soft
  Dice, both on sigmoid outputs; ``focal``, ``jaccard``...), from smp's ``losses``;
* an epoch logs ``loss``, ``f1-score`` (Dice of the thresholded masks, 0.5) and
  ``iou_score``, over the pixels of the whole epoch and averaged over classes, and their
  ``val_`` twins; the learning rate is halved after ``reduce_lr_patience`` epochs
  without a lower ``val_loss`` (down to 1e-6), training stops after
  ``early_stopping_patience`` such epochs or when ``max_train_seconds`` is spent;
* the model with the best ``val_f1-score`` is saved as TorchScript ``model.pt``
  (:func:`cococxr.models.torchscript.save_torchscript`: Keras layout in and out, sigmoid
  applied), beside its card ``model.cococxr.json`` (``details.backend = "smp"``).

TensorBoard logs are not written by this backend. It must run in a process that has not
imported TensorFlow (see :mod:`cococxr.models.smp_models`); ``cococxr train segmentation``
is one, and :func:`cococxr.pipelines.segmentation.train.train_segmentation` starts one.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import logging
import time
from pathlib import Path

import numpy as np
import torch

from cococxr.atomic import atomic_write_text
from cococxr.batches import SegmentationBatches
from cococxr.coco import CocoDataset
from cococxr.config import load_config, save_config
from cococxr.errors import ConfigError
from cococxr.model_input import ModelInput
from cococxr.models.smp_models import build_smp_model, import_smp
from cococxr.models.torchscript import save_torchscript
from cococxr.pipelines.engine.cards import write_card
from cococxr.pipelines.engine.evaluation import format_metrics
from cococxr.pipelines.engine.runs import HISTORY_FILE, create_run_dir
from cococxr.pipelines.segmentation.config import CONFIG_FILE, SegmentationConfig, check_config, run_name
from cococxr.pipelines.segmentation.finish import finish_run
from cococxr.torch_data import make_loader

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
MIN_LR = 1e-6
THRESHOLD = 0.5


def make_loss(name: str):
    """``fn(logits, targets)`` for a loss name of :data:`~cococxr.pipelines.segmentation.config.SMP_LOSSES`."""
    losses = import_smp().losses
    bce = torch.nn.BCEWithLogitsLoss()
    dice = losses.DiceLoss("multilabel", from_logits=True)
    parts = {"bce": [bce], "dice": [dice], "bce_dice": [bce, dice],
             "focal": [losses.FocalLoss("multilabel")],
             "focal_dice": [losses.FocalLoss("multilabel"), dice],
             "jaccard": [losses.JaccardLoss("multilabel", from_logits=True)]}[name]
    return lambda logits, targets: sum(part(logits, targets) for part in parts)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The torch optimizer of that name (defaults as Keras': Adam-family eps 1e-7)."""
    return {"adam": lambda: torch.optim.Adam(params, lr=lr, eps=1e-7),
            "adamw": lambda: torch.optim.AdamW(params, lr=lr, eps=1e-7),
            "nadam": lambda: torch.optim.NAdam(params, lr=lr, eps=1e-7),
            "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7),
            "sgd": lambda: torch.optim.SGD(params, lr=lr)}[name]()


class OverlapCounts:
    """Per-class true/false positive and false negative pixel counts of thresholded masks."""

    def __init__(self, classes: int):
        self.tp, self.fp, self.fn = (np.zeros(classes) for _ in range(3))

    def add(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Count a batch of ``(B, K, H, W)`` logits against 0/1 targets."""
        pred = torch.sigmoid(logits) > THRESHOLD
        truth = targets > 0.5
        dims = (0, 2, 3)
        self.tp += (pred & truth).sum(dims).double().numpy()
        self.fp += (pred & ~truth).sum(dims).double().numpy()
        self.fn += (~pred & truth).sum(dims).double().numpy()

    def scores(self) -> dict:
        """``f1-score`` (Dice) and ``iou_score``, each averaged over classes (an empty class scores 1)."""
        eps = 1e-7
        dice = (2 * self.tp + eps) / (2 * self.tp + self.fp + self.fn + eps)
        iou = (self.tp + eps) / (self.tp + self.fp + self.fn + eps)
        return {"f1-score": float(dice.mean()), "iou_score": float(iou.mean())}


def _passes(loader, steps: int | None):
    """Batches of ``loader``: one pass, or exactly ``steps`` batches over as many passes as needed."""
    if steps is None:
        yield from loader
        return
    done = 0
    while done < steps:
        for batch in loader:
            yield batch
            done += 1
            if done == steps:
                return


def _write_history(path: Path, history: dict) -> None:
    keys = sorted(history)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for epoch in range(len(history[keys[0]])):
        writer.writerow([epoch, *(history[k][epoch] for k in keys)])
    atomic_write_text(path, buffer.getvalue())


def _batches(cfg: SegmentationConfig, train_coco, val_coco):
    common = dict(batch_size=cfg.batch_size, input_size=cfg.input_size, channels=cfg.channels,
                  equalize=cfg.equalize, seed=cfg.seed)
    train = SegmentationBatches(train_coco, cfg.classes, augment=cfg.augment, shuffle=True, **common)
    val = SegmentationBatches(val_coco, cfg.classes, augment=None, shuffle=False, **common)
    return train, val


def _build(cfg: SegmentationConfig) -> torch.nn.Module:
    weights = cfg.encoder_weights
    if weights is not None and str(weights).lower().endswith((".h5", ".hdf5")):
        raise ConfigError("backend smp takes encoder_weights None or an smp weight name (imagenet...), "
                          f"not a Keras weights file: {weights}")
    model = build_smp_model(cfg.arch, cfg.backbone, len(cfg.classes), cfg.channels, weights)
    if cfg.encoder_freeze:
        for param in model.encoder.parameters():
            param.requires_grad = False
    if cfg.bn_momentum is not None:  # Keras' momentum m keeps m of the old statistics; torch's keeps 1 - m
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = 1.0 - cfg.bn_momentum
    return model


class _Trainer:
    """One run's model, optimizer, schedule and history."""

    def __init__(self, cfg: SegmentationConfig, model: torch.nn.Module):
        self.cfg, self.model = cfg, model
        self.loss = make_loss(cfg.loss)
        self.optimizer = make_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad], cfg.lr)
        self.history: dict[str, list] = {}
        self.epoch_seconds: list[float] = []
        self.start = time.perf_counter()
        self.stopped = False

    def _over_budget(self) -> bool:
        budget = self.cfg.max_train_seconds
        return bool(budget) and time.perf_counter() - self.start >= budget

    def train_epoch(self, loader) -> dict:
        self.model.train()
        counts, total, batches = OverlapCounts(len(self.cfg.classes)), 0.0, 0
        began = time.perf_counter()
        for images, masks in _passes(loader, self.cfg.steps_per_epoch):
            self.optimizer.zero_grad()
            logits = self.model(images)
            loss = self.loss(logits, masks)
            loss.backward()
            self.optimizer.step()
            total, batches = total + loss.item(), batches + 1
            counts.add(logits.detach(), masks)
            if self._over_budget():
                self.stopped = True
                break
        self.epoch_seconds.append(time.perf_counter() - began)
        return {"loss": total / max(batches, 1), **counts.scores()}

    def validate(self, loader) -> dict:
        self.model.eval()
        counts, total, batches = OverlapCounts(len(self.cfg.classes)), 0.0, 0
        with torch.no_grad():
            for images, masks in _passes(loader, self.cfg.validation_steps):
                logits = self.model(images)
                total, batches = total + self.loss(logits, masks).item(), batches + 1
                counts.add(logits, masks)
        return {f"val_{k}": v for k, v in {"loss": total / max(batches, 1), **counts.scores()}.items()}

    def log(self, logs: dict) -> None:
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        logs["epoch_seconds"] = self.epoch_seconds[-1]
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


def train_segmentation_smp(config=None, **overrides) -> dict:
    """Train an smp model and write its run folder (call it in a process without TensorFlow).

    Args:
        config: a :class:`SegmentationConfig`, a dict, a YAML/JSON file path, or None.
        **overrides: config fields that win over ``config``; ``backend`` is set to smp.

    Returns:
        ``{"run_dir", "model", "metrics", "config"}``.
    """
    cfg = load_config(SegmentationConfig, config, **{**overrides, "backend": "smp"})
    check_config(cfg)
    import_smp()  # first: refuses at once in a process that loaded TensorFlow
    torch.manual_seed(cfg.seed)
    train_coco, val_coco = CocoDataset(cfg.train, cfg.image_root), CocoDataset(cfg.val, cfg.image_root)
    if not cfg.classes:
        used = {a.get("category_id") for a in train_coco.anns.values() if "segmentation" in a}
        cfg = dataclasses.replace(cfg, classes=[c["name"] for i, c in train_coco.cats.items() if i in used])
    if not cfg.classes:
        raise ConfigError(f"{cfg.train}: no category has segmentation annotations")
    train_batches, val_batches = _batches(cfg, train_coco, val_coco)
    model = _build(cfg)
    run_dir = create_run_dir(cfg.out, run_name(cfg), cfg.runs_dir)
    save_config(cfg, run_dir / CONFIG_FILE)
    model_path = run_dir / MODEL_FILE
    write_card(model_path, "segmentation", cfg.classes, ModelInput(cfg.input_size, cfg.channels, cfg.equalize, None),
               arch=cfg.arch, backbone=cfg.backbone, backend="smp", framework="torch", activation="sigmoid")
    trainer = _Trainer(cfg, model)
    schedule = (torch.optim.lr_scheduler.ReduceLROnPlateau(trainer.optimizer, factor=0.5, min_lr=MIN_LR,
                                                           patience=cfg.reduce_lr_patience - 1)
                if cfg.reduce_lr_patience else None)  # torch lowers after patience + 1 bad epochs, Keras after patience
    example = np.zeros((1, cfg.input_size, cfg.input_size, cfg.channels), np.float32)
    train_loader, val_loader = make_loader(train_batches), make_loader(val_batches)
    best, best_epoch, best_loss, waited = None, None, float("inf"), 0
    log.info("training %s (smp) on %d images (%d validation) -> %s", run_name(cfg),
             len(train_batches.image_ids), len(val_batches.image_ids), run_dir)
    for epoch in range(1, cfg.epochs + 1):
        logs = {**trainer.train_epoch(train_loader), **trainer.validate(val_loader)}
        trainer.log(logs)
        if best is None or logs["val_f1-score"] > best:
            best, best_epoch = logs["val_f1-score"], epoch
            save_torchscript(model, model_path, example)
        _write_history(run_dir / HISTORY_FILE, trainer.history)
        if cfg.progress:
            print(f"epoch {epoch}/{cfg.epochs}: " + ", ".join(f"{k} {v:.4g}" for k, v in logs.items()), flush=True)
        if schedule is not None:
            schedule.step(logs["val_loss"])
        waited = 0 if logs["val_loss"] < best_loss else waited + 1
        best_loss = min(best_loss, logs["val_loss"])
        if trainer.stopped or (cfg.early_stopping_patience and waited >= cfg.early_stopping_patience):
            break
    return finish_run(run_dir, model_path, cfg, val_coco, trainer.history, epoch_seconds=trainer.epoch_seconds,
                      stopped=trainer.stopped, best_epoch=best_epoch, best=best,
                      train_seconds=time.perf_counter() - trainer.start)


def main(config: SegmentationConfig) -> int:
    """Train with a resolved config and print the summary (``cococxr train segmentation --backend smp``)."""
    result = train_segmentation_smp(config)
    print(format_metrics(result["metrics"]))
    print(f"run folder: {result['run_dir']}")
    return 0


__all__ = ["MODEL_FILE", "make_loss", "make_optimizer", "OverlapCounts", "train_segmentation_smp", "main"]
