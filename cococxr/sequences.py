"""Keras Sequences that stream images with masks or labels straight from a COCO file.

The COCO file is read and indexed once; each batch is decoded from the image files on
the fly. Every random choice of an item (its augmentation, the replacement of an
unreadable image) is seeded from ``(seed, epoch, position in the epoch)``, so results
do not depend on how many worker threads Keras uses. See docs/sequences.md.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np

from cococxr._tf import keras, tf
from cococxr.coco import CocoDataset
from cococxr.errors import CocoFormatError, ConfigError, ImageReadError, RLEError
from cococxr.io import read_image, to_float01
from cococxr.masks import annotations_to_channels, annotations_to_label_map
from cococxr.model_input import ModelInput, input_size_pair
from cococxr.sampling import BalancedSampler, ShuffledSampler

#: Errors of one item that ``on_error="skip"`` recovers from (bad file, bad annotation).
_ITEM_ERRORS = (ImageReadError, CocoFormatError, RLEError)


def _load_coco(source, image_root) -> CocoDataset:
    """A CocoDataset from a path, a dict or a CocoDataset (re-rooted if ``image_root``)."""
    if isinstance(source, CocoDataset):
        if image_root is None:
            return source
        rerooted = CocoDataset(source.dataset, image_root, validate=False)
        rerooted.validated = source.validated
        return rerooted
    return CocoDataset(source, image_root)


def _check_choice(name: str, value, choices) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


def is_lung_masker(value) -> bool:
    """True for a lung masker: an object with ``mask_images(images, size)`` (decoded images in)."""
    return callable(getattr(value, "mask_images", None))


def _category_ids(coco: CocoDataset, names: Sequence[str], what: str) -> list[int]:
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


class _CocoSequence(keras.utils.Sequence):
    """Shared machinery: configuration, epochs, per-item seeds, error handling, tf.data.

    Subclasses set ``image_ids`` and ``_sampler``, call ``set_epoch(0)``, and define
    ``_prepare(image_id)`` (decode + resize, cacheable), ``_item(example, epoch,
    position)`` (one item as a tuple of arrays) and ``_item_specs()``.
    """

    def __init__(self, source, *, batch_size, input_size, channels, preprocessing, equalize,
                 augment, subset, seed, on_error, cache, image_root):
        super().__init__()
        self.coco = _load_coco(source, image_root)
        if int(batch_size) != batch_size or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        #: the one model-input path (cococxr.model_input) every caller shares
        self.model_input = ModelInput(input_size, channels, equalize, preprocessing)
        self.input_size, self.channels, self.equalize = input_size_pair(input_size), channels, equalize
        self._augmenter = None
        if augment is not None:
            # albumentations imports torch when it is installed (~0.5 GB): load it only when used
            from cococxr.augment import build_augmenter  # deferred: albumentations, which imports torch

            self._augmenter = build_augmenter(augment)
        _check_choice("subset", subset, ("train", "predict"))
        self.subset = subset
        _check_choice("on_error", on_error, ("raise", "skip"))
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
        epoch, batches = self._state
        if not 0 <= index < len(batches):
            raise IndexError(f"batch index {index} out of range (the epoch has {len(batches)} batches)")
        arrays = self._batch(batches[index], epoch, index * self.batch_size)
        return arrays[0] if self.subset == "predict" else arrays

    def batch_image_ids(self, index: int) -> list:
        """Image ids of batch ``index`` of the current epoch (before any ``on_error`` replacement)."""
        return [self.image_ids[i] for i in self._state[1][index]]

    def _batch(self, examples: np.ndarray, epoch: int, first: int) -> tuple:
        """``(X,)`` or ``(X, y)`` of one batch; ``first`` is the position of its first item."""
        return self._collate([self._item(int(ex), epoch, first + j) for j, ex in enumerate(examples)])

    def _collate(self, items: list[tuple]) -> tuple:
        """Batch arrays from per-item ``(image, target)`` or ``(image,)`` tuples."""
        images, *targets = zip(*items)
        return (self._inputs(images), *(self._targets(parts) for parts in targets))

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

    def _inputs(self, images: Sequence[np.ndarray], *, preprocess: bool = True) -> np.ndarray:
        """X of a batch: :meth:`cococxr.model_input.ModelInput.batch`."""
        return self.model_input.batch(images, preprocess=preprocess)

    # ---------------------------------------------------------------- tf.data
    def as_tf_dataset(self, num_parallel_calls: int = tf.data.AUTOTUNE) -> "tf.data.Dataset":
        """The same batches as a ``tf.data.Dataset``, built by a parallel map.

        Each full pass over the dataset is one epoch, starting from the Sequence's
        current epoch and counting up by itself (``fit(ds, epochs=n)`` sees the epochs
        the Sequence would). Whole batches are mapped (one Python call per batch, not per
        item) with ``num_parallel_calls`` threads in a deterministic order, then prefetched.
        """
        epochs = itertools.count(self.epoch)

        def batches():
            epoch = next(epochs)
            for b, examples in enumerate(self._sampler.epoch_indices(epoch)):
                yield np.asarray(examples, np.int64), epoch, b * self.batch_size

        def load(examples, epoch, first):
            specs = self._item_specs()
            outputs = tf.numpy_function(lambda e, ep, f: list(self._batch(e, int(ep), int(f))),
                                        [examples, epoch, first], [dtype for dtype, _ in specs], stateful=False)
            for tensor, (_, shape) in zip(outputs, specs):
                tensor.set_shape((None, *shape))
            return outputs[0] if self.subset == "predict" else tuple(outputs)

        scalar = tf.TensorSpec((), tf.int64)
        dataset = tf.data.Dataset.from_generator(
            batches, output_signature=(tf.TensorSpec((None,), tf.int64), scalar, scalar))
        dataset = dataset.map(load, num_parallel_calls=num_parallel_calls, deterministic=True)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def _input_spec(self) -> tuple:
        """``(dtype, shape)`` of one X item."""
        return tf.float32, (*self.input_size, self.channels)


class CocoSegmentationSequence(_CocoSequence):
    """Images and per-class masks from a COCO file, batch by batch.

    Args:
        source: COCO JSON path, dict or :class:`~cococxr.coco.CocoDataset`.
        classes: category names, in the order of the mask channels.
        batch_size: items per batch.
        input_size: ``(height, width)`` or an int for a square.
        channels: 1 or 3 (grayscale repeated).
        background: False, True/``"last"`` or ``"first"``: add a background channel
            (1 where no class is) after or before the class channels.
        mask_mode: ``"channels"``: y is float32 ``(B, H, W, K)`` of 0/1; ``"sparse"``:
            y is an int32 label map ``(B, H, W, 1)``, 0 background and k+1 for
            ``classes[k]`` (later classes win where they overlap).
        preprocessing: None (X in 0..1), a backbone name of segmentation_models
            (its ``get_preprocessing`` applied to 0..255 values) or a callable taking
            float32 ``(H, W, C)`` in 0..255.
        equalize: None, ``"hist"`` or ``"clahe"``, applied to the decoded image.
        augment: None, ``"light"``, ``"medium"`` or an albumentations transform,
            applied jointly to image and mask after resizing.
        subset: ``"train"`` yields ``(X, y)``; ``"predict"`` yields X for every image.
        shuffle: reshuffle every epoch; None means True for "train", False for "predict".
        seed: base seed (None: a random one); same seed, same batches.
        include_empty: keep images without any mask of ``classes`` (all-zero y). Off by
            default: an image without a lung annotation is usually unannotated, not
            lung-free. "predict" always includes every image.
        image_ids: restrict to these images (order kept, repeats dropped).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        image_root: folder of the images (default: as resolved by CocoDataset).
        on_error: ``"raise"`` (ImageReadError naming file and image id) or ``"skip"``
            (replace the item by another image; see :attr:`error_report`).
        cache: keep decoded, resized images and masks in memory (before augmentation).

    Raises:
        ConfigError: unknown class names (the message lists the known ones), or any
            other invalid parameter.
    """

    def __init__(self, source, classes: Sequence[str], *, batch_size: int = 16, input_size=256,
                 channels: int = 3, background: bool | str = False, mask_mode: str = "channels",
                 preprocessing=None, equalize: str | None = None, augment=None, subset: str = "train",
                 shuffle: bool | None = None, seed: int | None = None, include_empty: bool = False,
                 image_ids=None, drop_last: bool = False, image_root=None, on_error: str = "raise",
                 cache: bool = False):
        super().__init__(source, batch_size=batch_size, input_size=input_size, channels=channels,
                         preprocessing=preprocessing, equalize=equalize, augment=augment, subset=subset,
                         seed=seed, on_error=on_error, cache=cache, image_root=image_root)
        self.cat_ids = _category_ids(self.coco, classes, "classes")
        self.classes = list(classes)
        _check_choice("mask_mode", mask_mode, ("channels", "sparse"))
        self.mask_mode = mask_mode
        _check_choice("background", background, (False, True, "last", "first"))
        self.background = "last" if background is True else background
        wanted = set(self.cat_ids)
        self._anns: dict = {}
        self.image_ids = []
        for image_id in self._select_ids(image_ids):
            anns = [a for a in self.coco.img_to_anns[image_id]
                    if a.get("category_id") in wanted and a.get("segmentation") is not None]
            if anns or include_empty or subset == "predict":
                self.image_ids.append(image_id)
                self._anns[image_id] = anns
        if not self.image_ids:
            raise ConfigError(f"no image of {self.coco.source} has a mask of {self.classes} "
                              f"(include_empty=True keeps images without masks)")
        shuffle = subset == "train" if shuffle is None else shuffle
        self._sampler = ShuffledSampler(len(self.image_ids), self.batch_size, shuffle=shuffle,
                                        seed=self.seed, drop_last=drop_last)
        self.set_epoch(0)

    @property
    def n_outputs(self) -> int:
        """Channels of y: one per class, plus background (a label map has 1)."""
        if self.mask_mode == "sparse":
            return 1
        return len(self.classes) + bool(self.background)

    def _prepare(self, image_id):
        """Decoded, equalised, resized image and (for "train") its resized uint8 mask.

        The mask of every class is decoded once at the record's size and resized with
        nearest neighbour (``resize_mask``).
        """
        image = self._read(image_id)
        mask = None
        if self.subset == "train":
            height, width = self._native_size(image_id, image)
            rasterise = annotations_to_label_map if self.mask_mode == "sparse" else annotations_to_channels
            mask = rasterise(self._anns[image_id], height, width, self.cat_ids, size=self.input_size,
                             validated=self.coco.validated)
        return self.model_input.prepare(image), mask

    def _item(self, example: int, epoch: int, position: int) -> tuple:
        """``(image, mask)`` (or ``(image,)`` for "predict") of one item at input size, unscaled."""
        _, (image, mask) = self._safe_prepared(example, epoch, position)
        image, mask = self._augment(image, mask, epoch, position)
        return (image,) if self.subset == "predict" else (image, mask)

    def _targets(self, masks: tuple) -> np.ndarray:
        """y of a batch from its items' uint8 masks (channels or label maps)."""
        stacked = np.stack(masks).reshape(len(masks), *self.input_size, -1)
        if self.mask_mode == "sparse":
            return stacked.astype(np.int32)
        y = stacked.astype(np.float32)
        if not self.background:
            return y
        rest = 1 - y.max(axis=3, keepdims=True)
        return np.concatenate([rest, y] if self.background == "first" else [y, rest], axis=3)

    def _item_specs(self) -> list[tuple]:
        """``(dtype, shape)`` of each part of one item."""
        if self.subset == "predict":
            return [self._input_spec()]
        y_dtype = tf.int32 if self.mask_mode == "sparse" else tf.float32
        return [self._input_spec(), (y_dtype, (*self.input_size, self.n_outputs))]


def _class_groups(classes) -> dict[str, list[str]]:
    """``{output class: [member category names]}`` from a list or a merging dict."""
    if isinstance(classes, Mapping):
        groups = {str(k): list(v) for k, v in classes.items()}
        if not groups or any(isinstance(v, str) or not v for v in classes.values()):
            raise ConfigError(f"classes as a dict must map each class to a non-empty list of "
                              f"category names, got {dict(classes)!r}")
        return groups
    if isinstance(classes, str) or not classes:
        raise ConfigError(f"classes must be a non-empty list of names or a dict, got {classes!r}")
    return {name: [name] for name in classes}


class CocoClassificationSequence(_CocoSequence):
    """Images and image-level labels (annotations without geometry) from a COCO file.

    Args:
        source: COCO JSON path, dict or :class:`~cococxr.coco.CocoDataset`.
        classes: category names (one output each), or a dict merging categories into
            output classes, e.g. ``{"COVID": ["COVID"], "non-COVID": ["Normal",
            "Lung_Opacity", "Viral Pneumonia"]}``. Images with none of the named labels
            are left out ("train"); an image whose labels fall in two classes raises.
        batch_size: items per batch.
        input_size: ``(height, width)`` or an int.
        channels: 1 or 3.
        balance: None (plain shuffling) or ``"batch"``: every batch holds the same share
            of each class, members of a merged class share their class's part equally,
            minority examples repeat, and every example is seen each epoch
            (:class:`~cococxr.sampling.BalancedSampler`).
        label_mode: ``"onehot"`` (float32 ``(B, n_classes)``) or ``"int"`` (int32 ``(B,)``).
        mask_with: None; ``"coco"``: multiply each image by the union of its
            ``mask_classes`` masks from the COCO file; a lung masker (an object with
            ``mask_images(decoded images, size) -> (B, *size)``, such as
            :class:`cococxr.pipelines.engine.segmenter.LungMasker`), given each decoded
            image so that its model is fed as in its own training; or a callable taking
            this Sequence's float32 batch ``(B, H, W, channels)`` in 0..1 and returning
            masks ``(B, H, W[, 1])``, e.g. ``seg_model.predict_on_batch``. Masks are kept
            where > 0.5; the masked image is equalised again when ``equalize`` is set.
        mask_classes: category names of the masks for ``mask_with="coco"``.
        preprocessing, equalize, augment, subset, shuffle, seed, image_ids, drop_last,
        image_root, on_error, cache: as for :class:`CocoSegmentationSequence`
            (``augment`` acts on the image only; ``drop_last`` applies without ``balance``).

    Raises:
        ConfigError: unknown class or mask class names, images without the mask for
            ``mask_with="coco"``, or any other invalid parameter.
    """

    def __init__(self, source, classes, *, batch_size: int = 16, input_size=256, channels: int = 3,
                 balance: str | None = None, label_mode: str = "onehot", mask_with=None,
                 mask_classes: Sequence[str] = ("lung",), preprocessing=None, equalize: str | None = None,
                 augment=None, subset: str = "train", shuffle: bool | None = None, seed: int | None = None,
                 image_ids=None, drop_last: bool = False, image_root=None, on_error: str = "raise",
                 cache: bool = False):
        super().__init__(source, batch_size=batch_size, input_size=input_size, channels=channels,
                         preprocessing=preprocessing, equalize=equalize, augment=augment, subset=subset,
                         seed=seed, on_error=on_error, cache=cache, image_root=image_root)
        groups = _class_groups(classes)
        members = [m for group in groups.values() for m in group]
        _category_ids(self.coco, members, "classes")
        self.classes = list(groups)
        _check_choice("label_mode", label_mode, ("onehot", "int"))
        self.label_mode = label_mode
        _check_choice("balance", balance, (None, "batch"))
        if balance and subset == "predict":
            raise ConfigError("balance='batch' repeats images; use balance=None with subset='predict'")
        group_of = {m: g for g, group in enumerate(groups.values()) for m in group}
        self.image_ids, self._members, labels = [], [], []
        for image_id in self._select_ids(image_ids):
            found = [name for name in self.coco.image_labels(image_id) if name in group_of]
            if len({group_of[name] for name in found}) > 1:
                raise ConfigError(f"image id {image_id} has labels {found} of more than one class of {groups}")
            if found or subset == "predict":
                self.image_ids.append(image_id)
                self._members.append(found[0] if found else None)
                labels.append(group_of[found[0]] if found else -1)
        if not self.image_ids:
            raise ConfigError(f"no image of {self.coco.source} has a label of {members}")
        #: class index of each example (-1: unlabelled, "predict" only)
        self.labels = np.asarray(labels, np.int64)
        self._pools = {m: np.flatnonzero([x == m for x in self._members]) for m in set(self._members)}
        self._set_mask_source(mask_with, mask_classes)
        if balance:
            self._sampler = BalancedSampler(self._members, groups, self.batch_size, seed=self.seed)
        else:
            shuffle = subset == "train" if shuffle is None else shuffle
            self._sampler = ShuffledSampler(len(self.image_ids), self.batch_size, shuffle=shuffle,
                                            seed=self.seed, drop_last=drop_last)
        self.set_epoch(0)

    def _set_mask_source(self, mask_with, mask_classes) -> None:
        """Check ``mask_with``; for "coco", index the mask annotations of every image."""
        if not (mask_with in (None, "coco") or callable(mask_with) or is_lung_masker(mask_with)):
            raise ConfigError(f"mask_with must be None, 'coco', a lung masker or a callable, got {mask_with!r}")
        self.mask_with = mask_with
        if mask_with != "coco":
            return
        self._mask_cat_ids = _category_ids(self.coco, mask_classes, "mask_classes")
        wanted = set(self._mask_cat_ids)
        self._mask_anns = {i: [a for a in self.coco.img_to_anns[i]
                               if a.get("category_id") in wanted and a.get("segmentation") is not None]
                           for i in self.image_ids}
        missing = [i for i, anns in self._mask_anns.items() if not anns]
        if missing:
            raise ConfigError(f"mask_with='coco': {len(missing)} image(s) have no {list(mask_classes)} mask "
                              f"(ids {missing[:10]}); restrict image_ids or use a mask model")

    def _replacement_pool(self, example: int) -> np.ndarray:
        """Examples with the same label, so that a replacement keeps batches balanced."""
        return self._pools[self._members[example]]

    def _prepare(self, image_id) -> np.ndarray:
        """The model input of one image (unscaled); masked and equalised again with ``mask_with``.

        A lung masker (an object with ``mask_images``) is given the decoded image itself,
        so its own model sees exactly what that model saw in training.
        """
        image = self._read(image_id)
        prepared = self.model_input.prepare(image)
        if is_lung_masker(self.mask_with):
            mask = np.asarray(self.mask_with.mask_images([image], self.input_size))[0]
            return self.model_input.masked(prepared, (mask > 0.5).astype(np.uint8))
        if self.mask_with != "coco":
            return prepared
        height, width = self._native_size(image_id, image)
        mask = annotations_to_channels(self._mask_anns[image_id], height, width, self._mask_cat_ids,
                                       size=self.input_size, validated=self.coco.validated).max(axis=2)
        return self.model_input.masked(prepared, mask)

    def _item(self, example: int, epoch: int, position: int) -> tuple:
        """``(image, label)`` (or ``(image,)`` for "predict") of one item at input size, unscaled."""
        used, image = self._safe_prepared(example, epoch, position)
        return self._finish(used, image, epoch, position)

    def _finish(self, example: int, image: np.ndarray, epoch: int, position: int) -> tuple:
        """Augment a prepared image; attach the label of ``example``."""
        x = self._augment(image, None, epoch, position)[0]
        if self.subset == "predict":
            return (x,)
        label = self.labels[example]
        if self.label_mode == "int":
            return x, np.int32(label)
        return x, np.eye(len(self.classes), dtype=np.float32)[label]

    def _batch(self, examples: np.ndarray, epoch: int, first: int):
        """As the base class; with a plain callable ``mask_with``, mask the whole batch at once."""
        if not callable(self.mask_with) or is_lung_masker(self.mask_with):
            return super()._batch(examples, epoch, first)
        prepared = [self._safe_prepared(int(ex), epoch, first + j) for j, ex in enumerate(examples)]
        batch = self._inputs([image for _, image in prepared], preprocess=False)
        masks = np.asarray(self.mask_with(batch))
        if masks.ndim == 4 and masks.shape[3] == 1:
            masks = masks[..., 0]
        if masks.shape != batch.shape[:3]:
            raise ConfigError(f"mask_with returned shape {masks.shape}; expected {batch.shape[:3]} "
                              f"(or with a trailing 1) for input {batch.shape}")
        items = []
        for j, ((used, image), mask) in enumerate(zip(prepared, masks)):
            image = self.model_input.masked(image, (mask > 0.5).astype(np.uint8))
            items.append(self._finish(used, image, epoch, first + j))
        return self._collate(items)

    def _item_specs(self) -> list[tuple]:
        """``(dtype, shape)`` of each part of one item."""
        if callable(self.mask_with) or is_lung_masker(self.mask_with):
            raise ConfigError("as_tf_dataset does not support a model as mask_with (it runs a model "
                              "inside the input pipeline); use the Sequence itself")
        if self.subset == "predict":
            return [self._input_spec()]
        if self.label_mode == "int":
            return [self._input_spec(), (tf.int32, ())]
        return [self._input_spec(), (tf.float32, (len(self.classes),))]


class DataGeneratorFromCocoJson(CocoSegmentationSequence):
    """Drop-in replacement for the Kaggle kernel's generator of the same name.

    Takes the kernel's keyword names and fixes its defects (docs/sequences.md lists
    them): any input size, any category ids, 0/1 masks, nearest-neighbour masks, RGB,
    last partial batch kept, masks rasterised once per image, augmentation.

    Args:
        batch_size: items per batch (kernel default 8).
        subset: ``"train"`` yields ``(X, y)``; ``"test"`` or ``"predict"`` yields X.
        image_list: image records (dicts with ``"id"``, as ``coco.loadImgs`` returns)
            or image ids; empty or None means every image.
        classes: category names, in channel order; empty or None means every
            category that has a segmentation, in file order.
        input_image_size: ``(height, width)`` (kernel default (128, 128)).
        annFile: path of the COCO JSON.
        shuffle: reshuffle every epoch (kernel default False).
        coco: instead of ``annFile``: a CocoDataset, a COCO dict or a
            ``pycocotools.coco.COCO``.
        **kwargs: any further :class:`CocoSegmentationSequence` parameter
            (``augment``, ``image_root``, ``seed``...). ``include_empty`` defaults to
            True here: the images listed are the ones wanted.
    """

    def __init__(self, batch_size: int = 8, subset: str = "train", image_list=None, classes=None,
                 input_image_size=(128, 128), annFile=None, shuffle: bool = False, *, coco=None, **kwargs):
        source = annFile if coco is None else coco
        if source is None:
            raise ConfigError("DataGeneratorFromCocoJson needs annFile= (path of the COCO JSON) or coco=")
        if not isinstance(source, CocoDataset) and hasattr(source, "dataset"):
            source = source.dataset  # a pycocotools COCO
        source = _load_coco(source, kwargs.pop("image_root", None))
        if not classes:
            with_masks = {a.get("category_id") for a in source.anns.values() if a.get("segmentation") is not None}
            classes = [cat["name"] for cat_id, cat in source.cats.items() if cat_id in with_masks]
        _check_choice("subset", subset, ("train", "test", "predict"))
        image_ids = [r["id"] if isinstance(r, Mapping) else r for r in image_list] if image_list else None
        kwargs.setdefault("include_empty", True)
        super().__init__(source, classes, batch_size=batch_size, input_size=input_image_size,
                         subset="train" if subset == "train" else "predict", shuffle=shuffle,
                         image_ids=image_ids, **kwargs)


__all__ = ["CocoClassificationSequence", "CocoSegmentationSequence", "DataGeneratorFromCocoJson", "is_lung_masker"]
