"""Run the converters' per-file work on a Dask distributed cluster, in shards.

Every converter plans its work on the calling process (which files, which rows), maps
one top-level function over the items (:func:`cococxr.converters.common.parallel_map`)
and numbers the results in input order. Inside :func:`dask_engine`, that map sends
contiguous shards of the items to the cluster's workers as tasks and gathers the results
in shard order, so the written COCO file is byte-identical to a one-process run. The
workers must import the same cococxr and see the input (and output) files at the same
paths: one machine's LocalCluster, or a cluster on a shared file system.

Example:
    >>> from dask.distributed import LocalCluster
    >>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, dask_engine(cluster.scheduler_address):
    ...     convert_rle_csv("train.csv", out="train.json", preset="uw-madison")

On the command line: ``cococxr --dask-scheduler tcp://HOST:8786 convert rle-csv ...``
(or ``COCOCXR_DASK_SCHEDULER``).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
from typing import Callable, Iterator, Sequence

from tqdm.auto import tqdm

from cococxr.errors import ConfigError

SCHEDULER_ENV = "COCOCXR_DASK_SCHEDULER"
SHARDS_PER_THREAD = 4  # a few shards per worker thread: balanced load, little scheduling overhead

_client: contextvars.ContextVar = contextvars.ContextVar("cococxr_dask_client", default=None)


def import_distributed():
    """``dask.distributed``, or a ConfigError naming the extra to install."""
    try:
        import dask.distributed as distributed  # deferred: optional, heavy
    except ImportError as exc:
        raise ConfigError("running on a Dask cluster needs dask.distributed: "
                          "pip install 'cococxr[dask]'") from exc
    return distributed


@contextlib.contextmanager
def dask_engine(scheduler) -> Iterator:
    """Make the converters inside the block run their per-file work on a Dask cluster.

    Args:
        scheduler: a scheduler address (``tcp://host:8786``) or a ``dask.distributed.Client``
            (which the block uses and leaves open).

    Yields:
        The client.
    """
    distributed = import_distributed()
    own = not isinstance(scheduler, distributed.Client)
    try:
        client = distributed.Client(scheduler, set_as_default=False) if own else scheduler
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from exc
    token = _client.set(client)
    try:
        yield client
    finally:
        _client.reset(token)
        if own:
            client.close()


@contextlib.contextmanager
def engine_from_environment(scheduler: str | None = None) -> Iterator:
    """:func:`dask_engine` for ``scheduler`` (or ``COCOCXR_DASK_SCHEDULER``); no-op when neither is set."""
    address = scheduler or os.environ.get(SCHEDULER_ENV)
    if not address:
        yield None
        return
    with dask_engine(address) as client:
        yield client


def active_client():
    """The client of the enclosing :func:`dask_engine`, or None."""
    return _client.get()


def shard_bounds(n_items: int, n_threads: int, min_size: int = 1) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` slices covering ``range(n_items)``, about equal in size.

    Args:
        n_items: number of items.
        n_threads: worker threads of the cluster (sets the number of shards).
        min_size: smallest shard (fewer, larger shards for short inputs).
    """
    if n_items <= 0:
        return []
    shards = max(1, min(math.ceil(n_items / max(1, min_size)), max(1, n_threads) * SHARDS_PER_THREAD))
    size = math.ceil(n_items / shards)
    return [(start, min(start + size, n_items)) for start in range(0, n_items, size)]


def _apply_shard(func: Callable, items: Sequence) -> list:
    return [func(item) for item in items]


def dask_map(client, func: Callable, items: Sequence, desc: str = "converting", min_shard: int = 8,
             progress: bool = True) -> list:
    """``[func(item) for item in items]`` computed in shards on the cluster, in input order.

    The first failing shard's exception propagates (with the remote traceback) and the
    other shards are cancelled.
    """
    distributed = import_distributed()
    items = list(items)
    n_threads = sum(client.nthreads().values()) or 1
    bounds = shard_bounds(len(items), n_threads, min_shard)
    futures = [client.submit(_apply_shard, func, items[start:stop], pure=False)
               for start, stop in bounds]
    size_of = {future.key: stop - start for future, (start, stop) in zip(futures, bounds)}
    try:
        with tqdm(total=len(items), desc=desc, unit="img", disable=not progress or len(items) < 50) as bar:
            for future in distributed.as_completed(futures, loop=client.loop):
                if future.status == "error":
                    future.result()  # raises the worker's exception
                bar.update(size_of[future.key])
        return [result for shard in client.gather(futures) for result in shard]
    finally:
        client.cancel([future for future in futures if not future.done()])


__all__ = ["SCHEDULER_ENV", "dask_engine", "engine_from_environment", "active_client", "shard_bounds",
           "dask_map", "import_distributed"]
