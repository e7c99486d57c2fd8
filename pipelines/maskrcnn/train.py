"""``cococxr train maskrcnn``: a Mask R-CNN R50-FPN baseline trained on the same COCO files.

Two backends train the same architecture from random weights (no downloads):

* ``torchvision`` (default; ``pip install 'cococxr[baseline]'``):
  ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` fed by
  :class:`~cococxr.pipelines.maskrcnn.data.CocoMaskRCNNDataset`, trained by the loop here;
* ``detectron2`` (when ``import detectron2`` works): see
  :mod:`cococxr.pipelines.maskrcnn.detectron2`.

Both use :func:`build_optimizer` (AdamW by default, or SGD with momentum 0.9; global
gradient-norm clipping), a linear warm-up from lr/1000 and then a constant learning
rate. The defaults are the recipe docs/results.md reports on cxr-lungs.

Images are resized inside the model so the short side is ``min_size`` and the long side
at most ``max_size``; predictions come back at the original size. The run folder holds
``config.json`` (the resolved config; ``--config`` accepts it), ``model.pt`` (checkpoint:
state_dict, label map, config, training facts; rewritten atomically every
``checkpoint_every`` iterations and at the end), ``history.csv`` (losses per iteration),
``loss_curves.png``, and the validation evaluation of
:func:`~cococxr.pipelines.maskrcnn.evaluate.evaluate_maskrcnn`: ``metrics.json`` (a
``cococxr compare`` row), ``per_image.csv`` and ``overlays/``.
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from cococxr.errors import ConfigError
from cococxr.config import (add_config_arguments, config_from_args, config_to_dict, load_config,
                                      option, save_config)

log = logging.getLogger(__name__)
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


def _clipping(torch, optimizer_class, max_norm: float):
    class Clipped(optimizer_class):
        def step(self, closure=None):
            torch.nn.utils.clip_grad_norm_([p for group in self.param_groups for p in group["params"]], max_norm)
            return super().step(closure)

    return Clipped


def build_optimizer(torch, model, config: MaskRCNNConfig):
    """SGD (momentum 0.9) or AdamW over the trainable parameters (both backends use it).

    With ``config.grad_clip`` its ``step`` first clips the global gradient norm.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer_class, extra = ((torch.optim.AdamW, {}) if config.optimizer == "adamw"
                              else (torch.optim.SGD, {"momentum": 0.9}))
    if config.grad_clip:
        optimizer_class = _clipping(torch, optimizer_class, config.grad_clip)
    return optimizer_class(params, lr=config.lr, weight_decay=config.weight_decay, **extra)


def _warmup(torch, optimizer, iterations: int):
    def factor(step: int) -> float:
        if step >= iterations:
            return 1.0
        return 1e-3 + (1 - 1e-3) * step / iterations

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _batches(loader):
    while True:
        yield from loader


def write_history(rows: list[dict], path: str | Path) -> None:
    """Write the per-iteration rows as CSV, atomically."""
    from cococxr.atomic import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def loss_curves_png(rows: list[dict], path: str | Path, window: int = 20) -> None:
    """Plot every loss column against the iteration (raw, and a moving mean of ``window``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    from cococxr.atomic import atomic_write_bytes

    names = [k for k in rows[0] if k.startswith("loss")]
    x = np.array([r["iteration"] for r in rows])
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names):
        y = np.array([r[name] for r in rows], dtype=float)
        ax.plot(x, y, alpha=0.35, label="iteration")
        if len(y) >= window:
            ax.plot(x[window - 1:], np.convolve(y, np.ones(window) / window, mode="valid"),
                    label=f"mean of {window}")
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def training_stats(seconds: list[float], n_train: int, config: MaskRCNNConfig, stopped: bool) -> dict:
    """Training facts from the seconds of each iteration (the first, a warm-up, left out of the mean)."""
    steady = seconds[1:] if len(seconds) > 1 else seconds
    per_iteration = sum(steady) / len(steady)
    per_epoch_iterations = math.ceil(n_train / config.batch_size)
    return {"iterations": len(seconds), "train_seconds": sum(seconds),
            "seconds_per_iteration": per_iteration,
            "seconds_per_epoch": per_iteration * per_epoch_iterations,
            "epochs": len(seconds) * config.batch_size / n_train, "train_images": n_train,
            "stopped_by_budget": stopped}


def _step(torch, model, optimizer, scheduler, batch, device, iteration: int) -> dict:
    """One optimisation step; returns the loss terms, their sum and the learning rate used."""
    images = [im.to(device) for im in batch[0]]
    targets = [{k: v.to(device) for k, v in t.items()} for t in batch[1]]
    losses = model(images, targets)
    loss = sum(losses.values())
    values = {k: v.item() for k, v in losses.items()}
    if not torch.isfinite(loss):
        raise ConfigError(f"training diverged: the loss is {loss.item()} at iteration {iteration} "
                          f"({values}); lower --lr or --grad-clip")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    return {"loss": sum(values.values()), **values, "lr": lr}


def _fit_torchvision(config: MaskRCNNConfig, run_dir: Path, train_coco, label_map):
    """The training loop; returns ``(model, train_stats)``."""
    from tqdm.auto import tqdm

    from cococxr.pipelines.maskrcnn.data import CocoMaskRCNNDataset, collate
    from cococxr.pipelines.maskrcnn.model import build_maskrcnn, require_torch, resolve_device, save_checkpoint

    torch, _ = require_torch()
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    dataset = CocoMaskRCNNDataset(train_coco, label_map, hflip=config.hflip)
    if not len(dataset):
        raise ConfigError(f"{config.train}: no image has a usable mask annotation (iscrowd 0, non-empty)")
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True,
                                         collate_fn=collate, num_workers=config.workers,
                                         generator=torch.Generator().manual_seed(config.seed))
    model = build_maskrcnn(len(label_map), config.min_size, config.max_size, rois_per_image=config.rois_per_image,
                           proposals_per_image=config.proposals_per_image,
                           detections_per_image=config.detections_per_image).to(device).train()
    optimizer = build_optimizer(torch, model, config)
    scheduler = _warmup(torch, optimizer, config.warmup_iterations)
    rows, seconds, stopped, start = [], [], False, time.perf_counter()
    batches = _batches(loader)
    bar = tqdm(range(1, config.iterations + 1), desc="training", unit="it", disable=not config.progress)
    for iteration in bar:
        tick = time.perf_counter()
        row = _step(torch, model, optimizer, scheduler, next(batches), device, iteration)
        seconds.append(time.perf_counter() - tick)
        rows.append({"iteration": iteration, **row, "seconds": seconds[-1]})
        bar.set_postfix(loss=f"{row['loss']:.3f}")
        stopped = bool(config.max_train_seconds) and time.perf_counter() - start >= config.max_train_seconds
        if stopped or iteration == config.iterations or (config.checkpoint_every
                                                         and iteration % config.checkpoint_every == 0):
            stats = training_stats(seconds, len(dataset), config, stopped)
            save_checkpoint(run_dir / MODEL_FILE, model, label_map, config_to_dict(config), train_stats=stats)
            write_history(rows, run_dir / HISTORY_FILE)
            log.info("iteration %d/%d: loss %.4f, %.2f s/iteration, checkpoint written", iteration,
                     config.iterations, row["loss"], stats["seconds_per_iteration"])
        if stopped:
            log.info("wall-clock budget of %.0f s spent after %d iterations", config.max_train_seconds, iteration)
            break
    bar.close()
    loss_curves_png(rows, run_dir / CURVES_FILE)
    return model.eval(), training_stats(seconds, len(dataset), config, stopped)


def train_maskrcnn(config=None, **overrides) -> dict:
    """Train a Mask R-CNN, evaluate it on the validation file and write its run folder.

    Args:
        config: a :class:`MaskRCNNConfig`, a dict, a YAML/JSON file path, or None.
        **overrides: config fields that win over ``config``.

    Returns:
        ``{"run_dir", "model", "metrics", "config"}`` (``model``: the checkpoint path).

    Raises:
        MissingDependencyError: torch/torchvision (or detectron2 for that backend) is
            not installed; raised before any file is read.
    """
    cfg = load_config(MaskRCNNConfig, config, **overrides)
    check_config(cfg)
    from cococxr.pipelines.maskrcnn.model import require_torch

    require_torch()
    if cfg.backend == "detectron2":
        from cococxr.pipelines.maskrcnn.detectron2 import require_detectron2

        require_detectron2()
    from cococxr.coco import CocoDataset
    from cococxr.pipelines.maskrcnn.labels import LabelMap
    from cococxr.pipelines.engine.runs import create_run_dir

    train_coco, val_coco = CocoDataset(cfg.train, cfg.image_root), CocoDataset(cfg.val, cfg.image_root)
    label_map = LabelMap.from_coco(train_coco)
    run_dir = create_run_dir(cfg.out, run_name(cfg), cfg.runs_dir)
    save_config(cfg, run_dir / CONFIG_FILE)
    log.info("training Mask R-CNN (%s) on %s, classes %s -> %s", cfg.backend, cfg.train,
             ", ".join(label_map.names), run_dir)
    if cfg.backend == "detectron2":
        from cococxr.pipelines.maskrcnn.detectron2 import fit_detectron2

        predictor, stats, evaluator = fit_detectron2(cfg, run_dir, train_coco, label_map)
        stats = {**stats, "detectron2_evaluator": evaluator}
    else:
        from cococxr.pipelines.maskrcnn.evaluate import TorchvisionPredictor

        model, stats = _fit_torchvision(cfg, run_dir, train_coco, label_map)
        predictor = TorchvisionPredictor(model, label_map)
    from cococxr.pipelines.maskrcnn.evaluate import evaluate_predictor

    metrics = evaluate_predictor(predictor, val_coco, out=run_dir, name=run_name(cfg), train_stats=stats,
                                 score_threshold=cfg.score_threshold,
                                 union_score_threshold=cfg.union_score_threshold, overlays=cfg.overlays,
                                 progress=cfg.progress)
    return {"run_dir": str(run_dir), "model": str(run_dir / MODEL_FILE), "metrics": metrics,
            "config": config_to_dict(cfg)}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr train maskrcnn`` (the :class:`MaskRCNNConfig` schema)."""
    add_config_arguments(parser, MaskRCNNConfig)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr train maskrcnn``."""
    from cococxr.pipelines.maskrcnn.evaluate import format_metrics

    result = train_maskrcnn(config_from_args(MaskRCNNConfig, args))
    print(format_metrics(result["metrics"]))
    print(f"run folder: {result['run_dir']}")
    return 0


__all__ = ["BACKENDS", "MaskRCNNConfig", "run_name", "check_config", "build_optimizer", "train_maskrcnn",
           "training_stats", "write_history", "loss_curves_png"]
