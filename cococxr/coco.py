"""COCO datasets: load, validate, index, query, merge, split and write.

`CocoDataset` wraps one COCO dict (``images``, ``annotations``, ``categories`` plus
any extra keys, kept in order) with a pycocotools-style index built once.
`CocoBuilder` assigns deterministic ids for converters. Validation reports every
problem as a `ValidationIssue` naming the JSON path and the image/annotation id.

Annotation kinds (see docs/internals.md): *geometry* annotations carry
``segmentation`` (and/or ``bbox``); *label* annotations carry neither and mark an
image-level finding.

Third-party quirks load as warnings: category id 0 (V7 Darwin), RLE ``size`` written
as ``[width, height]`` (V7 Darwin; read as ``[height, width]`` of the image),
``area``/``bbox`` that disagree with the mask (rounding, or ``area: 0`` on crowd RLE).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
from pycocotools import mask as mask_utils

from cococxr.atomic import atomic_write_json
from cococxr.errors import CocoFormatError, ConfigError, ConversionError, UnsafePathError
from cococxr.paths import check_relative_name, safe_join
from cococxr.rle import polygon_outside_problem

#: Largest distance (pixels) between a stored bbox edge and the mask's before warning.
BBOX_TOLERANCE_PX = 4.0
#: Stored ``area`` may differ from the mask's pixel count by this fraction plus the
#: mask's bbox width + height (the half-pixel band a polygon outline rasterises to).
AREA_RELATIVE_TOLERANCE = 0.05
#: ``split(stratify_key=STRATIFY_BY_LABELS)`` stratifies by image-level labels.
STRATIFY_BY_LABELS = ":labels"
#: Most pixels an image may have: pycocotools stores RLE run lengths as 32-bit unsigned ints.
MAX_PIXELS = 2**32 - 1
_MAX_LISTED_ERRORS = 50
_NO_LABEL = "(no label)"


@dataclass(frozen=True)
class ValidationIssue:
    """One problem found in a COCO dataset.

    Attributes:
        severity: ``"error"`` (the data cannot be used as is) or ``"warning"``.
        code: stable short name, e.g. ``"duplicate_image_id"``.
        message: what is wrong and what was expected; names the image/annotation id.
        path: JSON path of the culprit, e.g. ``"annotations[12].segmentation"``.
        image_id: id of the image concerned, if any.
        ann_id: id of the annotation concerned, if any.
    """

    severity: str
    code: str
    message: str
    path: str
    image_id: Any = None
    ann_id: Any = None

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message} [{self.code}]"


def is_label_annotation(ann: Mapping) -> bool:
    """Return True for an image-level label (no ``segmentation`` and no ``bbox``)."""
    return "segmentation" not in ann and "bbox" not in ann


def validate_dataset(dataset: Any, check_masks: bool = True) -> list[ValidationIssue]:
    """Check a COCO dict and return every issue found (errors and warnings).

    Args:
        dataset: the parsed COCO JSON.
        check_masks: rasterise segmentations to compare them with ``bbox``/``area`` and
            find empty masks (False skips that, for speed on huge files).

    Returns:
        Issues in file order: top level, images, categories, annotations.
    """
    return _Validator(dataset, check_masks).run()


class CocoDataset:
    """A COCO dataset with a pycocotools-style index.

    Attributes:
        dataset: the raw COCO dict (key order and extra keys kept).
        image_root: folder that image ``file_name`` values are relative to, or None (see
            ``__init__`` for how it is resolved).
        source: the file path, or ``"<dict>"``; used in error messages.
        issues: warnings found when loading with ``validate=True`` (or the result of the
            last :meth:`validate` call); datasets derived by :meth:`subset`/:meth:`split`
            are not re-validated and start with no issues.
        validated: True when the records passed validation without errors (loaded with
            ``validate=True``, or derived from such a dataset). Readers then skip their
            own per-annotation checks, so edit a validated dataset's records only through
            :class:`CocoBuilder` (or set ``validated = False``).
        imgs, anns, cats: id -> record.
        img_to_anns: image id -> list of its annotations (every image has an entry).
        cat_to_imgs: category id -> image ids having at least one annotation of it,
            without repeats (pycocotools repeats an image once per annotation).
    """

    def __init__(self, source: str | Path | dict, image_root: str | Path | None = None, *,
                 validate: bool = True):
        """Load and index a COCO file or dict.

        Args:
            source: path of a COCO JSON file, or an already parsed dict (used as is).
            image_root: folder the image ``file_name`` values are relative to. When None:
                ``info["image_root"]`` (absolute, or relative to the JSON's folder; to the
                working directory for a dict), else the JSON's folder, else None.
            validate: run :meth:`validate` and raise on errors (warnings go to ``issues``).

        Raises:
            CocoFormatError: unreadable/invalid JSON, a top level without ``images`` and
                ``categories`` lists, or (``validate=True``) any validation error; the
                exception's ``issues`` holds every issue found.
        """
        json_path = None if isinstance(source, dict) else Path(source)
        if json_path is None:
            self.source, self.dataset = "<dict>", source
        else:
            self.source, self.dataset = str(source), _read_json(json_path)
        _check_top_level(self.dataset, self.source)
        self.image_root = _resolve_image_root(image_root, self.dataset, json_path)
        self.issues: list[ValidationIssue] = []
        if validate:
            _raise_on_errors(self.validate(), self.source)
        self.validated = validate
        self._build_index()

    def __len__(self) -> int:
        return len(self.imgs)

    def __repr__(self) -> str:
        return (f"CocoDataset({self.source!r}: {len(self.imgs)} images, {len(self.anns)} annotations, "
                f"{len(self.cats)} categories)")

    # ------------------------------------------------------------------ index
    def validate(self, check_masks: bool = True) -> list[ValidationIssue]:
        """Validate the dataset, store the issues in ``issues`` and return them (see `validate_dataset`)."""
        self.issues = validate_dataset(self.dataset, check_masks)
        return self.issues

    def _build_index(self) -> None:
        """Build the id indexes in one pass over each list."""
        self.imgs = {self._key(r, "id", f"images[{i}]"): r for i, r in enumerate(self.dataset["images"])}
        self.cats = {self._key(r, "id", f"categories[{i}]"): r for i, r in enumerate(self.dataset["categories"])}
        self._cat_by_name = {}
        for cat_id, cat in self.cats.items():
            self._cat_by_name.setdefault(cat.get("name"), cat_id)
        self.anns, self.img_to_anns = {}, {image_id: [] for image_id in self.imgs}
        self.cat_to_imgs = {cat_id: [] for cat_id in self.cats}
        seen = set()
        for i, ann in enumerate(self.dataset.get("annotations", [])):
            self.anns[self._key(ann, "id", f"annotations[{i}]")] = ann
            image_id = self._key(ann, "image_id", f"annotations[{i}]")
            cat_id = self._key(ann, "category_id", f"annotations[{i}]")
            self.img_to_anns.setdefault(image_id, []).append(ann)
            if (cat_id, image_id) not in seen:
                seen.add((cat_id, image_id))
                self.cat_to_imgs.setdefault(cat_id, []).append(image_id)

    def _key(self, record: Any, key: str, path: str) -> Any:
        """Return ``record[key]`` for indexing, or raise naming the record."""
        value = record.get(key) if isinstance(record, dict) else None
        try:
            hash(value)
        except TypeError:
            value = None
        if value is None:
            raise CocoFormatError(f"{self.source}: {path}: expected an object with a {key!r} "
                                  f"(validate the dataset for details)")
        return value

    # ---------------------------------------------------------------- queries
    def cat_id(self, name: str) -> int:
        """Return the id of the category called ``name``.

        Raises:
            ConfigError: no category has that name.
        """
        try:
            return self._cat_by_name[name]
        except (KeyError, TypeError):
            known = ", ".join(map(repr, self._cat_by_name))
            raise ConfigError(f"{self.source}: no category named {name!r}; known: {known}") from None

    def cat_ids(self, names: str | Iterable[str] | None = None, supercategory: str | None = None) -> list[int]:
        """Return category ids, in the order of ``names`` (or of the file).

        Args:
            names: category name(s) to select; None selects all.
            supercategory: keep only categories with this supercategory.
        """
        if isinstance(names, str):
            names = [names]
        ids = list(self.cats) if names is None else [self.cat_id(n) for n in names]
        if supercategory is not None:
            ids = [i for i in ids if self.cats[i].get("supercategory") == supercategory]
        return ids

    def img_ids(self, cat_names: str | Iterable[str] | None = None, supercategory: str | None = None) -> list[int]:
        """Return image ids (file order) having an annotation of ANY selected category.

        With neither argument, every image id is returned (including unannotated ones).
        """
        if cat_names is None and supercategory is None:
            return list(self.imgs)
        wanted = {i for c in self.cat_ids(cat_names, supercategory) for i in self.cat_to_imgs.get(c, [])}
        return [i for i in self.imgs if i in wanted]

    def anns_for(self, image_id: int, cat_ids: Iterable[int] | None = None,
                 geometry: bool | None = None) -> list[dict]:
        """Return the annotations of one image.

        Args:
            image_id: the image.
            cat_ids: keep only these categories.
            geometry: True for segmentation/bbox annotations only, False for labels only.
        """
        self._image(image_id)
        anns = self.img_to_anns[image_id]
        if cat_ids is not None:
            wanted = set(cat_ids)
            anns = [a for a in anns if a.get("category_id") in wanted]
        if geometry is not None:
            anns = [a for a in anns if is_label_annotation(a) != geometry]
        return anns

    def image_labels(self, image_id: int) -> list[str]:
        """Return the category names of an image's label annotations, without repeats."""
        names = [self.cats[a["category_id"]]["name"] for a in self.anns_for(image_id, geometry=False)]
        return list(dict.fromkeys(names))

    def image_path(self, image_id: int) -> Path:
        """Return ``image_root / file_name`` of an image, refusing names that escape the root.

        Raises:
            ConfigError: ``image_root`` is not set or the id is unknown.
            UnsafePathError: the file name leaves ``image_root``.
        """
        img = self._image(image_id)
        if self.image_root is None:
            raise ConfigError(f"{self.source}: image_root is not set; pass image_root= to CocoDataset")
        return safe_join(self.image_root, img.get("file_name"), where=f"image {image_id} file_name")

    def _image(self, image_id: int) -> dict:
        """Return the image record or raise ConfigError naming the id."""
        try:
            return self.imgs[image_id]
        except (KeyError, TypeError):
            raise ConfigError(f"{self.source}: no image with id {image_id!r}") from None

    # ------------------------------------------------------------ conversions
    def to_pycocotools(self):
        """Return a ``pycocotools.coco.COCO`` over this data, without re-reading any file.

        Only geometry annotations are included (label annotations have no mask, which
        ``annToMask`` and ``COCOeval`` cannot handle). Annotations are shallow copies,
        since ``COCOeval`` rewrites ``segmentation`` in place; RLE sizes stored as
        ``[width, height]`` are corrected to ``[height, width]``.
        """
        from pycocotools.coco import COCO

        coco = COCO()
        anns = [_pycocotools_annotation(a, self.imgs.get(a.get("image_id")))
                for a in self.dataset.get("annotations", []) if not is_label_annotation(a)]
        coco.dataset = {**self.dataset, "annotations": anns}
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def subset(self, image_ids: Iterable[int]) -> "CocoDataset":
        """Return a dataset with only these images and their annotations (ids kept).

        Records are shallow copies; all categories and top-level keys are kept; the
        result is not re-validated.

        Raises:
            ConfigError: an id is not in the dataset.
        """
        wanted = set(image_ids)
        unknown = sorted(map(repr, wanted - self.imgs.keys()))
        if unknown:
            raise ConfigError(f"{self.source}: subset asks for unknown image ids {', '.join(unknown[:10])}")
        data = dict(self.dataset)
        data["images"] = [dict(img) for img in self.dataset["images"] if img["id"] in wanted]
        if "annotations" in data:
            data["annotations"] = [dict(a) for a in data["annotations"] if a["image_id"] in wanted]
        data["categories"] = [dict(c) for c in self.dataset["categories"]]
        subset = CocoDataset(data, self.image_root, validate=False)
        subset.validated = self.validated
        return subset

    @classmethod
    def merge(cls, datasets: Iterable["CocoDataset | dict | str | Path"]) -> "CocoDataset":
        """Merge datasets into one, renumbering ids and mapping categories by name.

        Image and annotation ids become 1..N in input order; extra keys are kept. A
        category keeps the id of its first definition unless that id is taken (then
        max id + 1). Top-level extra keys (``info``, ``licenses``...) come from the
        first dataset. Inputs with different image roots are merged under their common
        parent folder, their file names prefixed with the path from it. The result is
        validated (e.g. duplicate file names across inputs are errors).

        Raises:
            CocoFormatError: a category name has different supercategories, or the merged
                data is invalid.
        """
        parts = [d if isinstance(d, CocoDataset) else CocoDataset(d) for d in datasets]
        if not parts:
            raise ConfigError("merge needs at least one dataset")
        categories, cat_maps = _merge_categories(parts)
        root = _common_root(parts)
        images, annotations = [], []
        for part, cat_map in zip(parts, cat_maps):
            first = len(images)
            _append_renumbered(part, cat_map, images, annotations)
            prefix = _root_prefix(part.image_root, root)
            for img in images[first:]:
                img["file_name"] = prefix + img["file_name"]
        data = {**parts[0].dataset, "images": images, "annotations": annotations, "categories": categories}
        if root is None and isinstance(data.get("info"), dict):
            data["info"] = {k: v for k, v in data["info"].items() if k != "image_root"}
        return cls(data, root, validate=True)

    def split(self, fractions: Mapping[str, float], group_key: str, stratify_key: str | None = None,
              seed: int = 0) -> dict[str, "CocoDataset"]:
        """Split images into named parts so that no group spans two parts.

        Groups are images sharing ``image[group_key]`` (e.g. ``"patient_id"``); images
        without it (None, "" or NaN) each form their own group, with a UserWarning
        giving their count. Groups are assigned greedily, largest first (ties in a
        seeded shuffle), each to the part whose size and stratum counts get closest to
        their targets (squared relative error) — deterministic for a given seed.

        Args:
            fractions: part name -> fraction, e.g. ``{"train": 0.7, "val": 0.15, "test": 0.15}``;
                must sum to 1.
            group_key: image-record key identifying groups.
            stratify_key: image-record key to stratify by, `STRATIFY_BY_LABELS` for the
                image-level labels (multi-label images count towards each label), or None.
            seed: seed for the tie-breaking shuffle.

        Returns:
            Part name -> `subset` of this dataset, in the order of ``fractions``.
        """
        names, weights = _check_fractions(fractions)
        groups = self._groups(group_key)
        strata = self._strata(stratify_key)
        assignment = _assign_groups(groups, strata, weights, seed)
        return {name: self.subset(i for group, part in zip(groups, assignment) if part == k for i in group)
                for k, name in enumerate(names)}

    def _groups(self, group_key: str) -> list[list[int]]:
        """Return image ids grouped by ``group_key`` (first-appearance order)."""
        groups: dict[tuple, list[int]] = {}
        missing = 0
        for image_id, img in self.imgs.items():
            value = img.get(group_key)
            if _is_missing(value):
                missing += 1
                key = ("missing", image_id)
            else:
                key = ("value", json.dumps(value, sort_keys=True))
            groups.setdefault(key, []).append(image_id)
        if missing:
            warnings.warn(f"{self.source}: {missing} of {len(self.imgs)} images have no {group_key!r}; "
                          f"each of them forms its own group", UserWarning, stacklevel=3)
        return list(groups.values())

    def _strata(self, stratify_key: str | None) -> dict[int, list[str]]:
        """Return image id -> stratum names (several for multi-label images)."""
        if stratify_key is None:
            return {image_id: [] for image_id in self.imgs}
        if stratify_key == STRATIFY_BY_LABELS:
            return {image_id: self.image_labels(image_id) or [_NO_LABEL] for image_id in self.imgs}
        return {image_id: [json.dumps(img.get(stratify_key), sort_keys=True)] for image_id, img in self.imgs.items()}

    # ------------------------------------------------------------------ output
    def write(self, path: str | Path, indent: int | None = None) -> None:
        """Write the dataset as JSON atomically (a failure leaves ``path`` untouched).

        Raises:
            CocoFormatError: a value cannot be written as JSON (NaN, infinity, an object
                that is not a JSON type); the message gives its JSON path.
        """
        data = self.dataset
        if self.image_root is not None:
            # Keep the images findable from the file's new folder.
            info = data.get("info") if isinstance(data.get("info"), dict) else {}
            data = {**data, "info": {**info, "image_root": _relative_root(self.image_root, Path(path))}}
        try:
            atomic_write_json(path, data, indent=indent)
        except (TypeError, ValueError) as exc:
            where = _bad_json_value(self.dataset)
            raise CocoFormatError(f"cannot write {path}: {exc} (at {where}); the file was not changed") from exc

    def summary(self) -> dict:
        """Return counts describing the dataset.

        Keys: ``images``, ``annotations``, ``categories``; ``annotations_per_category``
        (name -> geometry annotations); ``label_counts`` (name -> images with that
        label); ``empty_images`` (images without geometry annotations);
        ``missing_image_files`` (file names not found under ``image_root``; None when it
        is not set); ``size_histogram`` ("HxW" -> images, most common first).
        """
        geometry = Counter(a["category_id"] for a in self.anns.values() if not is_label_annotation(a))
        labels = Counter(name for image_id in self.imgs for name in self.image_labels(image_id))
        sizes = Counter(f"{img.get('height')}x{img.get('width')}" for img in self.imgs.values())
        empty = sum(1 for image_id in self.imgs if not self.anns_for(image_id, geometry=True))
        missing = None if self.image_root is None else [
            self.imgs[i]["file_name"] for i in self.imgs if not self.image_path(i).is_file()]
        return {
            "images": len(self.imgs),
            "annotations": len(self.anns),
            "categories": len(self.cats),
            "annotations_per_category": {c.get("name"): geometry[i] for i, c in self.cats.items()},
            "label_counts": dict(labels),
            "empty_images": empty,
            "missing_image_files": missing,
            "size_histogram": dict(sizes.most_common()),
        }


#: Same as `CocoDataset.merge`.
merge = CocoDataset.merge


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
        if not (_is_int(height) and _is_int(width) and height > 0 and width > 0):
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
        segm, rle = _normalise_segmentation(segmentation, img["height"], img["width"], where)
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
        if not (_is_int(image_id) and 1 <= image_id <= len(self.images)):
            raise ConversionError(f"unknown image id {image_id!r}; add the image first")
        return self.images[image_id - 1]

    def _check_category(self, category_id: int) -> None:
        """Raise ConversionError for an id not returned by add_category."""
        if not (_is_int(category_id) and 1 <= category_id <= len(self.categories)):
            raise ConversionError(f"unknown category id {category_id!r}; add the category first")


# ---------------------------------------------------------------- validation
class _Where(NamedTuple):
    """Where an issue is: JSON path, human name, ids."""

    path: str
    what: str
    image_id: Any = None
    ann_id: Any = None


class _Validator:
    """Collects validation issues for one COCO dict."""

    def __init__(self, dataset: Any, check_masks: bool = True):
        self.data = dataset
        self.check_masks = check_masks
        self.issues: list[ValidationIssue] = []
        self.images: dict[int, dict] = {}
        self.image_index: dict[int, int] = {}
        self.cats: dict[int, int] = {}
        self.cat_names: dict[str, int] = {}
        self.ann_ids: dict[int, int] = {}
        self.file_names: dict[str, int] = {}

    def run(self) -> list[ValidationIssue]:
        """Run every check and return the issues."""
        problem = _top_level_problem(self.data)
        if problem:
            self._add("error", "bad_top_level", _Where("$", "dataset"), problem)
            return self.issues
        for i, img in enumerate(self.data["images"]):
            self._image(i, img)
        for i, cat in enumerate(self.data["categories"]):
            self._category(i, cat)
        for i, ann in enumerate(self.data.get("annotations", [])):
            self._annotation(i, ann)
        return self.issues

    def _add(self, severity: str, code: str, where: _Where, message: str, suffix: str = "") -> None:
        """Record an issue at ``where.path + suffix``."""
        self.issues.append(ValidationIssue(severity, code, f"{where.what}: {message}", where.path + suffix,
                                           where.image_id, where.ann_id))

    def _error(self, code: str, where: _Where, message: str, suffix: str = "") -> None:
        self._add("error", code, where, message, suffix)

    def _warn(self, code: str, where: _Where, message: str, suffix: str = "") -> None:
        self._add("warning", code, where, message, suffix)

    def _record_id(self, record: Any, where: _Where, seen: dict, kind: str) -> Any:
        """Check a record is an object with a unique integer id; return the id or None."""
        if not isinstance(record, dict):
            self._error("not_an_object", where._replace(what=f"{kind} record"),
                        f"expected a JSON object, got {_short(record)}")
            return None
        rid = record.get("id")
        if not _is_int(rid):
            self._error("bad_id", where, f"'id' must be an integer, got {_short(rid)}", ".id")
            return None
        if rid in seen:
            self._error(f"duplicate_{kind}_id", where, f"{kind} id {rid} is also used by "
                        f"{where.path.split('[')[0]}[{seen[rid]}]", ".id")
            return None
        return rid

    def _image(self, i: int, img: Any) -> None:
        iid = img.get("id") if isinstance(img, dict) else None
        where = _Where(f"images[{i}]", f"image {_short(iid)}", iid)
        rid = self._record_id(img, where, self.image_index, "image")
        if not isinstance(img, dict):
            return
        if rid is not None:
            self.images[rid], self.image_index[rid] = img, i
        for key in ("height", "width"):
            if not (_is_int(img.get(key)) and img[key] > 0):
                self._error("bad_image_size", where, f"{key} must be a positive integer, got {_short(img.get(key))}",
                            f".{key}")
        if _is_int(img.get("height")) and _is_int(img.get("width")) and img["height"] * img["width"] > MAX_PIXELS:
            self._error("bad_image_size", where, f"height x width = {img['height']} x {img['width']} is more than "
                        f"{MAX_PIXELS} pixels, the most a pycocotools RLE (32-bit run lengths) can hold", ".height")
        self._file_name(img.get("file_name"), where, i)

    def _file_name(self, name: Any, where: _Where, i: int) -> None:
        if not isinstance(name, str) or not name.strip():
            self._error("bad_file_name", where, f"file_name must be a non-empty string, got {_short(name)}",
                        ".file_name")
            return
        try:
            check_relative_name(name, where="file_name")
        except UnsafePathError as exc:
            self._error("unsafe_file_name", where, str(exc).removeprefix("file_name: "), ".file_name")
            return
        if name in self.file_names:
            self._error("duplicate_file_name", where,
                        f"file_name {name!r} is also used by images[{self.file_names[name]}]", ".file_name")
        else:
            self.file_names[name] = i

    def _category(self, i: int, cat: Any) -> None:
        cid, name = (cat.get("id"), cat.get("name")) if isinstance(cat, dict) else (None, None)
        where = _Where(f"categories[{i}]", f"category {_short(cid)} ({_short(name)})")
        if self._record_id(cat, where, self.cats, "category") is None:
            return
        self.cats[cid] = i
        if cid == 0:
            self._warn("category_id_zero", where, "id 0 is treated as background by detectron2 and some "
                       "pycocotools-based tools; ids from 1 are safer", ".id")
        if not isinstance(name, str) or not name:
            self._error("bad_category_name", where, f"name must be a non-empty string, got {_short(name)}", ".name")
        elif name in self.cat_names:
            self._error("duplicate_category_name", where,
                        f"name {name!r} is also used by categories[{self.cat_names[name]}]", ".name")
        else:
            self.cat_names[name] = i

    def _annotation(self, i: int, ann: Any) -> None:
        aid = ann.get("id") if isinstance(ann, dict) else None
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        where = _Where(f"annotations[{i}]", f"annotation {_short(aid)} (image {_short(image_id)})", image_id, aid)
        rid = self._record_id(ann, where, self.ann_ids, "annotation")
        if not isinstance(ann, dict):
            return
        if rid is not None:
            self.ann_ids[rid] = i
        img = self.images.get(image_id) if _is_int(image_id) else None
        if img is None:
            self._error("unknown_image", where, f"image_id {_short(image_id)} is not the id of any image",
                        ".image_id")
        cat_id = ann.get("category_id")
        if not (_is_int(cat_id) and cat_id in self.cats):
            self._error("unknown_category", where, f"category_id {_short(cat_id)} is not the id of any category",
                        ".category_id")
        size = _image_size(img)
        rle = self._segmentation(ann["segmentation"], where, size) if "segmentation" in ann else None
        bbox_ok = self._bbox(ann["bbox"], where) if "bbox" in ann else False
        area_ok = self._area(ann["area"], where) if "area" in ann else False
        if rle is not None:
            self._consistency(ann, rle, where, bbox_ok, area_ok)

    def _segmentation(self, segm: Any, where: _Where, size: tuple[int, int] | None) -> dict | None:
        """Check a segmentation; return its pycocotools RLE when it can be rasterised."""
        if isinstance(segm, list):
            return self._polygons(segm, where, size)
        if isinstance(segm, dict):
            return self._rle(segm, where, size)
        self._error("bad_segmentation", where, "segmentation must be a list of polygons or an RLE object "
                    f"{{'size': [h, w], 'counts': ...}}, got {type(segm).__name__} {_short(segm)}", ".segmentation")
        return None

    def _polygons(self, polygons: list, where: _Where, size: tuple[int, int] | None) -> dict | None:
        if not polygons:
            self._error("empty_segmentation", where, "segmentation is an empty list; drop the key for an "
                        "image-level label", ".segmentation")
            return None
        problems = [(k, _polygon_problem(p)) for k, p in enumerate(polygons)]
        for k, problem in problems:
            if problem:
                self._error("bad_polygon", where, f"polygon {k} {problem}", f".segmentation[{k}]")
        if size is None or any(problem for _, problem in problems):
            return None
        outside = [(k, polygon_outside_problem(p, *size)) for k, p in enumerate(polygons)]
        for k, problem in outside:
            if problem:
                self._error("bad_polygon", where, f"polygon {k} {problem}", f".segmentation[{k}]")
        if any(problem for _, problem in outside) or not self.check_masks:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, *size))

    def _rle(self, segm: dict, where: _Where, size: tuple[int, int] | None) -> dict | None:
        rle_size, counts = segm.get("size"), segm.get("counts")
        if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(_is_int(v) and v >= 0 for v in rle_size)):
            self._error("bad_rle", where, f"RLE size must be [height, width], got {_short(rle_size)}",
                        ".segmentation.size")
            return None
        if size is not None and tuple(rle_size) != size:
            if tuple(rle_size) != size[::-1]:
                self._error("rle_size_mismatch", where, f"RLE size {rle_size} does not match the image's "
                            f"[height, width] = {list(size)}", ".segmentation.size")
                return None
            self._warn("rle_size_swapped", where, f"RLE size {rle_size} is [width, height] of the image "
                       f"(V7 Darwin quirk); read as [height, width] = {list(size)}", ".segmentation.size")
        height, width = size or rle_size
        runs = _rle_runs(counts)
        if runs is None or runs.sum() != height * width:
            got = "undecodable counts" if runs is None else f"counts covering {int(runs.sum())} pixels"
            self._error("bad_rle_counts", where, f"{got}; expected a compressed string or a list of "
                        f"non-negative run lengths summing to height*width = {height * width}",
                        ".segmentation.counts")
            return None
        if size is None or not self.check_masks:
            return None
        return _pycocotools_rle(counts, height, width)

    def _bbox(self, bbox: Any, where: _Where) -> bool:
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            self._error("bad_bbox", where, f"bbox must be 4 finite numbers [x, y, width, height], got {_short(bbox)}",
                        ".bbox")
            return False
        if min(bbox) < 0:
            self._error("bad_bbox", where, f"bbox {bbox} has a negative value; expected x, y, width, height >= 0",
                        ".bbox")
            return False
        return True

    def _area(self, area: Any, where: _Where) -> bool:
        if not (_is_number(area) and area >= 0):
            self._error("bad_area", where, f"area must be a finite number >= 0, got {_short(area)}", ".area")
            return False
        return True

    def _consistency(self, ann: dict, rle: dict, where: _Where, bbox_ok: bool, area_ok: bool) -> None:
        """Warn when the stored bbox/area disagree with the rasterised mask."""
        pixels = int(mask_utils.area(rle))
        mask_box = [float(v) for v in mask_utils.toBbox(rle)]
        if pixels == 0:
            self._warn("empty_mask", where, "segmentation covers no pixel of the image", ".segmentation")
        if bbox_ok:
            stored, derived = _box_edges(ann["bbox"]), _box_edges(mask_box)
            gap = max(abs(a - b) for a, b in zip(stored, derived))
            if gap > BBOX_TOLERANCE_PX:
                self._warn("bbox_mismatch", where, f"bbox {ann['bbox']} differs from the mask's bounding box "
                           f"{mask_box} by {gap:g} px (tolerance {BBOX_TOLERANCE_PX:g})", ".bbox")
        if area_ok:
            tolerance = AREA_RELATIVE_TOLERANCE * pixels + mask_box[2] + mask_box[3]
            if abs(ann["area"] - pixels) > tolerance:
                self._warn("area_mismatch", where, f"area {ann['area']:g} differs from the mask's {pixels} pixels "
                           f"(tolerance {tolerance:.0f})", ".area")


# ------------------------------------------------------------------- helpers
def _read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into a CocoFormatError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CocoFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected COCO JSON") from exc
    except OSError as exc:
        raise CocoFormatError(f"{path}: cannot read the COCO file: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CocoFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                              f"is the file truncated or corrupted?") from exc


def _relative_root(image_root: Path, json_path: Path) -> str:
    """``image_root`` as stored in ``info``: relative to the JSON's folder when possible."""
    root, folder = Path(image_root).resolve(), json_path.resolve().parent
    try:
        return os.path.relpath(root, folder).replace(os.sep, "/")
    except ValueError:  # pragma: no cover - Windows, different drives
        return str(root)


def _common_root(parts: list["CocoDataset"]) -> Path | None:
    """The common parent of the parts' image roots (None when a part has no root)."""
    roots = [p.image_root for p in parts]
    if any(r is None for r in roots):
        return None
    resolved = {Path(r).resolve() for r in roots}
    return resolved.pop() if len(resolved) == 1 else Path(os.path.commonpath(sorted(map(str, resolved))))


def _root_prefix(part_root: Path | None, common: Path | None) -> str:
    """Prefix (``"sub/dir/"`` or ``""``) turning a part's file names into names under ``common``."""
    if part_root is None or common is None:
        return ""
    rel = Path(part_root).resolve().relative_to(common).as_posix()
    return "" if rel == "." else rel + "/"


def _resolve_image_root(image_root: str | Path | None, data: dict, json_path: Path | None) -> Path | None:
    """Explicit root, else ``info["image_root"]`` (relative to the JSON's folder), else that folder."""
    if image_root is not None:
        return Path(image_root)
    info = data.get("info")
    declared = info.get("image_root") if isinstance(info, dict) else None
    folder = json_path.parent if json_path is not None else None
    if isinstance(declared, str) and declared:
        return Path(declared) if folder is None else folder / declared
    return folder


def _top_level_problem(data: Any) -> str | None:
    """Describe what is wrong with the top level of a COCO dict, or return None."""
    if not isinstance(data, dict):
        return f"expected a JSON object with 'images' and 'categories' lists, got a {type(data).__name__}"
    missing = [key for key in ("images", "categories") if key not in data]
    if missing:
        return f"missing the {' and '.join(map(repr, missing))} list(s)"
    for key in ("images", "categories", "annotations"):
        if key in data and not isinstance(data[key], list):
            return f"{key!r} must be a list, got a {type(data[key]).__name__}"
    return None


def _check_top_level(data: Any, source: str) -> None:
    """Raise CocoFormatError (with the issue) when the top level is unusable."""
    problem = _top_level_problem(data)
    if problem:
        issue = ValidationIssue("error", "bad_top_level", f"dataset: {problem}", "$")
        raise CocoFormatError(f"{source}: {problem}", [issue])


def _raise_on_errors(issues: list[ValidationIssue], source: str) -> None:
    """Raise CocoFormatError listing the errors (up to 50 in the message; all in .issues)."""
    errors = [i for i in issues if i.severity == "error"]
    if not errors:
        return
    lines = [f"  - {e.path}: {e.message} [{e.code}]" for e in errors[:_MAX_LISTED_ERRORS]]
    if len(errors) > _MAX_LISTED_ERRORS:
        lines.append(f"  ... and {len(errors) - _MAX_LISTED_ERRORS} more (see the exception's .issues)")
    raise CocoFormatError(f"{source}: {len(errors)} COCO validation error(s):\n" + "\n".join(lines), issues)


def _is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """True for a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_missing(value: Any) -> bool:
    """True for None, an empty string or NaN (a missing group key)."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _short(value: Any, limit: int = 80) -> str:
    """repr() cut to ``limit`` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _image_size(img: dict | None) -> tuple[int, int] | None:
    """Return (height, width) of a valid image record, else None."""
    if img is None:
        return None
    height, width = img.get("height"), img.get("width")
    if _is_int(height) and _is_int(width) and height > 0 and width > 0 and height * width <= MAX_PIXELS:
        return height, width
    return None


def _polygon_problem(polygon: Any) -> str | None:
    """Describe what is wrong with one polygon, or return None."""
    if not isinstance(polygon, list):
        return f"must be a list of numbers [x1, y1, x2, y2, ...], got {type(polygon).__name__}"
    try:
        coords = np.asarray(polygon)
    except ValueError:  # ragged nesting
        coords = np.asarray([None])
    if coords.ndim != 1 or coords.dtype.kind not in "if" or not np.isfinite(coords).all():
        return "contains a value that is not a finite number"
    if len(polygon) % 2:
        return f"has an odd number of coordinates ({len(polygon)}); expected x, y pairs"
    if len(polygon) < 6:
        return f"has {len(polygon) // 2} point(s); a polygon needs at least 3"
    return None


def _rle_runs(counts: Any) -> np.ndarray | None:
    """Return the run lengths of RLE counts (compressed str or list), None if malformed."""
    if isinstance(counts, str):
        return _decode_rle_string(counts)
    if isinstance(counts, list) and all(_is_int(c) and c >= 0 for c in counts) and sum(counts) < 2**62:
        return np.asarray(counts, dtype=np.int64)
    return None


def _decode_rle_string(text: str) -> np.ndarray | None:
    """Decode pycocotools' compressed RLE string (vectorised ``rleFrString``).

    Each count is a little-endian run of 5-bit groups in characters 48..111 (bit 0x20 =
    more groups follow, bit 0x10 of the last group = negative); counts from the third on
    are stored as differences with the count two before.

    Returns:
        int64 run lengths, or None when the string is malformed or a run is negative.
    """
    try:
        chars = np.frombuffer(text.encode("ascii"), np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        return None
    if chars.size == 0:
        return np.zeros(0, np.int64)
    if chars.min() < 0 or chars.max() > 63 or chars[-1] & 0x20:
        return None
    last = (chars & 0x20) == 0
    starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
    shift = np.arange(chars.size) - np.repeat(starts, np.diff(np.append(starts, chars.size)))
    if shift.max() > 6:
        return None
    values = np.add.reduceat((chars & 0x1F) << (5 * shift), starts)
    negative = (chars[last] & 0x10) != 0
    values[negative] |= -1 << (5 * (shift[last][negative] + 1))
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs if runs.min(initial=0) >= 0 else None


def _pycocotools_rle(counts: str | list, height: int, width: int) -> dict:
    """Return a pycocotools RLE (compressed) for validated counts."""
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)
    return {"size": [height, width], "counts": counts}


def _box_edges(box: list[float]) -> tuple[float, float, float, float]:
    """[x, y, w, h] -> (x0, y0, x1, y1)."""
    x, y, w, h = box
    return x, y, x + w, y + h


def _pycocotools_annotation(ann: dict, img: dict | None) -> dict:
    """Shallow-copy an annotation for pycocotools, fixing an RLE size given as [w, h]."""
    ann = dict(ann)
    segm, size = ann.get("segmentation"), _image_size(img)
    if isinstance(segm, dict) and size and segm.get("size") == [size[1], size[0]]:
        ann["segmentation"] = {**segm, "size": list(size)}
    return ann


def _normalise_segmentation(segm: list | dict, height: int, width: int, where: str) -> tuple[list | dict, dict]:
    """Return (JSON-ready segmentation, pycocotools RLE) for CocoBuilder."""
    if isinstance(segm, dict):
        size = list(segm.get("size", ()))
        if size != [height, width]:
            raise ConversionError(f"{where}: RLE size {size} does not match the image [height, width] "
                                  f"= [{height}, {width}]")
        counts = segm.get("counts")
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        runs = _rle_runs(counts)
        if runs is None or runs.sum() != height * width:
            raise ConversionError(f"{where}: RLE counts are not a compressed string or a list of int run "
                                  f"lengths summing to {height}*{width}")
        rle = _pycocotools_rle(counts, height, width)
        text = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
        return {"size": [height, width], "counts": text}, rle
    polygons = [[float(v) for v in polygon] for polygon in segm]
    problems = [f"polygon {k} {p}" for k, p in enumerate(map(_polygon_problem, polygons)) if p]
    problems = problems or [f"polygon {k} {problem}" for k, polygon in enumerate(polygons)
                            if (problem := polygon_outside_problem(polygon, height, width))]
    if problems or not polygons:
        raise ConversionError(f"{where}: {'; '.join(problems) or 'no polygon given'}")
    return polygons, mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))


def _bad_json_value(obj: Any, path: str = "") -> str | None:
    """Return the JSON path of the first value json.dumps(allow_nan=False) rejects."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else path or "$"
    if obj is None or isinstance(obj, (str, int)):
        return None
    if isinstance(obj, dict):
        children = ((f"{path}.{k}" if path else str(k), v) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(obj))
    else:
        return path or "$"
    return next((found for child, value in children if (found := _bad_json_value(value, child))), None)


def _merge_categories(parts: list[CocoDataset]) -> tuple[list[dict], list[dict[int, int]]]:
    """Unite categories by name; return them and one old-id -> new-id map per dataset."""
    merged: dict[str, tuple[int, dict]] = {}
    used: set[int] = set()
    maps = []
    for k, part in enumerate(parts):
        mapping = {}
        for cat in part.dataset["categories"]:
            name = cat["name"]
            if name not in merged:
                new_id = cat["id"] if cat["id"] not in used else max(used) + 1
                merged[name] = (k, {**cat, "id": new_id})
                used.add(new_id)
            first, known = merged[name]
            if known.get("supercategory") != cat.get("supercategory"):
                raise CocoFormatError(
                    f"cannot merge: category {name!r} has supercategory {known.get('supercategory')!r} in dataset "
                    f"{first} ({parts[first].source}) but {cat.get('supercategory')!r} in dataset {k} ({part.source})")
            mapping[cat["id"]] = known["id"]
        maps.append(mapping)
    return [cat for _, cat in merged.values()], maps


def _append_renumbered(part: CocoDataset, cat_map: dict[int, int], images: list, annotations: list) -> None:
    """Append copies of a dataset's images and annotations with new consecutive ids."""
    image_map = {}
    for img in part.dataset["images"]:
        image_map[img["id"]] = len(images) + 1
        images.append({**img, "id": len(images) + 1})
    for ann in part.dataset.get("annotations", []):
        if ann.get("image_id") not in image_map or ann.get("category_id") not in cat_map:
            raise CocoFormatError(f"cannot merge {part.source}: annotation {ann.get('id')!r} points at a missing "
                                  f"image or category")
        annotations.append({**ann, "id": len(annotations) + 1, "image_id": image_map[ann["image_id"]],
                            "category_id": cat_map[ann["category_id"]]})


def _check_fractions(fractions: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    """Return part names and fractions, checking that they are >= 0 and sum to 1."""
    if not isinstance(fractions, Mapping) or not fractions:
        raise ConfigError(f"split fractions must be a non-empty dict name -> fraction, got {fractions!r}")
    values = list(fractions.values())
    if not all(_is_number(v) and v >= 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be numbers >= 0 summing to 1, got {dict(fractions)}")
    return list(fractions), np.asarray(values, dtype=float)


def _assign_groups(groups: list[list[int]], strata: dict[int, list[str]], fractions: np.ndarray,
                   seed: int) -> list[int]:
    """Greedy stratified group assignment; return the part index of each group.

    Each group is a count vector (images, then images per stratum). Groups go largest
    first (ties in a seeded shuffle) to the part whose squared relative error against
    its targets grows least.
    """
    columns = {name: k + 1 for k, name in enumerate(sorted({s for names in strata.values() for s in names}))}
    counts = np.zeros((len(groups), 1 + len(columns)))
    for g, group in enumerate(groups):
        counts[g, 0] = len(group)
        for image_id in group:
            for name in strata[image_id]:
                counts[g, columns[name]] += 1
    totals = counts.sum(axis=0)
    targets = np.outer(fractions, totals)
    scale = 1.0 / np.maximum(totals, 1.0)
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -counts[g, 0])
    current = np.zeros_like(targets)
    assignment = [0] * len(groups)
    for g in order:
        before = ((current - targets) * scale) ** 2
        after = ((current + counts[g] - targets) * scale) ** 2
        part = int(np.argmin((after - before).sum(axis=1)))
        current[part] += counts[g]
        assignment[g] = part
    return assignment


__all__ = [
    "AREA_RELATIVE_TOLERANCE",
    "BBOX_TOLERANCE_PX",
    "STRATIFY_BY_LABELS",
    "CocoBuilder",
    "CocoDataset",
    "ValidationIssue",
    "is_label_annotation",
    "merge",
    "validate_dataset",
]
