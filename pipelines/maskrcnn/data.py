"""A ``torch.utils.data.Dataset`` of COCO images and Mask R-CNN targets.

Each item is ``(image, target)`` as torchvision's detection models take them: the image a
float32 ``(3, H, W)`` tensor in 0..1 (grayscale repeated to three channels) at its
original size, the target a dict of ``boxes`` (float32 ``(N, 4)``, ``x1, y1, x2, y2`` in
pixels, ``x2``/``y2`` exclusive: the box of the mask), ``labels`` (int64 ``(N,)``, 1..K
from a :class:`~cococxr.pipelines.maskrcnn.labels.LabelMap`), ``masks`` (uint8
``(N, H, W)``), ``image_id``, ``area`` and ``iscrowd``.

Only geometry annotations with ``iscrowd`` 0 of the label map's categories become
targets (RLE and polygons alike, rasterised by :mod:`cococxr.masks`); image-level labels
have no geometry and are ignored. An annotation whose mask is empty has no box (a
degenerate box would stop training): it is skipped, counted in ``skipped`` and logged
once. This module imports torch at import time: import it after
:func:`~cococxr.pipelines.maskrcnn.model.require_torch`.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from cococxr.errors import ConfigError
from cococxr.io import read_image, to_float01
from cococxr.masks import annotation_to_mask
from cococxr.pipelines.maskrcnn.labels import LabelMap
from cococxr.rle import rle_area, segmentation_to_rle

log = logging.getLogger(__name__)


def read_rgb01(path, height: int, width: int) -> np.ndarray:
    """Read an image as float32 ``(H, W, 3)`` in 0..1, checking its size against the record.

    Raises:
        ConfigError: the file's size differs from ``(height, width)``.
    """
    image = to_float01(read_image(path))
    if image.shape[:2] != (height, width):
        raise ConfigError(f"{path}: image is {image.shape[0]}x{image.shape[1]} but its COCO record "
                          f"says {height}x{width}")
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def mask_box(mask: np.ndarray) -> list[float]:
    """``[x1, y1, x2, y2]`` of a non-empty mask (``x2``/``y2`` one past the last pixel)."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    y1, y2 = np.flatnonzero(rows)[[0, -1]]
    x1, x2 = np.flatnonzero(cols)[[0, -1]]
    return [float(x1), float(y1), float(x2 + 1), float(y2 + 1)]


class CocoMaskRCNNDataset(torch.utils.data.Dataset):
    """COCO images with their instance targets (see the module docstring).

    Args:
        coco: a :class:`~cococxr.coco.CocoDataset` with an image root.
        label_map: the categories to learn and their labels.
        image_ids: images to serve (default: every image with at least one usable
            annotation).
        hflip: probability of a horizontal flip of image, masks and boxes (training);
            drawn from torch's random generator, which ``torch.manual_seed`` and the
            DataLoader's worker seeding make reproducible.

    Attributes:
        image_ids: the served images, in order.
        skipped: ids of annotations left out because their mask is empty.
    """

    def __init__(self, coco, label_map: LabelMap, image_ids=None, *, hflip: float = 0.0):
        self.coco, self.label_map, self.hflip = coco, label_map, float(hflip)
        self._anns: dict = {}
        self.skipped: list = []
        for image_id, anns in coco.img_to_anns.items():
            img = coco.imgs[image_id]
            kept = []
            for ann in anns:
                usable = ann.get("segmentation") is not None and not ann.get("iscrowd", 0)
                if not usable or not label_map.label(ann["category_id"]):
                    continue
                if rle_area(segmentation_to_rle(ann["segmentation"], img["height"], img["width"])) == 0:
                    self.skipped.append(ann.get("id"))
                    continue
                kept.append(ann)
            self._anns[image_id] = kept
        if self.skipped:
            log.warning("%s: skipped %d annotation(s) with an empty mask (no box): ids %s%s", coco.source,
                        len(self.skipped), self.skipped[:10], " ..." if len(self.skipped) > 10 else "")
        self.image_ids = ([i for i in coco.imgs if self._anns[i]] if image_ids is None else list(image_ids))

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int):
        image_id = self.image_ids[index]
        img = self.coco.imgs[image_id]
        height, width = int(img["height"]), int(img["width"])
        image = read_rgb01(self.coco.image_path(image_id), height, width)
        anns = self._anns.get(image_id, [])
        masks = np.zeros((len(anns), height, width), np.uint8)
        for k, ann in enumerate(anns):
            masks[k] = annotation_to_mask(ann, height, width)
        if self.hflip and torch.rand(()).item() < self.hflip:
            image, masks = image[:, ::-1], masks[:, :, ::-1]
        target = {
            "boxes": torch.tensor([mask_box(m) for m in masks], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([self.label_map.label(a["category_id"]) for a in anns], dtype=torch.int64),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
            "image_id": torch.tensor(image_id, dtype=torch.int64),
            "area": torch.from_numpy(masks.reshape(len(anns), -1).sum(axis=1).astype(np.float32)),
            "iscrowd": torch.zeros(len(anns), dtype=torch.int64),
        }
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), target


def collate(batch):
    """Keep images and targets as lists (detection models take images of any size)."""
    return tuple(zip(*batch))


__all__ = ["CocoMaskRCNNDataset", "read_rgb01", "mask_box", "collate"]
