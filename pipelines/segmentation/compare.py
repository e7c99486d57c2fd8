"""``cococxr compare``: train several backbones on one split and budget, tabulate the results.

Every backbone is trained by :func:`train_segmentation` with the same config (files,
seed, epochs, ``--steps-per-epoch``, ``--max-train-seconds``...) except the backbone, in
``OUT/<arch>-<backbone>/``; ``arch`` is ``--arch`` when it names a backbone architecture
(unet, fpn, linknet, pspnet), else ``unet``. The entry ``plain_unet`` in ``--backbones``
trains the from-scratch U-Net instead. An entry ``smp:ENCODER`` trains that
segmentation_models_pytorch encoder with the smp backend (``--backend smp``: same data,
seed and budget, in its own process, as ``OUT/smp-<arch>-<encoder>/``), so sm and smp
backbones meet in one table, scored by the same evaluation on the same files; ``sm:NAME``
names a segmentation_models backbone, and an entry without a prefix takes ``--backend``. Rows from other runs (a Mask R-CNN's
``metrics.json``, earlier U-Nets) join the table with ``--extra-rows``; with
``--extra-rows`` and no ``--backbones``, compare only tabulates them, training nothing.

Rows follow the schema of :mod:`cococxr.pipelines.segmentation.comparison`. The table is
written atomically as ``comparison.md`` and ``comparison.csv`` in the out folder after
every run, so a crash keeps the rows done so far.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from cococxr.config import load_config, save_config
from cococxr.errors import ConfigError
from cococxr.models.registry import BACKENDS
from cococxr.pipelines.segmentation.comparison import (TABLE_CSV, TABLE_MD, comparison_row, format_markdown,
                                                       read_extra_row, write_table)
from cococxr.pipelines.segmentation.config import SegmentationConfig
from cococxr.pipelines.segmentation.train import train_segmentation

log = logging.getLogger(__name__)


def _run_config(base, entry: str, out_dir: Path):
    backend, _, rest = entry.partition(":")
    backend, entry = (backend, rest) if rest and backend in BACKENDS else (base.backend, entry)
    if entry == "plain_unet" and backend == "sm":
        arch, backbone = "plain_unet", base.backbone
    else:  # a backbone needs a backbone architecture: unet unless --arch names another
        arch, backbone = (base.arch if base.arch != "plain_unet" else "unet"), entry
    name = arch if arch == "plain_unet" else f"{arch}-{backbone}"
    name = f"smp-{name}" if backend == "smp" else name
    return dataclasses.replace(base, backend=backend, arch=arch, backbone=backbone, name=name,
                               out=str(out_dir / name))


def compare_backbones(config, backbones: list[str], out, extra_rows: list = ()) -> list[dict]:
    """Train one model per backbone with the same settings and write the comparison table.

    Args:
        config: base :class:`~cococxr.pipelines.segmentation.train.SegmentationConfig` (or
            dict/file); its ``backbone``, ``name`` and ``out`` are set per run.
        backbones: backbone names, ``plain_unet``, or ``smp:<encoder>`` for the smp backend.
        out: folder for the runs and the table.
        extra_rows: ``metrics.json`` paths of other runs to add as rows.

    Returns:
        The rows, backbones first (a failed run gives a row with only its name), then
        the extra rows.
    """
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


def main(config: SegmentationConfig, backbones: list[str], extra_rows: list[str]) -> int:
    """Train and tabulate ``backbones`` with a resolved config (``cococxr compare --backbones ...``)."""
    rows = compare_backbones(config, backbones, config.out, extra_rows)
    print(format_markdown(rows))
    print(f"-> {Path(config.out) / TABLE_MD}, {Path(config.out) / TABLE_CSV}")
    return 1 if any(str(row["name"]).endswith("(failed)") for row in rows) else 0


__all__ = ["compare_backbones", "main"]
