"""Tiny COCO train/val files built from the embedded sample, for the pipeline tests."""
from __future__ import annotations

import shutil
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "cococxr" / "sample"


def tiny_coco(folder: Path, n_train: int = 4, n_val: int = 3) -> tuple[Path, Path]:
    """Convert the sample (lung masks, patient ids) and split it by patient into tiny files.

    Returns:
        ``(train.json, val.json)`` in ``folder``; no patient is in both.
    """
    from cococxr.converters.mask_folders import convert_mask_folders

    # the images inside the files' folder: a COCO file's own image root must stay inside it
    images = folder / "images"
    if not images.exists():
        shutil.copytree(SAMPLE / "images", images)
    dataset, _ = convert_mask_folders(images, SAMPLE / "masks", folder / "all.json",
                                      class_name="lung", metadata=SAMPLE / "metadata.csv",
                                      keep="patientid:patient_id,view", allow_missing_masks=True)
    parts = dataset.split({"train": 0.7, "val": 0.3}, group_key="patient_id", seed=0)
    paths = []
    for name, n in (("train", n_train), ("val", n_val)):
        part = parts[name]
        ids = [i for i in part.imgs if part.img_to_anns[i]][:n]
        path = folder / f"{name}.json"
        part.subset(ids).write(path)
        paths.append(path)
    return paths[0], paths[1]
