"""What both Mask R-CNN backends share: the optimizer, the warm-up, and the training record.

:func:`build_optimizer` (AdamW by default, or SGD with momentum 0.9; global
gradient-norm clipping) and a linear warm-up from lr/1000 then a constant learning rate;
:func:`training_stats`, :func:`write_history` (``history.csv``) and
:func:`loss_curves_png` (``loss_curves.png``). torch is passed in by the callers (it is
an optional extra, imported by :func:`~cococxr.pipelines.maskrcnn.model.require_torch`).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cococxr.atomic import atomic_write_bytes, atomic_write_text
from cococxr.pipelines.maskrcnn.config import MaskRCNNConfig


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


def warmup(torch, optimizer, iterations: int):
    """A LambdaLR scheduler: linear warm-up from lr/1000 over ``iterations``, then the constant lr."""
    def factor(step: int) -> float:
        if step >= iterations:
            return 1.0
        return 1e-3 + (1 - 1e-3) * step / iterations

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def write_history(rows: list[dict], path: str | Path) -> None:
    """Write the per-iteration rows as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def loss_curves_png(rows: list[dict], path: str | Path, window: int = 20) -> None:
    """Plot every loss column against the iteration (raw, and a moving mean of ``window``)."""
    names = [k for k in rows[0] if k.startswith("loss")]
    x = np.array([r["iteration"] for r in rows])
    fig = Figure(figsize=(3.4 * len(names), 3))
    axes = fig.subplots(1, len(names), squeeze=False)
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


__all__ = ["build_optimizer", "warmup", "write_history", "loss_curves_png", "training_stats"]
