"""The COCO files the app's Browse page shows: loaded (and cached) from a path or an upload, and drawn."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from cococxr.coco import CocoDataset
from cococxr.errors import CocoFormatError, ConfigError
from cococxr.io import read_image
from cococxr.masks import annotations_to_channels
from cococxr.reports import PALETTE, overlay_masks


@st.cache_resource(max_entries=4, show_spinner="Reading the COCO file...")
def _coco_from_file(path: str, mtime_ns: int, image_root: str | None):
    return CocoDataset(path, image_root)


@st.cache_resource(max_entries=4, show_spinner="Reading the COCO file...")
def _coco_from_bytes(data: bytes, name: str, image_root: str | None):
    try:
        dataset = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CocoFormatError(f"upload {name!r}: not valid JSON ({exc})") from exc
    return CocoDataset(dataset, image_root)


def load_coco_file(path: str, image_root: str | None = None):
    """Load (once per file version) a COCO file typed as a path.

    Raises:
        ConfigError: no such file; CocoFormatError: invalid COCO.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{file}: no such file")
    return _coco_from_file(str(file.resolve()), file.stat().st_mtime_ns, image_root)


def load_coco_upload(data: bytes, name: str, max_bytes: int, image_root: str | None = None):
    """Load an uploaded COCO JSON (kept in memory, never written).

    Raises:
        ConfigError: larger than ``max_bytes``; CocoFormatError: not JSON or invalid COCO.
    """
    if len(data) > max_bytes:
        raise ConfigError(f"upload {name!r} is {len(data):,} bytes; the limit is {max_bytes:,} bytes "
                          f"({max_bytes / 1024 / 1024:g} MB): type the file's path instead")
    return _coco_from_bytes(data, name, image_root)


def draw_annotations(coco, image_id: int) -> tuple[np.ndarray, list[tuple[str, tuple, int]]]:
    """The image with its geometry annotations filled by category, and the legend.

    Returns:
        ``(rgb, [(category name, RGB colour, annotation count), ...])``.

    Raises:
        CococxrError: the image cannot be read or does not match its record.
    """
    record = coco.imgs[image_id]
    anns = coco.anns_for(image_id, geometry=True)
    cat_ids = sorted({a["category_id"] for a in anns})
    image = read_image(coco.image_path(image_id))
    height, width = int(record["height"]), int(record["width"])
    if image.shape[:2] != (height, width):
        raise ConfigError(f"image {image_id}: {record['file_name']} is {image.shape[0]}x{image.shape[1]} pixels "
                          f"but its record says {height}x{width}")
    masks = annotations_to_channels(anns, height, width, cat_ids) if cat_ids else np.zeros((height, width, 0))
    colours = [PALETTE[k % len(PALETTE)] for k in range(len(cat_ids))]
    legend = [(coco.cats[c]["name"], colours[k], sum(a["category_id"] == c for a in anns))
              for k, c in enumerate(cat_ids)]
    return overlay_masks(image, masks, colors=colours or PALETTE), legend


__all__ = ["load_coco_file", "load_coco_upload", "draw_annotations"]
