"""The end of a segmentation training run, for both backends: curves, validation metrics, report.

No TensorFlow here (evaluating a tf-keras model loads it; a TorchScript model does not).
"""
from __future__ import annotations

from pathlib import Path

from cococxr.config import config_to_dict
from cococxr.pipelines.engine.runs import write_json
from cococxr.pipelines.engine.timing import seconds_per_epoch
from cococxr.pipelines.segmentation.config import (BEST_MONITOR, CURVES_FILE, METRICS_FILE, REPORT_FILE,
                                                   SegmentationConfig, run_name)
from cococxr.pipelines.segmentation.evaluate import evaluate_segmentation
from cococxr.reports import HtmlReport, learning_curves_png


def write_report(run_dir: Path, config: SegmentationConfig, metrics: dict) -> None:
    """Write ``report.html``: validation metrics, curves, best and worst overlays, config."""
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


def finish_run(run_dir: Path, model_path: Path, cfg: SegmentationConfig, val_coco, history: dict, *,
               epoch_seconds: list[float], stopped: bool, best_epoch: int | None, best: float | None,
               train_seconds: float, replicas: int = 1) -> dict:
    """Plot curves, evaluate the best model on validation, write ``metrics.json`` and the report.

    Args:
        history: per-epoch values by name (Keras' ``History.history`` layout).
        epoch_seconds: training seconds of each epoch.
        stopped: the wall-clock budget ended training (its last epoch is partial).
        best_epoch, best: the epoch (1-based) and value of the best ``val_f1-score``.

    Returns:
        ``{"run_dir", "model", "metrics", "config"}``.
    """
    learning_curves_png({k: v for k, v in history.items() if k != "epoch_seconds"}, run_dir / CURVES_FILE)
    metrics = evaluate_segmentation(model_path, val_coco, out=run_dir, overlays=cfg.overlays,
                                    batch_size=cfg.batch_size, progress=False)
    metrics = {
        "name": run_name(cfg), **metrics, "backend": cfg.backend,
        "seconds_per_epoch": seconds_per_epoch(epoch_seconds, stopped),
        "epochs": len(epoch_seconds), "best_epoch": best_epoch,
        f"best_{BEST_MONITOR}": best, "train_seconds": train_seconds,
        "stopped_by_budget": stopped, "strategy": cfg.strategy, "replicas": replicas,
    }
    write_json(run_dir / METRICS_FILE, metrics)
    write_report(run_dir, cfg, metrics)
    return {"run_dir": str(run_dir), "model": str(model_path), "metrics": metrics,
            "config": config_to_dict(cfg)}


__all__ = ["finish_run", "write_report"]
