"""What every batch source shares: configuration, epochs, per-item seeds, error handling.

Framework-free (numpy and OpenCV only): the tf-keras Sequences (:mod:`cococxr.sequences`),
the Keras 3 PyDataset (:mod:`cococxr.keras3`), the torch Dataset (:mod:`cococxr.torch_data`)
and tf.data (:mod:`cococxr.tfdata`) are thin adapters over these classes.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from cococxr.coco import CocoDataset
from cococxr.errors import CocoFormatError, ConfigError, ImageReadError, RLEError
from cococxr.io import read_image, to_float01
from cococxr.model_input import ModelInput, input_size_pair

#: Errors of one item that ``on_error="skip"`` recovers from (bad file, bad annotation).
_ITEM_ERRORS = (ImageReadError, CocoFormatError, RLEError)


def load_coco(source, image_root) -> CocoDataset:
    """A CocoDataset from a path, a dict or a CocoDataset (re-rooted if ``image_root``)."""
    if isinstance(source, CocoDataset):
        if image_root is None:
            return source
        rerooted = CocoDataset(source.dataset, image_root, validate=False)
        rerooted.validated = source.validated
        return rerooted
    return CocoDataset(source, image_root)


def check_choice(name: str, value, choices) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


def positive_int(name: str, value) -> int:
    """``value`` as an int; ConfigError unless it is a positive integer."""
    if int(value) != value or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def is_lung_masker(value) -> bool:
    """True for a lung masker: an object with ``mask_images(images, size)`` (decoded images in)."""
    return callable(getattr(value, "mask_images", None))


def category_ids(coco: CocoDataset, names: Sequence[str], what: str) -> list[int]:
    """Category ids of ``names`` in that order; unknown or repeated names raise ConfigError."""
    if isinstance(names, str) or not names:
        raise ConfigError(f"{what} must be a non-empty list of category names, got {names!r}")
    by_name = {}
    for cat_id, cat in coco.cats.items():
        by_name.setdefault(cat.get("name"), cat_id)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"{what}: unknown class name(s) {unknown}; the COCO file {coco.source} "
                          f"has: {list(by_name)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{what} has repeated names: {list(names)}")
    return [by_name[n] for n in names]


class CocoBatches:
    """Shared machinery: configuration, epochs, per-item seeds, error handling.

    Subclasses set ``image_ids`` and ``_sampler``, call ``set_epoch(0)``, and define
    ``_prepare(image_id)`` (decode + resize, cacheable), ``_item(example, epoch,
    position)`` (one item as a tuple of arrays) and ``_item_specs()``.
    """

    def __init__(self, source, *, batch_size, input_size, channels, preprocessing, equalize,
                 augment, subset, seed, on_error, cache, image_root):
        super().__init__()
        self.coco = load_coco(source, image_root)
        self.batch_size = positive_int("batch_size", batch_size)
        #: the one model-input path (cococxr.model_input) every caller shares
        self.model_input = ModelInput(input_size, channels, equalize, preprocessing)
        self.input_size, self.channels, self.equalize = input_size_pair(input_size), channels, equalize
        self._augmenter = None
        if augment is not None:
            # albumentations imports torch when it is installed (~0.5 GB): load it only when used
            from cococxr.augment import build_augmenter  # deferred: albumentations, which imports torch

            self._augmenter = build_augmenter(augment)
        check_choice("subset", subset, ("train", "predict"))
        self.subset = subset
        check_choice("on_error", on_error, ("raise", "skip"))
        self.on_error = on_error
        if seed is not None and (int(seed) != seed or seed < 0):
            raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = np.random.SeedSequence().entropy if seed is None else int(seed)
        self._cache = {} if cache else None
        self._paths: dict = {}
        self._lock = threading.Lock()
        self._failed: dict = {}
        self._skipped = 0
        self._pending_thread = None
        self._other_epoch = (None, None)

    # ------------------------------------------------------------------ selection
    def _select_ids(self, image_ids) -> list:
        """All image ids (file order), or ``image_ids`` checked and without repeats."""
        if image_ids is None:
            return list(self.coco.imgs)
        ids = list(dict.fromkeys(image_ids))
        unknown = [i for i in ids if i not in self.coco.imgs]
        if unknown:
            raise ConfigError(f"image_ids not in {self.coco.source}: {unknown[:10]}")
        return ids

    # --------------------------------------------------------------------- epochs
    @property
    def epoch(self) -> int:
        """The current epoch (0 at construction, +1 at each ``on_epoch_end``)."""
        return self._state[0]

    def set_epoch(self, epoch: int) -> None:
        """Jump to an epoch, e.g. to resume training at ``initial_epoch``."""
        self._state = (int(epoch), self._sampler.epoch_indices(int(epoch)))

    def on_epoch_end(self) -> None:
        """Advance one epoch; batches are reshuffled from ``(seed, epoch)``.

        With ``workers > 1``, tf-keras may call this twice at the end of an epoch: from
        its ``OrderedEnqueuer`` thread, then from ``fit`` after stopping that enqueuer.
        A call from another thread than the call just before it completes that pair and
        is ignored, so ``workers=1`` and ``workers=2`` see the same epochs (calls from
        one thread always advance).
        """
        caller = threading.get_ident()
        with self._lock:
            pending, self._pending_thread = self._pending_thread, caller
            if pending is not None and pending != caller:
                self._pending_thread = None
                return
        self.set_epoch(self.epoch + 1)

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self._sampler)

    def __getitem__(self, index: int):
        """Batch ``index`` of the current epoch: ``(X, y)`` for "train", ``X`` for "predict"."""
        return self.batch_at(self.epoch, index)

    def batch_at(self, epoch: int, index: int, *, out: Sequence[np.ndarray] | None = None):
        """Batch ``index`` of any ``epoch``, a pure function of both (what worker processes load).

        Args:
            epoch, index: which batch.
            out: arrays shaped like the batch's parts (X, then y) that X is written into
                when no preprocessing function makes a new array (a worker's shared
                memory); check ``result[0] is out[0]``.

        Returns:
            ``(X, y)`` for "train", ``X`` for "predict" (numpy arrays).
        """
        batches = self._epoch_batches(int(epoch))
        if not 0 <= index < len(batches):
            raise IndexError(f"batch index {index} out of range (the epoch has {len(batches)} batches)")
        arrays = self._batch(batches[index], int(epoch), index * self.batch_size, out)
        return arrays[0] if self.subset == "predict" else arrays

    def _epoch_batches(self, epoch: int) -> list:
        """The example indices of each batch of ``epoch`` (the current or the last one asked, kept)."""
        for known, batches in (self._state, self._other_epoch):
            if known == epoch:
                return batches
        self._other_epoch = (epoch, self._sampler.epoch_indices(epoch))
        return self._other_epoch[1]

    def __getstate__(self) -> dict:
        """Picklable (for worker processes): the lock is made anew on the other side."""
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def batch_image_ids(self, index: int) -> list:
        """Image ids of batch ``index`` of the current epoch (before any ``on_error`` replacement)."""
        return [self.image_ids[i] for i in self._state[1][index]]

    def _batch(self, examples: np.ndarray, epoch: int, first: int, out=None) -> tuple:
        """``(X,)`` or ``(X, y)`` of one batch; ``first`` is the position of its first item."""
        return self._collate([self._item(int(ex), epoch, first + j) for j, ex in enumerate(examples)], out)

    def _collate(self, items: list[tuple], out=None) -> tuple:
        """Batch arrays from per-item ``(image, target)`` or ``(image,)`` tuples (X into ``out[0]`` if given)."""
        images, *targets = zip(*items)
        x = self._inputs(images, out=None if out is None else out[0])
        return (x, *(self._targets(parts) for parts in targets))

    def _targets(self, parts: tuple) -> np.ndarray:
        """y of a batch from its items' targets: stacked as they are."""
        return np.stack(parts)

    def _item_seed(self, epoch: int, position: int) -> int:
        """The augmentation seed of the item at ``position`` of ``epoch``."""
        return int(np.random.SeedSequence([self.seed, epoch, position]).generate_state(1)[0])

    # --------------------------------------------------------------- per item
    def _read(self, image_id) -> np.ndarray:
        """Decode an image as stored; errors name the image id and file."""
        path = self._paths.get(image_id)
        if path is None:  # resolving and checking a path takes ~0.06 ms: do it once per image
            path = self._paths[image_id] = self.coco.image_path(image_id)
        try:
            return read_image(path)
        except ImageReadError as exc:
            raise ImageReadError(f"image id {image_id}: {exc}") from exc

    def _native_size(self, image_id, image: np.ndarray) -> tuple[int, int]:
        """The record's (height, width), checked against the decoded image."""
        record = self.coco.imgs[image_id]
        size = (record["height"], record["width"])
        if image.shape[:2] != size:
            raise CocoFormatError(f"image id {image_id}: {record.get('file_name')} is "
                                  f"{image.shape[0]}x{image.shape[1]} pixels but its COCO record says "
                                  f"{size[0]}x{size[1]}; its masks would not line up")
        return size

    def _prepared(self, example: int):
        """``_prepare`` of an example's image, through the cache when enabled."""
        image_id = self.image_ids[example]
        if self._cache is not None and image_id in self._cache:
            return self._cache[image_id]
        result = self._prepare(image_id)
        if self._cache is not None:
            self._cache[image_id] = result
        return result

    def _safe_prepared(self, example: int, epoch: int, position: int):
        """``(example used, _prepared(example used))``, replacing a broken example if asked.

        With ``on_error="skip"``, a failing example is replaced by the first readable one
        of a permutation of its replacement pool seeded by ``(seed, epoch, position)``.
        """
        for n, candidate in enumerate(self._candidates(example, epoch, position)):
            image_id = self.image_ids[candidate]
            if self.on_error == "skip" and image_id in self._failed:
                continue
            try:
                result = self._prepared(candidate)
            except _ITEM_ERRORS as exc:
                if self.on_error == "raise":
                    raise
                with self._lock:
                    self._failed[image_id] = str(exc)
                continue
            if n:
                with self._lock:
                    self._skipped += 1
            return candidate, result
        raise ImageReadError(f"on_error='skip': image id {self.image_ids[example]} failed and no "
                             f"readable image is left to replace it; see error_report")

    def _candidates(self, example: int, epoch: int, position: int):
        """``example``, then (``on_error="skip"``) its replacements in a seeded order."""
        yield example
        if self.on_error == "skip":
            rng = np.random.default_rng([self.seed, epoch, position])
            yield from (int(c) for c in rng.permutation(self._replacement_pool(example)))

    def _replacement_pool(self, example: int) -> np.ndarray:
        """Examples that may stand in for ``example`` (all of them by default)."""
        return np.arange(len(self.image_ids))

    @property
    def error_report(self) -> dict:
        """``{"skipped": n, "failed": {image_id: message}}`` for ``on_error="skip"``.

        ``skipped`` counts items replaced so far; ``failed`` lists every image that
        could not be used, with the reason.
        """
        with self._lock:
            return {"skipped": self._skipped, "failed": dict(self._failed)}

    def _augment(self, image: np.ndarray, mask: np.ndarray | None, epoch: int, position: int):
        """Augment jointly, seeded by the item's place (16-bit images go to float 0..1 first)."""
        if self._augmenter is None:
            return image, mask
        if image.dtype == np.uint16:
            image = to_float01(image)
        return self._augmenter(image, mask, seed=self._item_seed(epoch, position))

    def _inputs(self, images: Sequence[np.ndarray], *, preprocess: bool = True, out=None) -> np.ndarray:
        """X of a batch: :meth:`cococxr.model_input.ModelInput.batch`."""
        return self.model_input.batch(images, preprocess=preprocess, out=out)

    # ---------------------------------------------------------------- tf.data
    def as_tf_dataset(self, num_parallel_calls: int | None = None):
        """The same batches as a ``tf.data.Dataset`` (:func:`cococxr.tfdata.as_tf_dataset`)."""
        from cococxr.tfdata import as_tf_dataset  # deferred: TensorFlow, only for tf.data users

        return as_tf_dataset(self, num_parallel_calls)

    def item_specs(self) -> list[tuple]:
        """``(numpy dtype, shape)`` of each part of one item (X, then y for "train")."""
        return self._item_specs()

    def _input_spec(self) -> tuple:
        """``(dtype, shape)`` of one X item."""
        return np.dtype(np.float32), (*self.input_size, self.channels)


__all__ = ["CocoBatches", "load_coco", "check_choice", "positive_int", "category_ids", "is_lung_masker"]
