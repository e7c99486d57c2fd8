"""`CocoBuilder`: a COCO dataset built with deterministic ids, for converters."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from cococxr.coco.dataset import CocoDataset
from cococxr.coco.records import is_int
from cococxr.coco.validate import polygon_problem, pycocotools_rle
from cococxr.errors import ConversionError, RLEError
from cococxr.paths import check_relative_name
from cococxr.rle import parse_counts, polygon_outside_problem


class CocoBuilder:
    """Builds a COCO dataset with deterministic ids (1, 2, ... in call order) for converters.

    Example:
        >>> b = CocoBuilder()
        >>> lung = b.add_category("lung", "anatomy")
        >>> img = b.add_image("a.png", 4, 4, patient_id="p1")
        >>> b.add_annotation(img, lung, [[0, 0, 3, 0, 3, 3]])
        1
        >>> ds = b.build()
    """

    def __init__(self, info: dict | None = None, licenses: list | None = None):
        """Start an empty dataset; ``info``/``licenses`` are written when given."""
        self._top = {k: v for k, v in (("info", info), ("licenses", licenses)) if v is not None}
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.categories: list[dict] = []
        self._cat_by_name: dict[str, dict] = {}
        self._file_names: set[str] = set()

    def add_category(self, name: str, supercategory: str) -> int:
        """Add a category (or return the id of the same one added before).

        Raises:
            ConversionError: the name exists with another supercategory.
        """
        known = self._cat_by_name.get(name)
        if known is not None:
            if known["supercategory"] != supercategory:
                raise ConversionError(f"category {name!r} was added with supercategory "
                                      f"{known['supercategory']!r}, now {supercategory!r}")
            return known["id"]
        cat = {"id": len(self.categories) + 1, "name": name, "supercategory": supercategory}
        self.categories.append(cat)
        self._cat_by_name[name] = cat
        return cat["id"]

    def add_image(self, file_name: str, height: int, width: int, **extra: Any) -> int:
        """Add an image record; ``extra`` keys (``patient_id``, ``view``...) are stored on it.

        Raises:
            UnsafePathError: ``file_name`` is absolute or contains ``..``.
            ConversionError: bad size, repeated file name, or a reserved extra key.
        """
        check_relative_name(file_name)
        if not (is_int(height) and is_int(width) and height > 0 and width > 0):
            raise ConversionError(f"image {file_name!r}: height and width must be positive integers, "
                                  f"got {height!r} x {width!r}")
        if file_name in self._file_names:
            raise ConversionError(f"image {file_name!r} was already added")
        reserved = {"id", "file_name", "height", "width"} & extra.keys()
        if reserved:
            raise ConversionError(f"image {file_name!r}: extra keys {sorted(reserved)} are reserved")
        self._file_names.add(file_name)
        self.images.append({"id": len(self.images) + 1, "file_name": file_name,
                            "height": int(height), "width": int(width), **extra})
        return len(self.images)

    def add_annotation(self, image_id: int, category_id: int, segmentation: list | dict, **extra: Any) -> int:
        """Add a geometry annotation; ``area`` and ``bbox`` are computed by pycocotools.

        Args:
            image_id: id returned by :meth:`add_image`.
            category_id: id returned by :meth:`add_category`.
            segmentation: polygons ``[[x1, y1, x2, y2, ...], ...]`` or a COCO RLE dict
                (compressed, bytes or str counts, or uncompressed; stored compressed as str).
            **extra: further keys to store (e.g. ``polygon_iou``).

        Raises:
            ConversionError: unknown ids or a malformed segmentation.
        """
        img = self._image(image_id)
        self._check_category(category_id)
        where = f"annotation {len(self.annotations) + 1} (image {image_id})"
        segm, rle = normalise_segmentation(segmentation, img["height"], img["width"], where)
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        return self._add_ann({"image_id": image_id, "category_id": category_id, "segmentation": segm,
                              "area": int(mask_utils.area(rle)), "bbox": bbox, "iscrowd": 0, **extra})

    def add_label(self, image_id: int, category_id: int) -> int:
        """Add an image-level label annotation (no geometry)."""
        self._image(image_id)
        self._check_category(category_id)
        return self._add_ann({"image_id": image_id, "category_id": category_id, "iscrowd": 0, "area": 0})

    def build(self, image_root: str | Path | None = None, *, validate: bool = True) -> CocoDataset:
        """Return the dataset built so far (lists are copied)."""
        data = {**self._top, "images": list(self.images), "annotations": list(self.annotations),
                "categories": list(self.categories)}
        return CocoDataset(data, image_root, validate=validate)

    def _add_ann(self, ann: dict) -> int:
        """Number and store an annotation."""
        self.annotations.append({"id": len(self.annotations) + 1, **ann})
        return len(self.annotations)

    def _image(self, image_id: int) -> dict:
        """Return an added image or raise ConversionError."""
        if not (is_int(image_id) and 1 <= image_id <= len(self.images)):
            raise ConversionError(f"unknown image id {image_id!r}; add the image first")
        return self.images[image_id - 1]

    def _check_category(self, category_id: int) -> None:
        """Raise ConversionError for an id not returned by add_category."""
        if not (is_int(category_id) and 1 <= category_id <= len(self.categories)):
            raise ConversionError(f"unknown category id {category_id!r}; add the category first")


def normalise_segmentation(segm: list | dict, height: int, width: int, where: str) -> tuple[list | dict, dict]:
    """Return (JSON-ready segmentation, pycocotools RLE) for CocoBuilder."""
    if isinstance(segm, dict):
        size = list(segm.get("size", ()))
        if size != [height, width]:
            raise ConversionError(f"{where}: RLE size {size} does not match the image [height, width] "
                                  f"= [{height}, {width}]")
        counts = segm.get("counts")
        try:
            runs, problem = parse_counts(counts), None
        except RLEError as exc:
            runs, problem = None, str(exc)
        if runs is None or runs.sum() != height * width:
            got = f" ({problem})" if problem else f" (they cover {int(runs.sum())} pixels)"
            raise ConversionError(f"{where}: RLE counts are not a compressed string or a list of int run "
                                  f"lengths summing to {height}*{width}{got}")
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")  # validated: ASCII
        rle = pycocotools_rle(counts, runs, height, width)
        text = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
        return {"size": [height, width], "counts": text}, rle
    polygons = [[float(v) for v in polygon] for polygon in segm]
    problems = [f"polygon {k} {p}" for k, p in enumerate(map(polygon_problem, polygons)) if p]
    problems = problems or [f"polygon {k} {problem}" for k, polygon in enumerate(polygons)
                            if (problem := polygon_outside_problem(polygon, height, width))]
    if problems or not polygons:
        raise ConversionError(f"{where}: {'; '.join(problems) or 'no polygon given'}")
    return polygons, mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))


__all__ = ["CocoBuilder"]
