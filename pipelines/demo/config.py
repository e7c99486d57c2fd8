"""The settings of ``cococxr demo`` (no TensorFlow here): the data it runs on and where it writes."""
from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from cococxr.config import option
from cococxr.errors import ConfigError
from cococxr.pipelines.engine.layout import DEMO_OUT

SAMPLE_PACKAGE = "cococxr.sample"


@dataclass
class DemoConfig:
    """Settings of ``cococxr demo`` (flags and config-file keys)."""

    out: str = option(DEMO_OUT, "output folder (models in OUT/models, where 'cococxr app' looks)",
                      metavar="DIR")
    images: str | None = option(None, "your image folder (default: the embedded sample)", metavar="DIR")
    masks: str | None = option(None, "your lung mask folder, masks named like the images", metavar="DIR")
    metadata: str | None = option(None, "your metadata CSV (one row per image)", metavar="CSV")
    metadata_key: str = option("filename", "metadata column naming the image file", metavar="COLUMN")
    label_column: str = option("finding", "metadata column with the image-level label", metavar="COLUMN")
    patient_column: str = option("patientid", "metadata column with the patient id (the split keeps "
                                              "each patient in one part)", metavar="COLUMN")
    mask_suffix: str | None = option(None, "mask stem = image stem + SUFFIX (e.g. _mask)", metavar="SUFFIX")
    positive_label: str = option("COVID-19", "label the classifier tells from every other label",
                                 metavar="LABEL")
    quick: bool = option(False, "smoke test: 64x64 inputs, one epoch of two steps per model")
    epochs_seg: int | None = option(None, "segmentation epochs (default: the recipe's)", metavar="N")
    epochs_cls: int | None = option(None, "classifier epochs (default: the recipe's)", metavar="N")
    seed: int = option(0, "seed of the split, weights, sampling and augmentation")


def sample_folders() -> tuple[Path, Path, Path]:
    """``(images, masks, metadata.csv)`` of the embedded sample."""
    root = Path(str(files(SAMPLE_PACKAGE)))
    return root / "images", root / "masks", root / "metadata.csv"


def input_folders(cfg: DemoConfig) -> tuple[Path, Path, Path]:
    """The user's ``(images, masks, metadata)`` when all three are given, else the sample's."""
    given = {"images": cfg.images, "masks": cfg.masks, "metadata": cfg.metadata}
    if not any(given.values()):
        return sample_folders()
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise ConfigError(f"your own data needs --images, --masks and --metadata together; "
                          f"missing: {', '.join('--' + m for m in missing)}")
    return Path(cfg.images), Path(cfg.masks), Path(cfg.metadata)


__all__ = ["SAMPLE_PACKAGE", "DemoConfig", "sample_folders", "input_folders"]
