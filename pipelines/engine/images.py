"""Image inputs of the prediction commands: files, folders or one COCO JSON file.

``cococxr predict ...`` and ``cococxr explain`` take image files, folders
(``--recursive`` for subfolders) or a single COCO JSON file; this module expands them.
Folders are listed by :func:`cococxr.converters.common.list_images` (the converters own
the list of image suffixes), re-exported here as the pipelines' one door to it.
"""
from __future__ import annotations

import os
from pathlib import Path

from cococxr.coco import CocoDataset
from cococxr.converters.common import list_images
from cococxr.errors import ConfigError
from cococxr.io import image_size


def is_coco_input(inputs: list) -> bool:
    """True when the inputs are one COCO JSON file."""
    return len(inputs) == 1 and str(inputs[0]).lower().endswith(".json")


def collect_images(inputs: list, recursive: bool = False) -> tuple[Path, list[Path]]:
    """Expand files and folders into image files; returns ``(common root, files)``.

    Raises:
        ConfigError: an input does not exist or nothing is found.
    """
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += list_images(item, recursive=recursive)
        elif item.is_file():
            files.append(item)
        else:
            raise ConfigError(f"{item}: no such file or folder")
    if not files:
        raise ConfigError(f"no images found in {', '.join(map(str, inputs))}")
    files = list(dict.fromkeys(p.resolve() for p in files))
    root = Path(os.path.commonpath([p.parent for p in files]))
    return root, files


def files_coco(files: list[Path], root: Path, categories: list[dict], first_id: int = 1) -> CocoDataset:
    """A label-less CocoDataset of image files under ``root`` (ids ``first_id``, ``first_id + 1``... in order).

    Each image record has the file's path relative to ``root``, its height and width.
    """
    images = []
    for n, path in enumerate(files):
        height, width = image_size(path)
        images.append({"id": first_id + n, "file_name": path.relative_to(root).as_posix(),
                       "height": int(height), "width": int(width)})
    return CocoDataset({"images": images, "annotations": [], "categories": categories}, root, validate=False)


__all__ = ["list_images", "is_coco_input", "collect_images", "files_coco"]
