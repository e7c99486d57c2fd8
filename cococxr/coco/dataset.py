"""`CocoDataset`: one COCO dict with a pycocotools-style index; load, query, subset,
merge, split, summarise and write it.

`CocoDataset` wraps one COCO dict (``images``, ``annotations``, ``categories`` plus any
extra keys, kept in order) with an index built once. Validation is :mod:`cococxr.coco.validate`;
the merge and split algorithms are :mod:`cococxr.coco.merge` and :mod:`cococxr.coco.split`.
"""
from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

from pycocotools.coco import COCO

from cococxr.atomic import atomic_write_json
from cococxr.coco.files import read_json, relative_root, resolve_image_root
from cococxr.coco.merge import merge_data
from cococxr.coco.records import image_size, is_label_annotation
from cococxr.coco.split import STRATIFY_BY_LABELS, split_image_ids
from cococxr.coco.validate import ValidationIssue, check_top_level, raise_on_errors, validate_dataset
from cococxr.errors import CocoFormatError, ConfigError, UnsafePathError
from cococxr.paths import check_inside, check_relative_name, safe_join


def _warn_without_mask(issues: list[ValidationIssue], source: str) -> None:
    """One UserWarning for the annotations whose ``segmentation`` is ``[]`` (bounding-box only)."""
    empty = [i for i in issues if i.code == "empty_segmentation"]
    if empty:
        warnings.warn(f"{source}: {len(empty)} annotation(s) have 'segmentation': [] (bounding-box only, e.g. "
                      f"{empty[0].path}, annotation {empty[0].ann_id!r}): they carry no mask and rasterise to "
                      "empty masks", UserWarning, stacklevel=3)


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
            self.source, self.dataset = str(source), read_json(json_path)
        check_top_level(self.dataset, self.source)
        self.image_root = resolve_image_root(image_root, self.dataset, json_path)
        self.issues: list[ValidationIssue] = []
        if validate:
            raise_on_errors(self.validate(), self.source)
            _warn_without_mask(self.issues, self.source)
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
        coco = COCO()
        coco.dataset = self.pycocotools_dataset()
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def pycocotools_dataset(self) -> dict:
        """The dict :meth:`to_pycocotools` indexes: geometry annotations only, as shallow copies."""
        anns = [_pycocotools_annotation(a, self.imgs.get(a.get("image_id")))
                for a in self.dataset.get("annotations", []) if not is_label_annotation(a)]
        return {**self.dataset, "annotations": anns}

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
        data, root = merge_data(parts)
        return cls(data, root, validate=True)

    def split(self, fractions: Mapping[str, float], group_key: str, stratify_key: str | None = None,
              seed: int = 0, allow_missing_group: bool = False) -> dict[str, "CocoDataset"]:
        """Split images into named parts so that no group spans two parts.

        Groups are images sharing ``image[group_key]`` (e.g. ``"patient_id"``), compared
        as ids: ``1``, ``"1"`` and ``1.0`` are one group (`split.group_key_text`). An
        image without it (None, "" or NaN) is an error unless ``allow_missing_group``:
        then each forms its own group, with a UserWarning giving their count. Groups are assigned greedily, largest first (ties in a
        seeded shuffle), each to the part whose size and stratum counts get closest to
        their targets (squared relative error) — deterministic for a given seed.

        Args:
            fractions: part name -> fraction, e.g. ``{"train": 0.7, "val": 0.15, "test": 0.15}``;
                must sum to 1.
            group_key: image-record key identifying groups.
            stratify_key: image-record key to stratify by, `STRATIFY_BY_LABELS` for the
                image-level labels (multi-label images count towards each label), or None.
            seed: seed for the tie-breaking shuffle.
            allow_missing_group: accept images without ``group_key`` (per-image groups).

        Returns:
            Part name -> `subset` of this dataset, in the order of ``fractions``.

        Raises:
            ConfigError: an image without the key (see ``allow_missing_group``), or a key
                that is a list, dict or bool (names the image).
        """
        labels = self.image_labels if stratify_key == STRATIFY_BY_LABELS else None
        parts = split_image_ids(self.imgs, fractions, group_key, stratify_key, seed, labels, self.source,
                                allow_missing_group)
        return {name: self.subset(image_ids) for name, image_ids in parts.items()}

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
            data = {**data, "info": {**info, "image_root": relative_root(self.image_root, Path(path))}}
        try:
            atomic_write_json(path, data, indent=indent)
        except (TypeError, ValueError) as exc:
            where = _bad_json_value(self.dataset)
            raise CocoFormatError(f"cannot write {path}: {exc} (at {where}); the file was not changed") from exc

    def link_issues(self) -> list[ValidationIssue]:
        """Errors for images whose file is a link leaving the image root (the one link policy).

        File names that escape by themselves (``..``, absolute) are validation's concern and
        not repeated here. Empty when ``image_root`` is None.
        """
        if self.image_root is None:
            return []
        issues = []
        for i, (image_id, img) in enumerate(self.imgs.items()):
            name = img.get("file_name")
            try:
                check_relative_name(name)
            except UnsafePathError:
                continue
            try:
                check_inside(self.image_root, Path(self.image_root) / name.replace("\\", "/"))
            except UnsafePathError as exc:
                issues.append(ValidationIssue("error", "unsafe_link", f"image {image_id}: {exc}",
                                              f"images[{i}].file_name", image_id=image_id))
        return issues

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


def _pycocotools_annotation(ann: dict, img: dict | None) -> dict:
    """Shallow-copy an annotation for pycocotools, fixing an RLE size given as [w, h]."""
    ann = dict(ann)
    segm, size = ann.get("segmentation"), image_size(img)
    if isinstance(segm, dict) and size and segm.get("size") == [size[1], size[0]]:
        ann["segmentation"] = {**segm, "size": list(size)}
    return ann


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


__all__ = ["CocoDataset", "merge"]
