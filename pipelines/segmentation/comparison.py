"""The table of ``cococxr compare``: one row per model, from ``metrics.json`` files (no TensorFlow here).

Row schema (the keys a compatible ``metrics.json`` carries at its top level; any other
keys are ignored, missing numbers are left blank):

=====================  =====================================================
``name``               row label (required; e.g. ``unet-efficientnetb0``)
``params``             number of model parameters
``seconds_per_epoch``  mean training seconds of an epoch (validation excluded)
``train_seconds``      wall-clock seconds of the whole training
``ms_per_image``       model-only inference time per image, milliseconds
``dice``, ``iou``      mean over validation images, then classes (original size)
``segm_AP``            COCO mask AP@[.5:.95]; ``segm_AP50``, ``segm_AP75`` likewise
``epochs``             epochs trained (optional)
=====================  =====================================================

:func:`write_table` writes the table atomically as ``comparison.md`` and ``comparison.csv``.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from cococxr.atomic import atomic_write_text
from cococxr.errors import ConfigError

ROW_KEYS = ("name", "params", "seconds_per_epoch", "train_seconds", "ms_per_image", "dice", "iou",
            "segm_AP", "segm_AP50", "segm_AP75", "epochs")
HEADERS = {"name": "model", "params": "params", "seconds_per_epoch": "s/epoch", "train_seconds": "train s",
           "ms_per_image": "ms/image", "dice": "Dice", "iou": "IoU", "segm_AP": "AP",
           "segm_AP50": "AP50", "segm_AP75": "AP75", "epochs": "epochs"}
TABLE_MD = "comparison.md"
TABLE_CSV = "comparison.csv"


def comparison_row(metrics: dict, source: str = "metrics") -> dict:
    """Pick the row-schema keys from a metrics dict (see the module docstring)."""
    if not metrics.get("name"):
        raise ConfigError(f"{source}: a comparison row needs a 'name'")
    return {key: metrics.get(key) for key in ROW_KEYS}


def read_extra_row(path: str | Path) -> dict:
    """Read a row from a ``metrics.json`` written by any compatible pipeline."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--extra-rows {path}: cannot read JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--extra-rows {path}: expected a JSON object with the row keys")
    return comparison_row(data, str(path))


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key == "params":
        return f"{value / 1e6:.2f}M"
    if key in ("seconds_per_epoch", "ms_per_image"):
        return f"{value:.1f}"
    if key == "train_seconds":
        return f"{value:.0f}"
    if key == "epochs":  # fractional for iteration-based trainers (Mask R-CNN)
        return f"{value:g}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(HEADERS[k] for k in ROW_KEYS) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(ROW_KEYS) - 1)) + "|"]
    lines += ["| " + " | ".join(_cell(k, row.get(k)) for k in ROW_KEYS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``comparison.md`` and ``comparison.csv`` atomically; returns their paths."""
    out_dir = Path(out_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ROW_KEYS), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in ROW_KEYS} for row in rows)
    atomic_write_text(out_dir / TABLE_CSV, buffer.getvalue())
    atomic_write_text(out_dir / TABLE_MD, format_markdown(rows))
    return out_dir / TABLE_MD, out_dir / TABLE_CSV


def tabulate(extra_rows: list[str], out) -> int:
    """``compare --extra-rows ...`` without backbones: print (and with ``--out`` write) the table; returns 0."""
    if not extra_rows:
        raise ConfigError("compare needs --backbones to train, or --extra-rows to tabulate existing runs")
    rows = [read_extra_row(p) for p in extra_rows]
    print(format_markdown(rows))
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        md, csv_path = write_table(rows, out)
        print(f"-> {md}, {csv_path}")
    return 0


__all__ = ["ROW_KEYS", "HEADERS", "TABLE_MD", "TABLE_CSV", "comparison_row", "read_extra_row", "format_markdown",
           "write_table", "tabulate"]
