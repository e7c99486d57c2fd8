"""Images and image-level labels from a COCO file, optionally masked to the lungs, batch by batch."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cococxr.errors import ConfigError
from cococxr.masks import annotations_to_channels
from cococxr.batches.base import CocoBatches, category_ids, check_choice, is_lung_masker
from cococxr.sampling import BalancedSampler, ShuffledSampler

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


class ClassificationBatches(CocoBatches):
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
        image_root, on_error, cache: as for :class:`~cococxr.batches.SegmentationBatches`
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
        category_ids(self.coco, members, "classes")
        self.classes = list(groups)
        check_choice("label_mode", label_mode, ("onehot", "int"))
        self.label_mode = label_mode
        check_choice("balance", balance, (None, "batch"))
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
        self._mask_cat_ids = category_ids(self.coco, mask_classes, "mask_classes")
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

    def _batch(self, examples: np.ndarray, epoch: int, first: int, out=None):
        """As the base class; with a plain callable ``mask_with``, mask the whole batch at once."""
        if not callable(self.mask_with) or is_lung_masker(self.mask_with):
            return super()._batch(examples, epoch, first, out)
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
            return [self._input_spec(), (np.dtype(np.int32), ())]
        return [self._input_spec(), (np.dtype(np.float32), (len(self.classes),))]


__all__ = ["ClassificationBatches"]
