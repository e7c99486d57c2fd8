"""``cococxr compare``: train several backbones on one split and budget, tabulate the results.

Every backbone is trained by :func:`train_segmentation` with the same config (files,
seed, epochs, ``--steps-per-epoch``, ``--max-train-seconds``...) except the backbone, in
``OUT/<arch>-<backbone>/``; ``arch`` is ``--arch`` when it names a backbone architecture
(unet, fpn, linknet, pspnet), else ``unet``. The entry ``plain_unet`` in ``--backbones``
trains the from-scratch U-Net instead. Rows from other runs (a Mask R-CNN's
``metrics.json``, earlier U-Nets) join the table with ``--extra-rows``; with
``--extra-rows`` and no ``--backbones``, compare only tabulates them, training nothing.

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

The table is written atomically as ``comparison.md`` and ``comparison.csv`` in the out
folder after every run, so a crash keeps the rows done so far.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
from pathlib import Path

from cococxr.errors import ConfigError
from cococxr.config import add_config_arguments, config_from_args, load_config, save_config

log = logging.getLogger(__name__)
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
    from cococxr.atomic import atomic_write_text

    out_dir = Path(out_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ROW_KEYS), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in ROW_KEYS} for row in rows)
    atomic_write_text(out_dir / TABLE_CSV, buffer.getvalue())
    atomic_write_text(out_dir / TABLE_MD, format_markdown(rows))
    return out_dir / TABLE_MD, out_dir / TABLE_CSV


def _run_config(base, entry: str, out_dir: Path):
    if entry == "plain_unet":
        arch, backbone = "plain_unet", base.backbone
    else:  # a backbone needs a backbone architecture: unet unless --arch names another
        arch, backbone = (base.arch if base.arch != "plain_unet" else "unet"), entry
    name = arch if arch == "plain_unet" else f"{arch}-{backbone}"
    return dataclasses.replace(base, arch=arch, backbone=backbone, name=name, out=str(out_dir / name))


def compare_backbones(config, backbones: list[str], out, extra_rows: list = ()) -> list[dict]:
    """Train one model per backbone with the same settings and write the comparison table.

    Args:
        config: base :class:`~cococxr.pipelines.segmentation.train.SegmentationConfig` (or
            dict/file); its ``backbone``, ``name`` and ``out`` are set per run.
        backbones: backbone names, or ``plain_unet``.
        out: folder for the runs and the table.
        extra_rows: ``metrics.json`` paths of other runs to add as rows.

    Returns:
        The rows, backbones first (a failed run gives a row with only its name), then
        the extra rows.
    """
    from cococxr.pipelines.segmentation.train import SegmentationConfig, train_segmentation

    if not backbones:
        raise ConfigError("compare needs at least one backbone")
    base = load_config(SegmentationConfig, config)
    if base.strategy == "multiworker":
        raise ConfigError("compare runs its trainings one after another in this process; "
                          "use strategy none or mirrored")
    extras = [read_extra_row(p) for p in extra_rows]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(base, out_dir / "config.json")
    rows: list[dict] = []
    for entry in backbones:
        cfg = _run_config(base, entry, out_dir)
        log.info("compare: training %s", cfg.name)
        try:
            rows.append(comparison_row(train_segmentation(cfg)["metrics"]))
        except Exception:  # one failed backbone must not lose the others' results
            log.exception("compare: %s failed", cfg.name)
            rows.append({"name": f"{cfg.name} (failed)"})
        write_table(rows + extras, out_dir)
    write_table(rows + extras, out_dir)
    return rows + extras


def _tabulate_only(extra_rows: list[str], out) -> int:
    """``compare --extra-rows ...`` without backbones: print (and with ``--out`` write) the table."""
    if not extra_rows:
        raise ConfigError("compare needs --backbones to train, or --extra-rows to tabulate existing runs")
    rows = [read_extra_row(p) for p in extra_rows]
    print(format_markdown(rows))
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        md, csv_path = write_table(rows, out)
        print(f"-> {md}, {csv_path}")
    return 0


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr compare``: the training flags plus the backbones and extra rows."""
    from cococxr.pipelines.segmentation.train import SegmentationConfig

    parser.add_argument("--backbones", default="",
                        help="comma-separated backbones, e.g. efficientnetb0,resnet34,mobilenetv2 "
                             "(plain_unet: the from-scratch U-Net); leave out to only tabulate --extra-rows")
    parser.add_argument("--extra-rows", nargs="+", default=[], metavar="METRICS_JSON",
                        help="metrics.json files of other runs (U-Net, Mask R-CNN) to add as rows "
                             "(see docs/segmentation.md)")
    add_config_arguments(parser, SegmentationConfig)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr compare``."""
    from cococxr.pipelines.segmentation.train import SegmentationConfig

    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    if not backbones:
        return _tabulate_only(args.extra_rows, getattr(args, "out", None))
    config = config_from_args(SegmentationConfig, args)
    if config.out is None:
        raise ConfigError("compare needs --out (the folder for the runs and the table)")
    rows = compare_backbones(config, backbones, config.out, args.extra_rows)
    print(format_markdown(rows))
    print(f"-> {Path(config.out) / TABLE_MD}, {Path(config.out) / TABLE_CSV}")
    return 1 if any(str(row["name"]).endswith("(failed)") for row in rows) else 0


__all__ = ["ROW_KEYS", "comparison_row", "read_extra_row", "format_markdown", "write_table",
           "compare_backbones"]
