"""Per-image work shared by the mask converters: read, decode classes, fit size, encode.

A converter lists :class:`MaskItem` s (image, its file name, its mask or None, its
image-level label), runs :func:`convert_items` (parallel, ordered) and then
:func:`assemble` numbers everything into a COCO builder with a count report.

Size policy (``size_mismatch``) when a mask's size differs from its image's:

- ``"resize"`` (default): a mask *smaller* than its image with the same aspect ratio
  (within 2 %) is resized to the image with nearest neighbour; the image record gets
  ``mask_resized_from: [h, w]``. A larger mask, or a different aspect ratio, is an error.
- ``"resize-any"``: also shrinks larger masks (same aspect ratio), counted separately,
  since shrinking with nearest neighbour drops thin structures.
- ``"error"``: any size difference is an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Sequence

import cv2
import numpy as np

from cococxr.coco import CocoBuilder
from cococxr.errors import ConfigError, ConversionError
from cococxr.io import image_size, read_image, read_mask
from cococxr.masks import mask_to_annotations
from cococxr.preprocess import resize_mask

from .common import ConversionReport, parallel_map
from .mask_values import MaskValuePolicy, binary_mask, check_mask_file, policy_notes

SIZE_POLICIES = ("resize", "resize-any", "error")
ASPECT_TOLERANCE = 0.02
MAX_LISTED = 10


def format_value(value) -> str:
    """A mask value as written in a class map: ``3`` or ``255,0,0``."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@dataclass(frozen=True)
class MaskDecoder:
    """How mask pixel values become class indices (1..K, 0 = background).

    Attributes:
        names: class names; index k + 1 in a label array is ``names[k]``.
        values: mask value (int, or ``(r, g, b)``) -> class index; empty for a binary
            decoder, where any non-zero pixel is class 1.
    """

    names: tuple[str, ...]
    values: tuple[tuple[int | tuple[int, int, int], int], ...] = ()

    @classmethod
    def binary(cls, name: str) -> "MaskDecoder":
        """Any non-zero pixel (any channel) is ``name``."""
        return cls(names=(name,))

    @classmethod
    def from_class_map(cls, class_map: dict) -> "MaskDecoder":
        """Build from ``{value: name}``; several values may share one name.

        Raises:
            ConfigError: a value is 0 / (0, 0, 0) (background), negative, above 65535,
                not an int or RGB triple, or int and RGB keys are mixed.
        """
        if not class_map:
            raise ConfigError("the class map is empty; give at least one value=name")
        names: list[str] = []
        values = []
        kinds = set()
        for value, name in class_map.items():
            value = tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else value
            kinds.add(isinstance(value, tuple))
            parts = value if isinstance(value, tuple) else (value,)
            if (not all(isinstance(v, (int, np.integer)) for v in parts) or len(parts) not in (1, 3)
                    or any(v < 0 for v in parts) or max(parts) > (255 if len(parts) == 3 else 65535)):
                raise ConfigError(f"class map value {value!r}: expected an integer 1..65535 or R,G,B in 0..255")
            if not any(parts):
                raise ConfigError(f"class map value {format_value(value)}={name}: 0 is the background and "
                                  "is never exported; map only foreground values")
            if not str(name).strip():
                raise ConfigError(f"class map value {format_value(value)}: empty class name")
            if name not in names:
                names.append(str(name).strip())
            values.append((value, names.index(str(name).strip()) + 1))
        if len(kinds) > 1:
            raise ConfigError("the class map mixes single values and R,G,B colours; use one kind")
        return cls(names=tuple(names), values=tuple(values))

    @property
    def rgb(self) -> bool:
        """True when the class map is keyed by RGB colours."""
        return bool(self.values) and isinstance(self.values[0][0], tuple)

    def labels(self, mask: np.ndarray, path: str) -> np.ndarray:
        """Class-index array ``(H, W)`` (uint8, or uint16 past 255 classes) of a raw mask.

        Raises:
            ConversionError: colour mask with a value map (or the reverse), or values that
                the class map does not list (the message names the file and the values).
        """
        if not self.values:
            return (mask.any(axis=2) if mask.ndim == 3 else mask != 0).view(np.uint8)
        if mask.ndim == 3 and not self.rgb:
            if not ((mask[:, :, 0] == mask[:, :, 1]).all() and (mask[:, :, 0] == mask[:, :, 2]).all()):
                raise ConversionError(f"mask {path} is a colour image but the class map lists single values; "
                                      "give colours as R,G,B=name")
            mask = mask[:, :, 0]
        if mask.ndim == 2 and self.rgb:
            raise ConversionError(f"mask {path} is single-channel but the class map lists R,G,B colours")
        if mask.dtype == np.uint8 and not self.rgb:
            return self._labels_uint8(mask, path)
        if self.rgb:
            mask = mask.astype(np.int64)
            mask = (mask[:, :, 0] << 16) | (mask[:, :, 1] << 8) | mask[:, :, 2]
            lookup = {(r << 16) | (g << 8) | b: k for (r, g, b), k in self.values}
        else:
            lookup = dict(self.values)
        present, inverse = np.unique(mask, return_inverse=True)
        self._check_known([int(v) for v in present if v and int(v) not in lookup], path)
        mapped = np.array([lookup.get(int(v), 0) for v in present], dtype=self._dtype)
        return mapped[inverse.reshape(mask.shape)]

    @property
    def _dtype(self) -> type:
        """Label array dtype: uint8 up to 255 classes, else uint16."""
        return np.uint8 if len(self.names) <= 255 else np.uint16

    def _labels_uint8(self, mask: np.ndarray, path: str) -> np.ndarray:
        """Fast path for 8-bit masks: two 256-entry lookup tables (cv2.LUT)."""
        table, unknown = np.zeros(256, self._dtype), np.ones(256, np.uint8)
        unknown[0] = 0
        for value, index in self.values:
            if value < 256:
                table[value], unknown[value] = index, 0
        flags = cv2.LUT(mask, unknown)
        if flags.any():
            self._check_known(np.unique(mask[flags != 0]).tolist(), path)
        return cv2.LUT(mask, table) if table.dtype == np.uint8 else table[mask]

    def _check_known(self, unknown: list[int], path: str) -> None:
        """Raise ConversionError naming the mask and the values the class map lacks."""
        if unknown:
            shown = [format_value(((v >> 16) & 255, (v >> 8) & 255, v & 255)) if self.rgb else str(v)
                     for v in unknown[:MAX_LISTED]]
            known = ", ".join(format_value(v) for v, _ in self.values)
            raise ConversionError(
                f"mask {path} has value(s) {'; '.join(shown)}{' ...' if len(unknown) > MAX_LISTED else ''} "
                f"that the class map does not list (known: 0 = background, {known})")


@dataclass(frozen=True)
class MaskItem:
    """One image to convert.

    Attributes:
        image: path of the image file.
        file_name: its name relative to the image root (POSIX separators).
        mask: path of its mask, or None for an image recorded without one.
        label: image-level label (category name), or None.
    """

    image: str
    file_name: str
    mask: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class MaskOptions:
    """Settings of the per-image work (picklable, sent to worker processes)."""

    decoder: MaskDecoder
    instances: bool = False
    polygons: bool = False
    size_mismatch: str = "resize"
    verify_images: bool = False
    values: MaskValuePolicy = MaskValuePolicy()


@dataclass
class ItemResult:
    """What one image produced: its size, annotations (``category_id`` = class index) and facts."""

    height: int
    width: int
    annotations: list[dict] = field(default_factory=list)
    resized: str | None = None  # "up" or "down"
    mask_size: tuple[int, int] | None = None
    lossy: bool = False
    thresholded: bool = False


def check_size(mask_shape: Sequence[int], image_shape: Sequence[int], policy: str,
               mask_path: str, image_path: str) -> str | None:
    """Apply the size policy; return None (same size), ``"up"`` or ``"down"``.

    Raises:
        ConversionError: the policy refuses this mismatch (names both files and sizes).
    """
    (mh, mw), (h, w) = mask_shape[:2], image_shape[:2]
    if (mh, mw) == (h, w):
        return None
    sizes = f"mask {mask_path} is {mh}x{mw} (HxW) but its image {image_path} is {h}x{w}"
    if policy == "error":
        raise ConversionError(f"{sizes}; --size-mismatch error refuses any difference")
    if abs((mh / mw) / (h / w) - 1) > ASPECT_TOLERANCE:
        raise ConversionError(f"{sizes}: the aspect ratios differ by more than 2 %, so the mask "
                              "does not belong to this image (or was cropped); fix the files")
    if mh <= h and mw <= w:
        return "up"
    if policy == "resize-any":
        return "down"
    raise ConversionError(f"{sizes}: the mask is larger than its image; shrinking it loses detail. "
                          "Pass --size-mismatch resize-any to shrink it with nearest neighbour")


def convert_item(item: MaskItem, options: MaskOptions) -> ItemResult:
    """Read one image (size) and its mask and encode one annotation per class (or instance)."""
    shape = read_image(item.image).shape if options.verify_images else image_size(item.image)
    result = ItemResult(height=int(shape[0]), width=int(shape[1]))
    if item.mask is None:
        return result
    result.lossy = check_mask_file(item.mask, options.values)
    mask = read_mask(item.mask)
    if not options.decoder.values:  # binary: one non-zero value, or the policy's threshold
        mask = binary_mask(mask, item.mask, options.values, result.lossy)
        result.thresholded = options.values.threshold is not None or result.lossy
    labels = options.decoder.labels(mask, item.mask)
    result.resized = check_size(labels.shape, shape, options.size_mismatch, item.mask, item.image)
    if result.resized:
        result.mask_size = tuple(int(v) for v in labels.shape)
        labels = resize_mask(labels, (result.height, result.width))
    for index in range(1, len(options.decoder.names) + 1):
        binary = labels if len(options.decoder.names) == 1 else (labels == index).view(np.uint8)
        if binary.any():
            result.annotations += mask_to_annotations(binary, index, 0, instances=options.instances,
                                                      polygons=options.polygons)
    return result


def convert_items(items: Sequence[MaskItem], options: MaskOptions, workers: int = 1) -> list[ItemResult]:
    """:func:`convert_item` over every item, in order (``workers`` processes)."""
    if options.size_mismatch not in SIZE_POLICIES:
        raise ConfigError(f"size_mismatch must be one of {', '.join(SIZE_POLICIES)}, got {options.size_mismatch!r}")
    return parallel_map(partial(convert_item, options=options), items, workers=workers, desc="masks")


def raise_problems(problems: list[str], what: str) -> None:
    """Raise one ConversionError listing every problem (the first 20 in full)."""
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise ConversionError(f"{len(problems)} problem(s) with {what}:\n  " + "\n  ".join(shown))


def assemble(items: Sequence[MaskItem], results: Sequence[ItemResult], decoder: MaskDecoder,
             report: ConversionReport, *, info: dict, supercategory: str = "anatomy",
             extras: dict[str, dict] | None = None, label_names: Sequence[str] | None = None,
             values: MaskValuePolicy | None = None) -> CocoBuilder:
    """Number images, categories and annotations into a :class:`cococxr.coco.CocoBuilder`.

    Categories: the decoder's classes (``supercategory``) in order, then the labels
    (``"finding"``) in ``label_names`` order (default: sorted). Counts go to ``report``, and
    the mask-value policies in force (``values``) to its notes.
    The builder checks every image and annotation as it is added, so the dataset needs
    no re-validation (``finish(..., checked=True)``).
    """
    extras = extras or {}
    labels = list(label_names) if label_names is not None else sorted({i.label for i in items if i.label})
    clash = sorted(set(labels) & set(decoder.names))
    if clash:
        raise ConfigError(f"label(s) {', '.join(clash)} are also mask class names; rename one of them")
    builder = CocoBuilder(info=info)
    class_ids = [builder.add_category(name, supercategory=supercategory) for name in decoder.names]
    label_ids = {name: builder.add_category(name, supercategory="finding") for name in labels}
    for key in ("images out", "masks converted", "non-empty masks", "empty masks", "images without mask"):
        report.add(key, 0)  # a stable order in the printed report, zeros included
    per_class: dict[str, int] = dict.fromkeys(decoder.names, 0)
    per_label: dict[str, int] = dict.fromkeys(labels, 0)
    ious: list[float] = []
    for item, result in zip(items, results, strict=True):
        record = dict(extras.get(item.file_name, {}))
        if result.resized:
            record["mask_resized_from"] = list(result.mask_size)
        image_id = builder.add_image(item.file_name, result.height, result.width, **record)
        for ann in result.annotations:
            name = decoder.names[ann["category_id"] - 1]
            extra = {"polygon_iou": ann["polygon_iou"]} if "polygon_iou" in ann else {}
            builder.add_annotation(image_id, class_ids[ann["category_id"] - 1], ann["segmentation"], **extra)
            per_class[name] += 1
            ious += extra.values()
        if item.label:
            builder.add_label(image_id, label_ids[item.label])
            per_label[item.label] += 1
        _count(report, item, result)
    for name, n in per_class.items():
        report.add(f"annotations out: {name}", n)
    for name, n in per_label.items():
        report.add(f"labels out: {name}", n)
    report.notes += policy_notes(values or MaskValuePolicy(class_map=bool(decoder.values)),
                                 sum(r.lossy for r in results), sum(r.thresholded for r in results))
    if ious:
        report.notes.append(f"polygons: raster IoU vs the mask min {min(ious):.4f}, mean {np.mean(ious):.4f} "
                            "(polygons are lossy; drop --polygons for exact RLE)")
    return builder


def _count(report: ConversionReport, item: MaskItem, result: ItemResult) -> None:
    """Add one image's counts to the report."""
    report.add("images out")
    if item.mask is None:
        report.add("images without mask")
        return
    report.add("masks converted")
    report.add("non-empty masks" if result.annotations else "empty masks")
    if result.resized == "up":
        report.add("masks enlarged to their image (nearest)")
    elif result.resized == "down":
        report.add("masks shrunk to their image (nearest)")

