"""Run folders and the JSON and CSV files in them.

A run folder (``runs/<name>-<YYYYmmdd-HHMMSS>`` or the ``--out`` folder) holds what a
training run leaves behind: ``config.json`` (the resolved config), the best model,
``history.csv``, ``metrics.json``, plots and ``tensorboard/`` logs. JSON files are
written atomically. The callbacks that fill it are in
:mod:`cococxr.pipelines.engine.callbacks`, the distribution strategies in
:mod:`cococxr.pipelines.engine.distribute`.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from cococxr.atomic import atomic_write_json

HISTORY_FILE = "history.csv"
TENSORBOARD_DIR = "tensorboard"


def create_run_dir(out: str | os.PathLike | None = None, name: str = "run",
                   runs_dir: str | os.PathLike = "runs") -> Path:
    """Create and return the run folder.

    Args:
        out: use this folder (created if missing; existing files are overwritten).
        name: run name, used when ``out`` is None.
        runs_dir: parent of timestamped run folders.

    Returns:
        ``out``, or a new ``runs_dir/<name>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... appended
        when two runs start within the same second).
    """
    if out is not None:
        path = Path(out)
        path.mkdir(parents=True, exist_ok=True)
        return path
    stem = Path(runs_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = stem, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = stem.with_name(f"{stem.name}-{n}")


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths and tuples to JSON types; NaN and inf become None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` (see :func:`to_jsonable`) as indented JSON, atomically."""
    atomic_write_json(path, to_jsonable(obj), indent=2)
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_history_csv(path: str | os.PathLike) -> dict[str, list[float]]:
    """Read a ``history.csv`` written by Keras' CSVLogger into ``{column: [values]}``."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns = rows[0].keys() if rows else []
    return {c: [float(r[c]) if r[c] not in ("", None) else math.nan for r in rows] for c in columns}


__all__ = [
    "HISTORY_FILE",
    "TENSORBOARD_DIR",
    "create_run_dir",
    "to_jsonable",
    "write_json",
    "read_json",
    "read_history_csv",
]
