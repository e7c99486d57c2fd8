"""``cococxr train maskrcnn``: a Mask R-CNN R50-FPN baseline trained on the same COCO files.

Two backends train the same architecture from random weights (no downloads):

* ``torchvision`` (default; ``pip install 'cococxr[baseline]'``):
  ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` fed by
  :class:`~cococxr.pipelines.maskrcnn.data.CocoMaskRCNNDataset`, trained by the loop here;
* ``detectron2`` (when ``import detectron2`` works): see
  :mod:`cococxr.pipelines.maskrcnn.detectron2`.

Both use :func:`~cococxr.pipelines.maskrcnn.common.build_optimizer` (AdamW by default,
or SGD with momentum 0.9; global gradient-norm clipping), a linear warm-up from lr/1000
and then a constant learning rate. The settings are a
:class:`~cococxr.pipelines.maskrcnn.config.MaskRCNNConfig`, whose defaults are the recipe
docs/results.md reports on cxr-lungs.

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

import logging
import time
from pathlib import Path

from tqdm.auto import tqdm

from cococxr.coco import CocoDataset
from cococxr.config import config_to_dict, load_config, save_config
from cococxr.errors import ConfigError
from cococxr.pipelines.engine.cards import write_card
from cococxr.pipelines.engine.runs import create_run_dir
from cococxr.pipelines.maskrcnn.common import build_optimizer, loss_curves_png, training_stats, warmup, write_history
from cococxr.pipelines.maskrcnn.config import (CONFIG_FILE, CURVES_FILE, HISTORY_FILE, MODEL_FILE, MaskRCNNConfig,
                                               check_config, run_name)
from cococxr.pipelines.maskrcnn.detectron2 import fit_detectron2, require_detectron2
from cococxr.pipelines.maskrcnn.evaluate import TorchvisionPredictor, evaluate_predictor, format_metrics
from cococxr.pipelines.maskrcnn.labels import LabelMap
from cococxr.pipelines.maskrcnn.model import build_maskrcnn, require_torch, resolve_device, save_checkpoint

log = logging.getLogger(__name__)


def _batches(loader):
    while True:
        yield from loader


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
    torch, _ = require_torch()
    from cococxr.pipelines.maskrcnn.data import CocoMaskRCNNDataset, collate  # deferred: imports torch

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
    scheduler = warmup(torch, optimizer, config.warmup_iterations)
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
    require_torch()
    if cfg.backend == "detectron2":
        require_detectron2()
    train_coco, val_coco = CocoDataset(cfg.train, cfg.image_root), CocoDataset(cfg.val, cfg.image_root)
    label_map = LabelMap.from_coco(train_coco)
    run_dir = create_run_dir(cfg.out, run_name(cfg), cfg.runs_dir)
    save_config(cfg, run_dir / CONFIG_FILE)
    # Mask R-CNN resizes by itself (min_size/max_size): its card records no ModelInput
    write_card(run_dir / MODEL_FILE, "maskrcnn", label_map.names, None, backend=cfg.backend,
               min_size=cfg.min_size, max_size=cfg.max_size)
    log.info("training Mask R-CNN (%s) on %s, classes %s -> %s", cfg.backend, cfg.train,
             ", ".join(label_map.names), run_dir)
    if cfg.backend == "detectron2":
        predictor, stats, evaluator = fit_detectron2(cfg, run_dir, train_coco, label_map)
        stats = {**stats, "detectron2_evaluator": evaluator}
    else:
        model, stats = _fit_torchvision(cfg, run_dir, train_coco, label_map)
        predictor = TorchvisionPredictor(model, label_map)
    metrics = evaluate_predictor(predictor, val_coco, out=run_dir, name=run_name(cfg), train_stats=stats,
                                 score_threshold=cfg.score_threshold,
                                 union_score_threshold=cfg.union_score_threshold, overlays=cfg.overlays,
                                 progress=cfg.progress)
    return {"run_dir": str(run_dir), "model": str(run_dir / MODEL_FILE), "metrics": metrics,
            "config": config_to_dict(cfg)}


def main(config: MaskRCNNConfig) -> int:
    """Train with a resolved config and print the summary (``cococxr train maskrcnn``)."""
    result = train_maskrcnn(config)
    print(format_metrics(result["metrics"]))
    print(f"run folder: {result['run_dir']}")
    return 0


__all__ = ["train_maskrcnn", "main"]
