"""Command-line arguments shared by ``cococxr evaluate segmentation`` and ``predict segmentation``."""
from __future__ import annotations

import argparse

MASK_FORMATS = ("binary", "label", "none")


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags overriding the input settings a model's card records."""
    parser.add_argument("--classes", nargs="+", help="class names in output-channel order "
                        "(default: from the model card <model>.cococxr.json, or a run's config.json)")
    parser.add_argument("--input-size", type=int, help="model input size (default: model card / model)")
    parser.add_argument("--channels", type=int, choices=(1, 3), help="input channels (default: model card)")
    parser.add_argument("--preprocessing", help="backbone preprocessing name or 'none' (default: model card)")
    parser.add_argument("--equalize", help="hist, clahe or none (default: model card)")
    parser.add_argument("--batch-size", type=int, default=8, help="images predicted at a time (default: 8)")
    parser.add_argument("--flip-tta", action="store_true",
                        help="test-time augmentation: average with the prediction of the mirrored image")
    parser.add_argument("--postprocess", action="store_true",
                        help="lung post-processing: keep the two largest components of each mask, fill holes")
    parser.add_argument("--image-root", help="folder of the images (default: as the COCO file says)")


def split_names(values: list[str] | None) -> list[str] | None:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``; None stays None."""
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


__all__ = ["MASK_FORMATS", "add_input_arguments", "split_names"]
