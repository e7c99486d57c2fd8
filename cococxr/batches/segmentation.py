"""Images and per-class masks from a COCO file, batch by batch (and the Kaggle generator's keywords)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cococxr.coco import CocoDataset
from cococxr.errors import ConfigError
from cococxr.masks import annotations_to_channels, annotations_to_label_map
from cococxr.batches.base import CocoBatches, category_ids, check_choice, load_coco
from cococxr.batches.slices import slice_neighbours
from cococxr.io import to_float01
from cococxr.sampling import ShuffledSampler


class SegmentationBatches(CocoBatches):
    """Images and per-class masks from a COCO file, batch by batch (numpy arrays).

    Args:
        source: COCO JSON path, dict or :class:`~cococxr.coco.CocoDataset`.
        classes: category names, in the order of the mask channels.
        batch_size: items per batch.
        input_size: ``(height, width)`` or an int for a square.
        channels: 1 or 3 (grayscale repeated); default 3 (1 per slice with ``context``).
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
        context: 2.5D: stack slices ``s - context*stride ... s + context*stride`` of the
            same volume as the channels of X (``2*context + 1`` gray channels, edges
            repeated; see :mod:`cococxr.batches.slices`); y is the centre slice's mask.
            0 (default) reads one image.
        stride: step between stacked slices (with ``context``).
        slice_keys: image-record keys naming a slice's volume, then its order (default:
            ``case_id``/``slice_index`` of the volume converters, or ``case``/``day``/
            ``slice`` of the UW-Madison preset).

    Raises:
        ConfigError: unknown class names (the message lists the known ones), or any
            other invalid parameter.
    """

    def __init__(self, source, classes: Sequence[str], *, batch_size: int = 16, input_size=256,
                 channels: int | None = None, background: bool | str = False, mask_mode: str = "channels",
                 preprocessing=None, equalize: str | None = None, augment=None, subset: str = "train",
                 shuffle: bool | None = None, seed: int | None = None, include_empty: bool = False,
                 image_ids=None, drop_last: bool = False, image_root=None, on_error: str = "raise",
                 cache: bool = False, context: int = 0, stride: int = 1, slice_keys=None):
        if context and channels not in (None, 1):
            raise ConfigError(f"context={context} stacks gray slices as the {2 * context + 1} channels of X; "
                              f"leave channels unset (or 1), got channels={channels!r}")
        if context and isinstance(preprocessing, str):
            raise ConfigError(f"preprocessing={preprocessing!r} normalises RGB channels; a stack of "
                              f"{2 * context + 1} slices takes None or a callable")
        super().__init__(source, batch_size=batch_size, input_size=input_size,
                         channels=1 if context else (3 if channels is None else channels),
                         preprocessing=preprocessing, equalize=equalize, augment=augment, subset=subset,
                         seed=seed, on_error=on_error, cache=cache, image_root=image_root)
        self.cat_ids = category_ids(self.coco, classes, "classes")
        self.classes = list(classes)
        check_choice("mask_mode", mask_mode, ("channels", "sparse"))
        self.mask_mode = mask_mode
        check_choice("background", background, (False, True, "last", "first"))
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
        self.context, self.stride = int(context), int(stride)
        self._neighbours = (slice_neighbours(self.coco, self.image_ids, context, stride, slice_keys)
                            if context else None)
        if context:
            self.channels = 2 * self.context + 1
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
        if self._neighbours is None:
            return self.model_input.prepare(image), mask
        slices = [image if other == image_id else self._read(other) for other in self._neighbours[image_id]]
        return np.dstack([self.model_input.prepare(s) for s in slices]), mask

    def _inputs(self, images, *, preprocess: bool = True, out=None) -> np.ndarray:
        """X of a batch; a stack of slices is scaled channel for channel like one gray image."""
        if self._neighbours is None:
            return super()._inputs(images, preprocess=preprocess, out=out)
        x = np.stack([to_float01(image) for image in images]).astype(np.float32, copy=False)
        preprocessing = self.model_input.preprocessing
        return np.asarray(preprocessing(x * 255.0), np.float32) if preprocess and preprocessing else x

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
        x_spec = self._input_spec()
        if self._neighbours is not None:
            x_spec = (x_spec[0], (*self.input_size, self.channels))
        if self.subset == "predict":
            return [x_spec]
        y_dtype = np.dtype(np.int32 if self.mask_mode == "sparse" else np.float32)
        return [x_spec, (y_dtype, (*self.input_size, self.n_outputs))]


def kaggle_generator_arguments(batch_size: int = 8, subset: str = "train", image_list=None, classes=None,
                               input_image_size=(128, 128), annFile=None, shuffle: bool = False, *, coco=None,
                               path_folder=None, **kwargs) -> dict:
    """:class:`SegmentationBatches` keywords from the Kaggle kernel generator's keywords.

    ``DataGeneratorFromCocoJson`` (tf-keras, :mod:`cococxr.sequences`; Keras 3,
    :mod:`cococxr.keras3`) take the kernel's keyword names and fix its defects
    (docs/sequences.md lists them): any input size, any category ids, 0/1 masks,
    nearest-neighbour masks, RGB, last partial batch kept, masks rasterised once per
    image, augmentation.

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
        path_folder: the folder of the images, joined with each ``file_name`` (the
            keyword of the kernel's variants; same as ``image_root``).
        **kwargs: any further :class:`SegmentationBatches` parameter
            (``augment``, ``image_root``, ``seed``...). ``include_empty`` defaults to
            True here: the images listed are the ones wanted.

    Raises:
        ConfigError: no COCO source, or both ``path_folder`` and ``image_root``.
    """
    source = annFile if coco is None else coco
    if source is None:
        raise ConfigError("DataGeneratorFromCocoJson needs annFile= (path of the COCO JSON) or coco=")
    if path_folder is not None and kwargs.get("image_root") is not None:
        raise ConfigError("give path_folder= or image_root= (the same folder of the images), not both")
    image_root = kwargs.pop("image_root", None) if path_folder is None else path_folder
    if not isinstance(source, CocoDataset) and hasattr(source, "dataset"):
        source = source.dataset  # a pycocotools COCO
    source = load_coco(source, image_root)
    if not classes:
        with_masks = {a.get("category_id") for a in source.anns.values() if a.get("segmentation") is not None}
        classes = [cat["name"] for cat_id, cat in source.cats.items() if cat_id in with_masks]
    check_choice("subset", subset, ("train", "test", "predict"))
    image_ids = [r["id"] if isinstance(r, Mapping) else r for r in image_list] if image_list else None
    kwargs.setdefault("include_empty", True)
    return dict(source=source, classes=classes, batch_size=batch_size, input_size=input_image_size,
                subset="train" if subset == "train" else "predict", shuffle=shuffle, image_ids=image_ids, **kwargs)


__all__ = ["SegmentationBatches", "kaggle_generator_arguments"]
