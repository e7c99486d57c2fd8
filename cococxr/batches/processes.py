"""Batches loaded by worker processes into shared memory, in order, epoch after epoch.

Threads share one interpreter: the Python parts of every item (bookkeeping, mask
decoding, seeding) take turns on one lock, so two loader threads fall short of two cores.
A :class:`ProcessLoader` runs ``workers`` processes that each load whole batches with
:meth:`~cococxr.batches.CocoBatches.batch_at` and write them straight into
preallocated shared-memory slots; the consumer reads a finished slot in place, and
nothing is pickled but the batch key. Workers run ahead into the
next epoch, so an epoch boundary does not drain the pipeline: the epoch order is a pure
function of ``(seed, epoch)``.

Framework-free (numpy only); :class:`cococxr.sequences.ProcessSequence` wraps it for
tf-keras ``fit``::

    from cococxr.batches import SegmentationBatches, ProcessLoader
    batches = SegmentationBatches("train.json", ["lung"], batch_size=16, input_size=256)
    with ProcessLoader(batches, workers=2) as loader:
        for epoch in range(10):
            for images, masks in loader:   # one pass = one epoch
                ...
"""
from __future__ import annotations

import collections
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
import warnings
import weakref

import numpy as np

from cococxr.batches.base import CocoBatches, positive_int
from cococxr.errors import CococxrError, ConfigError

_ALIGN = 64  # bytes: each array of a slot starts on a cache line
_POLL_SECONDS = 0.5  # how often a waiting consumer checks that its workers are alive


class WorkerError(CococxrError, RuntimeError):
    """A loader worker process died (killed, out of memory...) or could not start."""


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its ``__cause__``."""

    def __str__(self) -> str:
        return self.args[0]


def _framework_free(batches: CocoBatches) -> CocoBatches:
    """``batches`` itself, or for a tf-keras Sequence of :mod:`cococxr.sequences` a copy as its numpy base class.

    A spawned worker then unpickles it without importing TensorFlow for it.
    """
    cls = type(batches)
    if cls.__module__ != "cococxr.sequences":
        return batches
    base = next(c for c in cls.__mro__ if c.__module__.startswith("cococxr.batches."))
    plain = base.__new__(base)
    plain.__setstate__(batches.__getstate__())
    return plain


class _Layout:
    """Where each array of one batch lies in a slot: ``(dtype, item shape, byte offset)``."""

    def __init__(self, specs: list[tuple], batch_size: int):
        self.parts, offset = [], 0
        for dtype, shape in specs:
            dtype = np.dtype(dtype)
            self.parts.append((dtype, tuple(shape), offset))
            nbytes = batch_size * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            offset += -(-nbytes // _ALIGN) * _ALIGN
        self.nbytes = max(offset, _ALIGN)

    def views(self, buffer, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """The whole slot as bytes, and the arrays of a batch of ``n`` items as views of it."""
        whole = np.frombuffer(buffer, np.uint8)
        arrays = []
        for dtype, shape, offset in self.parts:
            count = n * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            arrays.append(whole[offset:offset + count].view(dtype).reshape((n, *shape)))
        return whole, arrays


def _error_delta(batches: CocoBatches, sent: tuple) -> tuple:
    """``(new failures, new skips)`` of ``on_error="skip"`` since ``sent``, and the new ``sent``."""
    report = batches.error_report
    failed = {k: v for k, v in report["failed"].items() if k not in sent[0]}
    return (failed, report["skipped"] - sent[1]), (sent[0] | set(failed), report["skipped"])


def _worker(batches: CocoBatches, layout: _Layout, slots: list, tasks, done, parent_pid: int | None,
            forked: bool) -> None:
    """Worker body: load each ``(slot, epoch, index)`` task into its slot; ``None`` ends it.

    ``parent_pid`` None: the parent is a fork server (which ends with the loader's process).
    ``forked``: made by plain fork, so OpenCV's thread pool is the parent's and is left alone.
    """
    from cococxr.workers import die_with_parent

    die_with_parent(os.getppid() if parent_pid is None else parent_pid)
    if not forked:
        import cv2  # one OpenCV thread per worker: the workers already fill the cores

        cv2.setNumThreads(1)  # never in a forked child: it waits for the parent's pool threads, for ever
    sent = (set(), 0)
    while True:
        task = tasks.get()
        if task is None:
            return
        slot, epoch, index = task
        try:
            n = len(batches._epoch_batches(epoch)[index])
            views = layout.views(slots[slot], n)[1]
            arrays = batches.batch_at(epoch, index, out=views)
            arrays = (arrays,) if batches.subset == "predict" else arrays
            for view, array in zip(views, arrays):
                if array is not view:  # X is written in place unless a preprocessing function made it anew
                    view[...] = array
            delta, sent = _error_delta(batches, sent)
            done.put((slot, epoch, index, n, delta, None))
        except Exception as exc:  # sent back to the consumer, which raises it
            done.put((slot, epoch, index, 0, None, _sendable(exc)))


def _sendable(exc: Exception) -> tuple:
    """``(module, class name, message, traceback text)`` of a worker's exception: plain strings.

    Only strings cross back, so the consumer never unpickles an object a worker made
    from its data; :func:`_rebuilt` makes the exception anew.
    """
    return type(exc).__module__, type(exc).__qualname__, str(exc), "".join(traceback.format_exception(exc))


def _rebuilt(module: str, name: str, message: str) -> Exception:
    """The worker's exception as the same class for cococxr's errors and built-in ones, else a WorkerError."""
    import builtins

    from cococxr import errors

    home = {"builtins": builtins, "cococxr.errors": errors}.get(module)
    cls = getattr(home, name, None) if home is not None else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except TypeError:  # a class whose constructor takes more than a message
            pass
    return WorkerError(f"{module}.{name}: {message}")


class ProcessLoader:
    """Whole batches of a :class:`~cococxr.batches.CocoBatches`, loaded by worker processes.

    Batches come out exactly as ``batches.batch_at(epoch, index)`` makes them, in order, for any
    number of workers. Iterating yields one epoch per pass, starting at the batches'
    current epoch; :meth:`get` gives any ``(epoch, index)``, fastest in order.
    ``on_error="skip"`` failures found by the workers reach ``batches.error_report``.

    Args:
        batches: the batches to load (a tf-keras Sequence of :mod:`cococxr.sequences`
            works too; it is sent to the workers as its framework-free base class). A
            model as ``mask_with`` cannot run in worker processes: ConfigError.
        workers: worker processes (each holds a copy of ``batches``, and of its cache
            with ``cache=True``).
        prefetch: shared-memory slots, i.e. batches loaded ahead (default ``2 * workers``);
            each holds one full batch (16 x 256 x 256 x 3 float32 images + masks: 16.8 MB).
        start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"``. Default: ``"fork"``
            on Linux (as the torch DataLoader and tf-keras' ``use_multiprocessing`` do:
            instant, and the workers share the parent's memory; they never call
            TensorFlow), ``"spawn"`` elsewhere. A spawned worker re-imports the main
            script (often TensorFlow with it: seconds and about 0.6 GB each) and needs
            ``batches`` to pickle.
        timeout: seconds to wait for the batch asked for before giving up on the
            workers as stuck (a read hung on a network file system, a library
            deadlocked after fork): WorkerError, and the loader closes. None (default)
            waits as long as the workers live.

    Workers start on first use and stop at :meth:`close` (or the end of a ``with``
    block, or when the loader is garbage-collected). They die with their parent.
    """

    def __init__(self, batches: CocoBatches, workers: int = 2, *, prefetch: int | None = None,
                 start_method: str | None = None, timeout: float | None = None):
        if start_method is None:
            start_method = "fork" if sys.platform.startswith("linux") else "spawn"
        workers = positive_int("workers", workers)
        prefetch = positive_int("prefetch", 2 * workers if prefetch is None else prefetch)
        if start_method not in multiprocessing.get_all_start_methods():
            raise ConfigError(f"start_method must be one of {multiprocessing.get_all_start_methods()}, "
                              f"got {start_method!r}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or timeout <= 0):
            raise ConfigError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self.batches, self.workers, self.prefetch, self.timeout = batches, workers, prefetch, timeout
        self._layout = _Layout(batches.item_specs(), batches.batch_size)  # raises for a model as mask_with
        self._context = multiprocessing.get_context(start_method)
        self._lock = threading.Lock()
        self._processes: list = []
        self._closed = False
        self._next_epoch = None
        self._slots: list = []
        self._free: list[int] = []
        self._released: collections.deque = collections.deque()  # slots given back by finalizers
        self._warned = False
        self._in_flight: dict = {}  # (epoch, index) -> slot
        self._ready: dict = {}  # (epoch, index) -> (slot, n, error, on_error news)
        self._cursor = None  # the next key to schedule

    # ------------------------------------------------------------------ lifecycle
    def _start(self) -> None:
        if self._closed:
            raise WorkerError("this ProcessLoader is closed")
        context = self._context
        self._slots = [context.RawArray("b", self._layout.nbytes) for _ in range(self.prefetch)]
        self._free = list(range(self.prefetch))
        self._tasks, self._done = context.Queue(), context.Queue()
        plain = _framework_free(self.batches)
        self._finalizer = weakref.finalize(self, _stop, self._processes, self._tasks)
        for _ in range(self.workers):
            process = context.Process(target=_worker, daemon=True, name="cococxr-loader",
                                      args=(plain, self._layout, self._slots, self._tasks, self._done,
                                            None if context.get_start_method() == "forkserver" else os.getpid(),
                                            context.get_start_method() == "fork"))
            try:
                process.start()
            except OSError as exc:  # fork or spawn itself failed (no memory, too many processes)
                self._finalizer()
                self._processes.clear()
                raise WorkerError(f"could not start a loader worker process: {exc}") from exc
            except Exception as exc:  # pickling the batches for a spawned worker
                self._finalizer()
                self._processes.clear()
                raise ConfigError(f"the batches cannot be sent to a {self._context.get_start_method()!r} worker "
                                  f"process: {exc}. A lambda or nested function as preprocessing, augment "
                                  f"or mask_with does not pickle; use a module-level function, threads, "
                                  f"or start_method='fork'") from exc
            self._processes.append(process)

    def close(self) -> None:
        """Stop the workers and free the shared memory (idempotent)."""
        with self._lock:
            self._closed = True
            if self._processes:
                self._finalizer()
            self._processes, self._slots = [], []
            self._in_flight.clear()
            self._ready.clear()

    def __enter__(self) -> "ProcessLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --------------------------------------------------------------- consumption
    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.batches)

    def __iter__(self):
        """One epoch of batches: the batches' current epoch first, then one more each pass."""
        epoch = self.batches.epoch if self._next_epoch is None else self._next_epoch
        self._next_epoch = epoch + 1
        return (self.get(epoch, index) for index in range(len(self)))

    def get(self, epoch: int, index: int, *, copy: bool = False):
        """Batch ``index`` of ``epoch``: ``(X, y)`` for "train", X for "predict".

        The arrays are views of a shared-memory slot (a copy would cost about a tenth
        of the throughput), which is reused once they and every view of them are garbage.
        Keep batches beyond the next one or two as copies (``copy=True`` or
        ``np.array(x)``): should the consumer hold every slot, the loader loads the next
        batch itself, in the calling process, and warns once.

        Raises:
            IndexError: ``index`` out of range.
            WorkerError: a worker died (the message names it and its exit code), or
                no batch came within ``timeout`` seconds.
            Any error of ``batch_at`` in a worker (ImageReadError naming the file...),
            with the worker's traceback as its cause.
        """
        key = (int(epoch), int(index))
        if not 0 <= key[1] < len(self):
            raise IndexError(f"batch index {index} out of range (the epoch has {len(self)} batches)")
        with self._lock:
            if not self._processes:
                self._start()
            self._check_alive(key)
            self._reclaim()
            if key not in self._in_flight and key not in self._ready:
                self._cursor = key  # out of order: the prefetch follows the consumer from here
                self._evict(keep=key)
            self._schedule()
            asked = time.monotonic()
            while key not in self._ready:
                if key not in self._in_flight:  # every slot was taken when the consumer got here
                    self._reclaim()
                    self._evict(keep=key)
                    self._schedule()
                    if key not in self._in_flight and not self._in_flight:
                        return self._load_here(key)
                self._receive(key, asked)
            slot, n, error, delta = self._ready.pop(key)
            self._report(delta, delivered=True)
            if error is not None:
                self._free.append(slot)
                module, name, message, text = error
                raise _rebuilt(module, name, message) from _RemoteTraceback(f"\n(in a loader worker process)\n{text}")
            whole, arrays = self._layout.views(self._slots[slot], n)
            if copy:
                arrays = [np.array(a) for a in arrays]
                self._free.append(slot)
            else:
                weakref.finalize(whole, self._released.append, slot)  # from any thread: no lock taken
            del whole
            self._schedule()
        return arrays[0] if self.batches.subset == "predict" else tuple(arrays)

    def _reclaim(self) -> None:
        """Slots whose batches the consumer has let go of become free."""
        while self._released:
            self._free.append(self._released.popleft())

    def _load_here(self, key: tuple):
        """Load ``key`` in this process: the consumer holds every slot."""
        if not self._warned:
            self._warned = True
            warnings.warn(f"the consumer holds all {self.prefetch} shared-memory slots of this ProcessLoader, "
                          f"so batches are loaded in the calling process; keep copies of batches you "
                          f"keep (np.array(x) or get(..., copy=True)), or raise prefetch", stacklevel=3)
        if self._cursor == key:
            self._cursor = self._following(key)
        return self.batches.batch_at(*key)

    def _following(self, key: tuple) -> tuple:
        epoch, index = key
        return (epoch, index + 1) if index + 1 < len(self) else (epoch + 1, 0)

    def _schedule(self) -> None:
        """Hand the keys from the cursor on to the workers while slots are free."""
        while self._free and self._cursor is not None:
            key, self._cursor = self._cursor, self._following(self._cursor)
            if key in self._in_flight or key in self._ready:
                continue
            slot = self._free.pop()
            self._in_flight[key] = slot
            self._tasks.put((slot, *key))

    def _evict(self, keep: tuple) -> None:
        """Free the slots of loaded batches outside the ``prefetch`` keys from ``keep`` on.

        They were loaded ahead on a path the consumer left (it jumped to ``keep``).
        """
        window, key = set(), keep
        for _ in range(self.prefetch):
            window.add(key)
            key = self._following(key)
        for key in [k for k in self._ready if k not in window]:
            slot, _, _, delta = self._ready.pop(key)
            self._free.append(slot)
            self._report(delta, delivered=False)

    def _receive(self, waiting_for: tuple, asked: float) -> None:
        """Take one finished batch from the workers, checking they are alive (and not stuck) meanwhile."""
        while True:
            try:
                slot, epoch, index, n, delta, error = self._done.get(timeout=_POLL_SECONDS)
                break
            except queue.Empty:
                self._check_alive(waiting_for)
                if self.timeout is not None and time.monotonic() - asked > self.timeout:
                    self._give_up(f"no batch came from the {len(self._processes)} loader worker process(es) "
                                  f"within timeout={self.timeout} s while batch {waiting_for[1]} of epoch "
                                  f"{waiting_for[0]} was asked for; they look stuck (a hung read, a deadlock)")
        key = (epoch, index)
        del self._in_flight[key]
        self._ready[key] = (slot, n, error, delta)

    def _report(self, delta, delivered: bool) -> None:
        """Add a batch's ``on_error="skip"`` news to ``batches.error_report``.

        Its failed images always count; its replaced items only once the batch is
        delivered (not when it was loaded ahead and then dropped).
        """
        if delta is None:
            return
        failed, skipped = delta
        with self.batches._lock:
            self.batches._failed.update(failed)
            self.batches._skipped += skipped if delivered else 0

    def _check_alive(self, key: tuple) -> None:
        """Raise WorkerError (and stop the rest) if any worker has died."""
        dead = [p for p in self._processes if not p.is_alive()]
        if not dead:
            return
        codes = ", ".join(f"pid {p.pid} exit code {p.exitcode}" for p in dead)
        self._give_up(f"a loader worker process died ({codes}) before batch {key[1]} of epoch {key[0]} "
                      f"was loaded; a negative code is the signal that ended it (-9: killed, often for "
                      f"lack of memory)")

    def _give_up(self, why: str) -> None:
        """Stop every worker, close the loader and raise WorkerError(why)."""
        for process in self._processes:  # a stuck worker would not read the request to end
            if process.is_alive():
                process.kill()
        self._finalizer()
        self._processes, self._closed = [], True
        raise WorkerError(f"{why}. The loader is closed; make a new one")


def _stop(processes: list, tasks) -> None:
    """Ask the workers to end, then terminate any that do not within a few seconds."""
    for _ in processes:
        try:
            tasks.put(None)
        except (OSError, ValueError):
            break
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)


__all__ = ["ProcessLoader", "WorkerError"]
