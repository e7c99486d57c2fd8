"""COCO validation: every problem of a COCO dict as a `ValidationIssue`.

Each issue names the JSON path and the image/annotation id. Third-party quirks load as
warnings: category id 0 (V7 Darwin), RLE ``size`` written as ``[width, height]`` (V7
Darwin; read as ``[height, width]`` of the image, only when the annotation's bbox confirms
that reading: else it is the error ``rle_size_mismatch``), ``area``/``bbox`` that disagree with
the mask (rounding, or ``area: 0`` on crowd RLE). RLE counts are checked by the codec
(:func:`cococxr.rle.parse_counts`). Types are exact, as pycocotools reads them: ids,
``height``/``width`` are ints (not bools or floats), ``iscrowd`` is the int 0 or 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from pycocotools import mask as mask_utils

from cococxr.coco.records import MAX_PIXELS, image_size, is_int, is_number, other_coco_kind, short
from cococxr.errors import CocoFormatError, RLEError, UnsafePathError
from cococxr.paths import check_relative_name
from cococxr.rle import encode_counts, max_pixels, parse_counts, polygon_outside_problem

#: Largest distance (pixels) between a stored bbox edge and the mask's before warning.
BBOX_TOLERANCE_PX = 4.0
#: Stored ``area`` may differ from the mask's pixel count by this fraction plus the
#: mask's bbox width + height (the half-pixel band a polygon outline rasterises to).
AREA_RELATIVE_TOLERANCE = 0.05
_MAX_LISTED_ERRORS = 50


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


def top_level_problem(data: Any) -> str | None:
    """Describe what is wrong with the top level of a COCO dict, or return None."""
    if not isinstance(data, dict):
        return f"expected a JSON object with 'images' and 'categories' lists, got a {type(data).__name__}"
    other = other_coco_kind(data)
    if other:
        return f"this is {other}"
    missing = [key for key in ("images", "categories") if key not in data]
    if missing:
        return f"missing the {' and '.join(map(repr, missing))} list(s)"
    for key in ("images", "categories", "annotations"):
        if key in data and not isinstance(data[key], list):
            return f"{key!r} must be a list, got a {type(data[key]).__name__}"
    return None


def check_top_level(data: Any, source: str) -> None:
    """Raise CocoFormatError (with the issue) when the top level is unusable."""
    problem = top_level_problem(data)
    if problem:
        issue = ValidationIssue("error", "bad_top_level", f"dataset: {problem}", "$")
        raise CocoFormatError(f"{source}: {problem}", [issue])


def raise_on_errors(issues: list[ValidationIssue], source: str) -> None:
    """Raise CocoFormatError listing the errors (up to 50 in the message; all in .issues)."""
    errors = [i for i in issues if i.severity == "error"]
    if not errors:
        return
    lines = [f"  - {e.path}: {e.message} [{e.code}]" for e in errors[:_MAX_LISTED_ERRORS]]
    if len(errors) > _MAX_LISTED_ERRORS:
        lines.append(f"  ... and {len(errors) - _MAX_LISTED_ERRORS} more (see the exception's .issues)")
    raise CocoFormatError(f"{source}: {len(errors)} COCO validation error(s):\n" + "\n".join(lines), issues)


def polygon_problem(polygon: Any) -> str | None:
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


def counts_runs(counts: Any) -> tuple[np.ndarray | None, str | None]:
    """Decode RLE counts read from JSON with the codec (:func:`cococxr.rle.parse_counts`).

    Returns:
        ``(run lengths, None)``, or ``(None, what is wrong)``: a str that is not a valid
        compressed string, a list that is not of integers in 0..2**32 - 1, or another type.
    """
    if isinstance(counts, bytes):
        return None, "bytes; JSON counts are a str or a list"
    try:
        return parse_counts(counts), None
    except RLEError as exc:
        return None, str(exc)


def pycocotools_rle(counts: str | bytes | list, runs: np.ndarray, height: int, width: int) -> dict:
    """The RLE pycocotools takes for counts validated by `counts_runs` (lists compressed)."""
    return {"size": [height, width], "counts": encode_counts(runs) if isinstance(counts, list) else counts}


def _box_edges(box: list[float]) -> tuple[float, float, float, float]:
    """[x, y, w, h] -> (x0, y0, x1, y1)."""
    x, y, w, h = box
    return x, y, x + w, y + h


def _not_int(value: Any) -> str:
    """`` (ids are integers, this is a str)`` for a value of the wrong type, else ''."""
    return "" if is_int(value) or value is None else f" (ids are integers; this is a {type(value).__name__})"


def _bbox_confirms(bbox: Any, rle: dict) -> bool:
    """True when ``bbox`` matches the bounding box of ``rle`` within `BBOX_TOLERANCE_PX`."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
        return False
    derived = _box_edges([float(v) for v in mask_utils.toBbox(rle)])
    return max(abs(a - b) for a, b in zip(_box_edges(bbox), derived)) <= BBOX_TOLERANCE_PX


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
        self.max_pixels = max_pixels()

    def run(self) -> list[ValidationIssue]:
        """Run every check and return the issues."""
        problem = top_level_problem(self.data)
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
                        f"expected a JSON object, got {short(record)}")
            return None
        rid = record.get("id")
        if not is_int(rid):
            self._error("bad_id", where, f"'id' must be an integer, got {short(rid)}", ".id")
            return None
        if rid in seen:
            self._error(f"duplicate_{kind}_id", where, f"{kind} id {rid} is also used by "
                        f"{where.path.split('[')[0]}[{seen[rid]}]", ".id")
            return None
        return rid

    def _image(self, i: int, img: Any) -> None:
        iid = img.get("id") if isinstance(img, dict) else None
        where = _Where(f"images[{i}]", f"image {short(iid)}", iid)
        rid = self._record_id(img, where, self.image_index, "image")
        if not isinstance(img, dict):
            return
        if rid is not None:
            self.images[rid], self.image_index[rid] = img, i
        for key in ("height", "width"):
            if not (is_int(img.get(key)) and img[key] > 0):
                self._error("bad_image_size", where, f"{key} must be a positive integer, got {short(img.get(key))}",
                            f".{key}")
        pixels = img["height"] * img["width"] if is_int(img.get("height")) and is_int(img.get("width")) else 0
        if pixels > MAX_PIXELS:
            self._error("bad_image_size", where, f"height x width = {img['height']} x {img['width']} is more than "
                        f"{MAX_PIXELS} pixels, the most a pycocotools RLE (32-bit run lengths) can hold", ".height")
        elif pixels > self.max_pixels:
            self._error("bad_image_size", where, f"height x width = {img['height']} x {img['width']} = {pixels} "
                        f"pixels is over the limit of {self.max_pixels} (set COCOCXR_MAX_PIXELS to allow it)",
                        ".height")
        self._file_name(img.get("file_name"), where, i)

    def _file_name(self, name: Any, where: _Where, i: int) -> None:
        if not isinstance(name, str) or not name.strip():
            self._error("bad_file_name", where, f"file_name must be a non-empty string, got {short(name)}",
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
        where = _Where(f"categories[{i}]", f"category {short(cid)} ({short(name)})")
        if self._record_id(cat, where, self.cats, "category") is None:
            return
        self.cats[cid] = i
        if cid == 0:
            self._warn("category_id_zero", where, "id 0 is treated as background by detectron2 and some "
                       "pycocotools-based tools; ids from 1 are safer", ".id")
        if not isinstance(name, str) or not name:
            self._error("bad_category_name", where, f"name must be a non-empty string, got {short(name)}", ".name")
        elif name in self.cat_names:
            self._error("duplicate_category_name", where,
                        f"name {name!r} is also used by categories[{self.cat_names[name]}]", ".name")
        else:
            self.cat_names[name] = i

    def _annotation(self, i: int, ann: Any) -> None:
        aid = ann.get("id") if isinstance(ann, dict) else None
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        where = _Where(f"annotations[{i}]", f"annotation {short(aid)} (image {short(image_id)})", image_id, aid)
        rid = self._record_id(ann, where, self.ann_ids, "annotation")
        if not isinstance(ann, dict):
            return
        if rid is not None:
            self.ann_ids[rid] = i
        img = self.images.get(image_id) if is_int(image_id) else None
        if img is None:
            self._error("unknown_image", where, f"image_id {short(image_id)} is not the id of any image"
                        f"{_not_int(image_id)}", ".image_id")
        cat_id = ann.get("category_id")
        if not (is_int(cat_id) and cat_id in self.cats):
            self._error("unknown_category", where, f"category_id {short(cat_id)} is not the id of any category"
                        f"{_not_int(cat_id)}", ".category_id")
        if "iscrowd" in ann and not (is_int(ann["iscrowd"]) and ann["iscrowd"] in (0, 1)):
            self._error("bad_iscrowd", where, f"iscrowd must be the integer 0 or 1, got {short(ann['iscrowd'])} "
                        "(pycocotools' COCOeval ignores a ground truth whose iscrowd is any true value, "
                        "such as the string '0')", ".iscrowd")
        size = image_size(img)
        rle = self._segmentation(ann["segmentation"], where, size, ann) if "segmentation" in ann else None
        bbox_ok = self._bbox(ann["bbox"], where) if "bbox" in ann else False
        area_ok = self._area(ann["area"], where) if "area" in ann else False
        if rle is not None:
            self._consistency(ann, rle, where, bbox_ok, area_ok)

    def _segmentation(self, segm: Any, where: _Where, size: tuple[int, int] | None, ann: dict) -> dict | None:
        """Check a segmentation; return its pycocotools RLE when it can be rasterised."""
        if isinstance(segm, list):
            return self._polygons(segm, where, size)
        if isinstance(segm, dict):
            return self._rle(segm, where, size, ann.get("bbox"))
        self._error("bad_segmentation", where, "segmentation must be a list of polygons or an RLE object "
                    f"{{'size': [h, w], 'counts': ...}}, got {type(segm).__name__} {short(segm)}", ".segmentation")
        return None

    def _polygons(self, polygons: list, where: _Where, size: tuple[int, int] | None) -> dict | None:
        if not polygons:
            self._warn("empty_segmentation", where, "segmentation is an empty list: a bounding-box-only "
                       "annotation (as Roboflow and CVAT export them) that carries no mask; it rasterises to an "
                       "empty mask", ".segmentation")
            return None
        problems = [(k, polygon_problem(p)) for k, p in enumerate(polygons)]
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

    def _rle(self, segm: dict, where: _Where, size: tuple[int, int] | None, bbox: Any) -> dict | None:
        rle_size, counts = segm.get("size"), segm.get("counts")
        if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(is_int(v) and v >= 0 for v in rle_size)):
            self._error("bad_rle", where, f"RLE size must be [height, width], got {short(rle_size)}",
                        ".segmentation.size")
            return None
        swapped = size is not None and tuple(rle_size) != size
        if swapped and tuple(rle_size) != size[::-1]:
            self._error("rle_size_mismatch", where, f"RLE size {rle_size} does not match the image's "
                        f"[height, width] = {list(size)}", ".segmentation.size")
            return None
        height, width = size or rle_size
        runs, problem = counts_runs(counts)
        if swapped and runs is not None and runs.sum() == height * width:
            if not _bbox_confirms(bbox, pycocotools_rle(counts, runs, height, width)):
                self._error("rle_size_mismatch", where, f"RLE size {rle_size} is the image's [height, width] = "
                            f"{list(size)} swapped, and the annotation's bbox {short(bbox)} does not confirm "
                            "reading it as the image's size (the V7 Darwin quirk): the mask would be scrambled; "
                            "re-encode it at [height, width]", ".segmentation.size")
                return None
            self._warn("rle_size_swapped", where, f"RLE size {rle_size} is [width, height] of the image "
                       f"(V7 Darwin quirk, confirmed by its bbox); read as [height, width] = {list(size)}",
                       ".segmentation.size")
        if runs is None or runs.sum() != height * width:
            got = f"undecodable counts ({problem})" if runs is None else f"counts covering {int(runs.sum())} pixels"
            self._error("bad_rle_counts", where, f"{got}; expected a compressed string or a list of "
                        f"non-negative run lengths summing to height*width = {height * width}",
                        ".segmentation.counts")
            return None
        if size is None or not self.check_masks:
            return None
        return pycocotools_rle(counts, runs, height, width)

    def _bbox(self, bbox: Any, where: _Where) -> bool:
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
            self._error("bad_bbox", where, f"bbox must be 4 finite numbers [x, y, width, height], got {short(bbox)}",
                        ".bbox")
            return False
        if min(bbox) < 0:
            self._error("bad_bbox", where, f"bbox {bbox} has a negative value; expected x, y, width, height >= 0",
                        ".bbox")
            return False
        return True

    def _area(self, area: Any, where: _Where) -> bool:
        if not (is_number(area) and area >= 0):
            self._error("bad_area", where, f"area must be a finite number >= 0, got {short(area)}", ".area")
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


__all__ = [
    "AREA_RELATIVE_TOLERANCE",
    "BBOX_TOLERANCE_PX",
    "ValidationIssue",
    "validate_dataset",
    "top_level_problem",
    "check_top_level",
    "raise_on_errors",
    "polygon_problem",
    "counts_runs",
    "pycocotools_rle",
]
