"""The group split solver: images into named parts, no group across two parts, stratified.

Works on plain image records (id -> dict) and returns image-id lists; `CocoDataset.split`
turns them into subsets.
"""
from __future__ import annotations

import json
import random
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from cococxr.coco.records import is_missing, is_number, short
from cococxr.errors import ConfigError

#: ``split(stratify_key=STRATIFY_BY_LABELS)`` stratifies by image-level labels.
STRATIFY_BY_LABELS = ":labels"
_NO_LABEL = "(no label)"
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def check_fractions(fractions: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    """Return part names and fractions, checking that they are >= 0 and sum to 1."""
    if not isinstance(fractions, Mapping) or not fractions:
        raise ConfigError(f"split fractions must be a non-empty dict name -> fraction, got {fractions!r}")
    values = list(fractions.values())
    if not all(is_number(v) and v >= 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be numbers >= 0 summing to 1, got {dict(fractions)}")
    return list(fractions), np.asarray(values, dtype=float)


def assign_groups(groups: list[list[int]], strata: dict[int, list[str]], fractions: np.ndarray,
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



def group_key_text(value: Any, where: str = "image") -> str | None:
    """The canonical text of a group key, or None when it is missing (None, "", NaN).

    Ids that are the same number are the same group: ``1``, ``"1"``, ``1.0``, ``"1.0"``
    and ``" 001 "`` are all ``"1"`` (pandas makes ``1.0`` of an integer column with gaps,
    and drops leading zeros when it reads ids as numbers); other strings are stripped.
    Merging two ids can only make groups coarser, never leak a patient.

    Raises:
        ConfigError: a list, dict or bool (``where`` names the record).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) and value is not None:
        raise ConfigError(f"{where}: group key {short(value)} is a {type(value).__name__}; expected a string "
                          "or number identifying the group (e.g. the patient)")
    if is_missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not _NUMBER.fullmatch(value):
            return value
        value = float(value) if "." in value or "e" in value.lower() else int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def group_images(images: Mapping[Any, dict], group_key: str, source: str,
                 allow_missing: bool = False) -> list[list[Any]]:
    """Return image ids grouped by ``group_key`` (first-appearance order; see `group_key_text`).

    Raises:
        ConfigError: an image without the key (None, "" or NaN), unless ``allow_missing``:
            then each such image forms its own group, with a UserWarning giving their count;
            or a key that is a list, dict or bool.
    """
    groups: dict[tuple, list[Any]] = {}
    missing = []
    for image_id, img in images.items():
        where = f"{source}: image {short(image_id)} ({short(img.get('file_name'))})"
        value = group_key_text(img.get(group_key), where)
        if value is None:
            missing.append(where.split(": ", 1)[1])
            key = ("missing", image_id)
        else:
            key = ("value", value)
        groups.setdefault(key, []).append(image_id)
    if missing and not allow_missing:
        raise ConfigError(f"{source}: {len(missing)} of {len(images)} images have no {group_key!r} (e.g. "
                          f"{', '.join(missing[:3])}); each would be its own group, which can put one patient's "
                          f"images on both sides. Add the key, or pass --allow-missing-group "
                          f"(allow_missing_group=True) to accept per-image groups")
    if missing:
        warnings.warn(f"{source}: {len(missing)} of {len(images)} images have no {group_key!r}; "
                      f"each of them forms its own group", UserWarning, stacklevel=4)
    return list(groups.values())


def image_strata(images: Mapping[Any, dict], stratify_key: str | None,
                 labels: Callable[[Any], list[str]] | None = None) -> dict[Any, list[str]]:
    """Return image id -> stratum names (several for multi-label images).

    Args:
        images: image id -> record.
        stratify_key: image-record key, `STRATIFY_BY_LABELS`, or None (no strata).
        labels: image id -> its label names; needed for `STRATIFY_BY_LABELS`.
    """
    if stratify_key is None:
        return {image_id: [] for image_id in images}
    if stratify_key == STRATIFY_BY_LABELS:
        if labels is None:
            raise ConfigError("stratifying by labels needs the images' labels")
        return {image_id: labels(image_id) or [_NO_LABEL] for image_id in images}
    return {image_id: [json.dumps(img.get(stratify_key), sort_keys=True)] for image_id, img in images.items()}


def split_image_ids(images: Mapping[Any, dict], fractions: Mapping[str, float], group_key: str,
                    stratify_key: str | None = None, seed: int = 0,
                    labels: Callable[[Any], list[str]] | None = None,
                    source: str = "<dict>", allow_missing: bool = False) -> dict[str, list[Any]]:
    """Assign images to named parts so that no group spans two parts.

    See `CocoDataset.split` for the rules.

    Args:
        images: image id -> record, in file order.
        fractions: part name -> fraction (>= 0, summing to 1).
        group_key: image-record key identifying groups.
        stratify_key: image-record key to stratify by, `STRATIFY_BY_LABELS`, or None.
        seed: seed for the tie-breaking shuffle.
        labels: image id -> label names (for `STRATIFY_BY_LABELS`).
        source: the dataset's name in warnings.
        allow_missing: images without the key form their own groups instead of an error.

    Returns:
        Part name -> image ids (in group order), in the order of ``fractions``.
    """
    names, weights = check_fractions(fractions)
    groups = group_images(images, group_key, source, allow_missing)
    assignment = assign_groups(groups, image_strata(images, stratify_key, labels), weights, seed)
    return {name: [i for group, part in zip(groups, assignment) if part == k for i in group]
            for k, name in enumerate(names)}


__all__ = ["STRATIFY_BY_LABELS", "check_fractions", "assign_groups", "group_key_text", "group_images", "image_strata",
           "split_image_ids"]
