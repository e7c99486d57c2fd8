"""Distribution strategies of the training pipelines (``--strategy``).

:data:`STRATEGIES` names them without TensorFlow (the config schemas list them as
choices); :func:`make_strategy` builds one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cococxr.errors import ConfigError

STRATEGIES = ("none", "mirrored", "multiworker")


def make_strategy(name: str = "none", devices: list[str] | None = None):
    """Return a ``tf.distribute`` strategy.

    Args:
        name: ``"none"`` (the default strategy: one device), ``"mirrored"``
            (``MirroredStrategy``: synchronous data parallelism over the local GPUs, or
            over the logical CPU devices when there is no GPU) or ``"multiworker"``
            (``MultiWorkerMirroredStrategy``: several machines or processes, described
            by the ``TF_CONFIG`` environment variable).
        devices: devices for ``"mirrored"`` (default: every GPU, else every logical CPU).

    Returns:
        The strategy. ``"multiworker"`` must be created before TensorFlow runs any
        operation in the process (TensorFlow's rule for collective ops).
    """
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    from cococxr._tf import tf  # deferred: TensorFlow; STRATEGIES is read by the light config schemas

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if not os.environ.get("TF_CONFIG"):
        raise ConfigError("strategy 'multiworker' needs the TF_CONFIG environment variable "
                          "(cluster addresses and this worker's task); see docs/segmentation.md")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """True for the worker that writes the run folder (always True without multiworker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    cluster = resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id or 0) == 0


def worker_dir(run_dir: Path, chief: bool) -> Path:
    """The folder a worker writes into: the run folder for the chief, a temp folder otherwise.

    Every multi-worker process must save the model (saving reads variables with
    collective ops), but only the chief's copy is kept.
    """
    return run_dir if chief else Path(tempfile.mkdtemp(prefix="cococxr-worker-"))


__all__ = ["STRATEGIES", "make_strategy", "is_chief", "worker_dir"]
