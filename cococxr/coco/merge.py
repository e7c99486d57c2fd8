"""Merging COCO datasets: categories united by name, ids renumbered, image roots joined."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

from cococxr.errors import CocoFormatError, ConfigError


class MergePart(Protocol):
    """What merging reads of each input (a `CocoDataset` has it)."""

    dataset: dict
    source: str
    image_root: Path | None


def merge_data(parts: Sequence[MergePart]) -> tuple[dict, Path | None]:
    """Merge validated datasets' records (see `CocoDataset.merge` for the rules).

    Returns:
        ``(data, image_root)``: the merged COCO dict and the common image root (None
        when an input has no root).

    Raises:
        ConfigError: no input.
        CocoFormatError: a category name has different supercategories.
    """
    if not parts:
        raise ConfigError("merge needs at least one dataset")
    categories, cat_maps = merge_categories(parts)
    root = common_root(parts)
    images, annotations = [], []
    for part, cat_map in zip(parts, cat_maps):
        first = len(images)
        append_renumbered(part, cat_map, images, annotations)
        prefix = root_prefix(part.image_root, root)
        for img in images[first:]:
            img["file_name"] = prefix + img["file_name"]
    data = {**parts[0].dataset, "images": images, "annotations": annotations, "categories": categories}
    if root is None and isinstance(data.get("info"), dict):
        data["info"] = {k: v for k, v in data["info"].items() if k != "image_root"}
    return data, root


def merge_categories(parts: Sequence[MergePart]) -> tuple[list[dict], list[dict[int, int]]]:
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


def append_renumbered(part: MergePart, cat_map: dict[int, int], images: list, annotations: list) -> None:
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


def common_root(parts: Sequence[MergePart]) -> Path | None:
    """The common parent of the parts' image roots (None when a part has no root)."""
    roots = [p.image_root for p in parts]
    if any(r is None for r in roots):
        return None
    resolved = {Path(r).resolve() for r in roots}
    return resolved.pop() if len(resolved) == 1 else Path(os.path.commonpath(sorted(map(str, resolved))))


def root_prefix(part_root: Path | None, common: Path | None) -> str:
    """Prefix (``"sub/dir/"`` or ``""``) turning a part's file names into names under ``common``."""
    if part_root is None or common is None:
        return ""
    rel = Path(part_root).resolve().relative_to(common).as_posix()
    return "" if rel == "." else rel + "/"



__all__ = ["MergePart", "merge_data", "merge_categories", "append_renumbered", "common_root", "root_prefix"]
