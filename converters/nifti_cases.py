"""Find the (image, label volume) cases of ``cococxr convert nifti`` in the layouts people use.

- a pair of files: ``IMAGE.nii.gz LABELS.nii.gz`` (or an image alone);
- two folders: images and label volumes paired by name (an image ``x_0000.nii.gz``, the
  nnU-Net channel suffix, pairs with ``x.nii.gz``);
- an nnU-Net v2 dataset folder: ``imagesTr/<case>_<channel>.nii.gz``, ``labelsTr/<case>.nii.gz``
  and ``dataset.json`` (its ``labels`` become the label map);
- a Medical Segmentation Decathlon task folder: ``dataset.json`` listing
  ``training: [{"image": ..., "label": ...}]`` (4-D images: ``--channel`` picks one).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cococxr.errors import ConfigError, ConversionError
from cococxr.volumes.labelmaps import label_map_from_mapping
from cococxr.volumes.nifti_io import nifti_stem

from .mask_records import raise_problems
from .volume_records import safe_case_id

_CHANNEL = re.compile(r"^(.*)_(\d{4})$")


@dataclass(frozen=True)
class NiftiCase:
    """One case: its id, image file, label file (or None) and their names as recorded."""

    case_id: str
    image: str
    labels: str | None
    image_name: str
    labels_name: str | None


@dataclass
class FoundCases:
    """The cases of a source, the label map its dataset.json gives (if any) and counts for the report."""

    cases: list[NiftiCase]
    layout: str
    label_map: dict[int, str] | None = None
    ignored: int = 0


def _niftis(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and nifti_stem(p) and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def _pair_folders(images: Path, labels: Path | None, channel: int, root: Path, layout: str,
                  allow_missing_labels: bool) -> FoundCases:
    """Pair image files with label files by case name (nnU-Net channel suffix understood)."""
    label_files = {nifti_stem(p): p for p in _niftis(labels)} if labels is not None else {}
    cases, problems, ignored, used = [], [], 0, set()
    by_case: dict[str, Path] = {}
    for image in _niftis(images):
        stem = nifti_stem(image)
        match = _CHANNEL.match(stem)
        if match and stem not in label_files:
            if int(match.group(2)) != channel:
                ignored += 1
                continue
            stem = match.group(1)
        if stem in by_case:
            problems.append(f"images {by_case[stem].name} and {image.name} are both case {stem!r}")
            continue
        by_case[stem] = image
        label = label_files.get(stem)
        if label is None and labels is not None and not allow_missing_labels:
            problems.append(f"image {image} has no label volume (expected {labels / stem}.nii.gz; "
                            "--allow-missing-labels converts it without annotations)")
        used.add(stem)
        cases.append(NiftiCase(safe_case_id(stem), str(image), str(label) if label else None,
                               _relative(image, root), _relative(label, root) if label else None))
    problems += [f"label volume {path} has no image (expected {images / stem}.nii.gz or {images / stem}_"
                 f"{channel:04d}.nii.gz)" for stem, path in label_files.items() if stem not in used]
    raise_problems(problems, f"pairing {images} with {labels}")
    if not cases:
        raise ConversionError(f"{images}: no NIfTI image (.nii / .nii.gz) found")
    return FoundCases(cases, layout, None, ignored)


def _read_dataset_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the dataset description ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def _msd_cases(root: Path, data: dict, allow_missing_labels: bool) -> list[NiftiCase]:
    """Cases of an MSD ``dataset.json`` ``training`` list (paths relative to ``root``)."""
    cases, problems = [], []
    for n, entry in enumerate(data["training"]):
        if not isinstance(entry, dict) or "image" not in entry:
            problems.append(f"training[{n}]: expected {{\"image\": ..., \"label\": ...}}, got {entry!r}")
            continue
        image = root / str(entry["image"])
        label = root / str(entry["label"]) if entry.get("label") else None
        for what, path in (("image", image), ("label volume", label)):
            if path is not None and not path.is_file():
                problems.append(f"training[{n}]: {what} {path} does not exist")
        if label is None and not allow_missing_labels:
            problems.append(f"training[{n}]: no label volume")
        stem = nifti_stem(image) or image.name
        cases.append(NiftiCase(safe_case_id(stem), str(image), str(label) if label else None, _relative(image, root),
                               _relative(label, root) if label else None))
    raise_problems(problems, f"the training list of {root / 'dataset.json'}")
    return cases


def find_cases(source: str | os.PathLike, labels: str | os.PathLike | None = None, *, channel: int = 0,
               allow_missing_labels: bool = False) -> FoundCases:
    """The cases of ``source`` (+ ``labels``) in any of the module's layouts.

    Raises:
        ConversionError: unpaired files (every one listed), a missing file, an empty folder.
        ConfigError: a malformed dataset.json or a source that is none of the layouts.
    """
    source = Path(source)
    labels = Path(labels) if labels is not None else None
    if source.is_file():
        if labels is not None and not labels.is_file():
            raise ConfigError(f"{source} is a file, so the labels must be a file too; {labels} is not")
        stem = nifti_stem(source) or source.name
        match = _CHANNEL.match(stem)
        stem = match.group(1) if match else stem
        case = NiftiCase(safe_case_id(stem), str(source), str(labels) if labels else None, source.name,
                         labels.name if labels else None)
        return FoundCases([case], "pair")
    if not source.is_dir():
        raise ConfigError(f"{source}: no such file or folder")
    if labels is not None:
        if not labels.is_dir():
            raise ConfigError(f"{source} is a folder, so the labels must be a folder too; {labels} is not")
        return _pair_folders(source, labels, channel, source.parent, "folders", allow_missing_labels)
    description = source / "dataset.json"
    data = _read_dataset_json(description) if description.is_file() else {}
    label_map = label_map_from_mapping(data["labels"], f"{description}") if "labels" in data else None
    if isinstance(data.get("training"), list) and data["training"]:
        return FoundCases(_msd_cases(source, data, allow_missing_labels), "MSD dataset.json", label_map)
    if (source / "imagesTr").is_dir():
        found = _pair_folders(source / "imagesTr", source / "labelsTr" if (source / "labelsTr").is_dir() else None,
                              channel, source, "nnU-Net imagesTr/labelsTr", allow_missing_labels)
        found.label_map = label_map
        return found
    raise ConfigError(f"{source}: expected a NIfTI file, a folder of images with a folder of labels, or a dataset "
                      "folder with imagesTr/ (and labelsTr/, dataset.json)")


__all__ = ["FoundCases", "NiftiCase", "find_cases"]
