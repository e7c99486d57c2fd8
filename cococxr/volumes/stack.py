"""COCO slices -> volumes: group images by ``case_id``, check they are complete, stack masks.

The image records written by the volume converters carry ``case_id``, ``slice_index``
and the layout keys of :meth:`SliceLayout.record`; categories carry ``label_value``
(the voxel value of the structure in its label volume). From those a case's label
volume is rebuilt voxel for voxel in its source array's layout, with its affine.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cococxr.coco import CocoDataset
from cococxr.errors import ConversionError
from cococxr.masks import annotation_to_mask, annotations_to_channels

from .layout import SliceLayout

_LAYOUT_KEYS = ("axis", "affine", "volume_shape", "num_slices")
MAX_LISTED = 10
OVERLAP_POLICIES = ("error", "last")


@dataclass(eq=False)
class CaseVolume:
    """One case's slice images, in slice order.

    Attributes:
        case_id: the images' ``case_id``.
        layout: the recorded slice layout.
        image_ids: image id of each slice (index = ``slice_index``); None for a slice
            left out as empty (``empty_slices_omitted`` on the records).
    """

    case_id: str
    layout: SliceLayout
    image_ids: list[int | None]


def _listed(items: Sequence) -> str:
    shown = ", ".join(map(str, items[:MAX_LISTED]))
    return shown + (f" ... ({len(items)} in all)" if len(items) > MAX_LISTED else "")


def case_volumes(dataset: CocoDataset, case_ids: Sequence[str] | None = None) -> dict[str, CaseVolume]:
    """The cases of ``dataset`` (sorted by case id), each checked complete and consistent.

    A case converted with empty slices left out (``empty_slices_omitted``) may lack
    slices; they are empty.

    Args:
        case_ids: only these cases (default: all).

    Raises:
        ConversionError: images without ``case_id`` / ``slice_index``, images of one case
            that disagree on the layout keys, a repeated or missing slice index, or an
            unknown case id (each message names the case and the image ids).
    """
    groups: dict[str, list[int]] = {}
    without = [image_id for image_id, img in dataset.imgs.items() if "case_id" not in img]
    if without:
        raise ConversionError(f"{dataset.source}: image(s) {_listed(without)} have no case_id; only images "
                              "converted from volumes (convert nifti / rtstruct / dicom-seg) can be stacked")
    for image_id, img in dataset.imgs.items():
        groups.setdefault(str(img["case_id"]), []).append(image_id)
    if case_ids is not None:
        unknown = sorted(set(case_ids) - set(groups))
        if unknown:
            raise ConversionError(f"{dataset.source}: no images of case(s) {_listed(unknown)}; "
                                  f"cases: {_listed(sorted(groups))}")
        groups = {c: groups[c] for c in case_ids}
    return {case: _case(dataset, case, ids) for case, ids in sorted(groups.items())}


def _case(dataset: CocoDataset, case: str, image_ids: list[int]) -> CaseVolume:
    first = dataset.imgs[image_ids[0]]
    where = f"{dataset.source}: case {case!r} (image {image_ids[0]})"
    layout = SliceLayout.from_record(first, where)
    for image_id in image_ids[1:]:
        img = dataset.imgs[image_id]
        differing = [k for k in _LAYOUT_KEYS if img.get(k) != first.get(k)]
        if differing:
            raise ConversionError(f"{dataset.source}: case {case!r}: image {image_id} and image {image_ids[0]} "
                                  f"disagree on {differing}; expected one volume per case_id")
    slots: list[int | None] = [None] * layout.num_slices
    height, width = layout.slice_shape
    for image_id in image_ids:
        img = dataset.imgs[image_id]
        index = img.get("slice_index")
        if not isinstance(index, int) or not 0 <= index < layout.num_slices:
            raise ConversionError(f"{dataset.source}: case {case!r}: image {image_id} has slice_index {index!r}; "
                                  f"expected 0..{layout.num_slices - 1}")
        if slots[index] is not None:
            raise ConversionError(f"{dataset.source}: case {case!r}: images {slots[index]} and {image_id} are "
                                  f"both slice {index}")
        if (img["height"], img["width"]) != (height, width):
            raise ConversionError(f"{dataset.source}: case {case!r}: image {image_id} is {img['height']}x"
                                  f"{img['width']}; the volume's slices are {height}x{width}")
        slots[index] = image_id
    missing = [k for k, image_id in enumerate(slots) if image_id is None]
    if missing and not first.get("empty_slices_omitted"):
        raise ConversionError(f"{dataset.source}: case {case!r} lacks slice(s) {_listed(missing)} of "
                              f"{layout.num_slices}; a volume can only be rebuilt from all its slices "
                              "(was the file filtered or split by image?)")
    return CaseVolume(case, layout, [None if i is None else int(i) for i in slots])


def category_values(dataset: CocoDataset, label_map: Mapping[int, str] | None = None) -> dict[int, int]:
    """Voxel value of each category: its ``label_value``, else the value ``label_map`` gives its
    name, else its id.

    Raises:
        ConversionError: two categories would get one value, or a value outside 1..65535.
    """
    by_name = {name: value for value, name in (label_map or {}).items()}
    values: dict[int, int] = {}
    for cat_id, cat in dataset.cats.items():
        value = cat.get("label_value", by_name.get(cat.get("name"), cat_id))
        if not isinstance(value, int) or not 1 <= value <= 65535:
            raise ConversionError(f"{dataset.source}: category {cat_id} ({cat.get('name')!r}) has label value "
                                  f"{value!r}; expected a whole number 1..65535")
        values[cat_id] = value
    seen: dict[int, int] = {}
    for cat_id, value in values.items():
        if value in seen:
            raise ConversionError(f"{dataset.source}: categories {seen[value]} and {cat_id} both have label value "
                                  f"{value}; give each category its own value")
        seen[value] = cat_id
    return values


def label_volume(dataset: CocoDataset, case: CaseVolume, values: Mapping[int, int],
                 overlap: str = "error") -> np.ndarray:
    """The case's label volume in its source array's layout (``layout.shape``).

    Args:
        values: category id -> voxel value (:func:`category_values`); other categories
            and image-level labels are left out.
        overlap: ``"error"``: two structures on one voxel is an error (a label volume
            holds one value per voxel); ``"last"``: the later annotation wins.

    Returns:
        uint8 array when every value fits, else uint16.

    Raises:
        ConversionError: overlapping annotations with ``overlap="error"`` (names them).
    """
    if overlap not in OVERLAP_POLICIES:
        raise ConversionError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}, not {overlap!r}")
    dtype = np.uint8 if max(values.values(), default=0) <= 255 else np.uint16
    stack = np.zeros(case.layout.display_shape, dtype)
    height, width = case.layout.slice_shape
    for d, image_id in enumerate(case.image_ids):
        if image_id is None:
            continue
        plane = stack[d]
        owner: dict[int, int] = {}
        for ann in dataset.anns_for(image_id, cat_ids=values, geometry=True):
            mask = annotation_to_mask(ann, height, width).astype(bool)
            value = values[ann["category_id"]]
            clash = mask & (plane != 0) & (plane != value)
            if overlap == "error" and clash.any():
                other = owner.get(int(plane[clash][0]))
                raise ConversionError(f"{dataset.source}: case {case.case_id!r} slice {d} (image {image_id}): "
                                      f"annotation {ann.get('id')} overlaps annotation {other} on "
                                      f"{int(clash.sum())} pixel(s); a label volume holds one structure per "
                                      "voxel (pass overlap='last' / --overlap last to let the later one win)")
            plane[mask] = value
            owner[value] = ann.get("id")
    return case.layout.to_source(stack)


def class_volume(dataset: CocoDataset, case: CaseVolume, category_ids: Sequence[int]) -> np.ndarray:
    """Multi-label ``(slices, height, width, K)`` uint8 stack of the canonical slices: channel k is
    ``category_ids[k]`` (overlaps kept)."""
    height, width = case.layout.slice_shape
    stack = np.zeros((*case.layout.display_shape, len(category_ids)), np.uint8)
    for d, image_id in enumerate(case.image_ids):
        if image_id is None:
            continue
        anns = dataset.anns_for(image_id, cat_ids=category_ids, geometry=True)
        if anns:
            stack[d] = annotations_to_channels(anns, height, width, category_ids, validated=dataset.validated)
    return stack


__all__ = ["CaseVolume", "OVERLAP_POLICIES", "case_volumes", "category_values", "class_volume", "label_volume"]
