"""The segmentation task's subcommands: their arguments, and runs that load the implementation.

Each ``run_*`` resolves and checks its settings here (so that a bad flag or config file
fails at once), then imports its implementation module: those import TensorFlow at their
top, and ``cococxr --help`` must not.
"""
from __future__ import annotations

import argparse

from cococxr.command import Command
from cococxr.config import add_config_arguments, config_from_args
from cococxr.errors import ConfigError
from cococxr.pipelines.segmentation.arguments import MASK_FORMATS, add_input_arguments
from cococxr.pipelines.segmentation.comparison import tabulate
from cococxr.pipelines.segmentation.config import SegmentationConfig, check_config


def configure_train(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr train segmentation`` (the :class:`SegmentationConfig` schema)."""
    add_config_arguments(parser, SegmentationConfig)


def run_train(args: argparse.Namespace) -> int:
    """Run ``cococxr train segmentation``."""
    config = config_from_args(SegmentationConfig, args)
    check_config(config)
    if config.backend == "smp":
        from cococxr.pipelines.segmentation import train_smp  # deferred: torch and smp, before any TensorFlow

        return train_smp.main(config)
    from cococxr.pipelines.segmentation import train  # deferred: imports TensorFlow

    return train.main(config)


def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr evaluate segmentation``."""
    parser.add_argument("model", help="model file (.h5, .keras, or .pt of --backend smp), e.g. runs/<run>/model.h5")
    parser.add_argument("--coco", required=True, help="COCO JSON with the ground-truth masks")
    parser.add_argument("--out", required=True, help="folder for metrics.json, per_image.csv, overlays/")
    parser.add_argument("--metric", choices=("uw-madison",),
                        help="also compute this competition score (uw-madison: per case/day volume)")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default: 0.5)")
    parser.add_argument("--overlays", type=int, default=4, help="best and worst images drawn (default: 4)")
    parser.add_argument("--include-empty", action="store_true",
                        help="also evaluate images without any mask of the classes")
    add_input_arguments(parser)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``cococxr evaluate segmentation``."""
    from cococxr.pipelines.segmentation import evaluate  # deferred: imports TensorFlow

    return evaluate.run(args)


def configure_predict(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr predict segmentation``."""
    parser.add_argument("model", help="model file (.h5, .keras, or .pt of --backend smp), e.g. runs/<run>/model.h5")
    parser.add_argument("images", nargs="+", help="image files, folders, or one COCO JSON file")
    parser.add_argument("--out", help="folder for mask PNGs (mirrors the inputs' relative paths)")
    parser.add_argument("--coco-out", help="write the predictions as COCO JSON (results list for a "
                                           "COCO input, a full dataset for files/folders)")
    parser.add_argument("--format", dest="mask_format", choices=MASK_FORMATS, default="binary",
                        help="binary: 0/255 PNG per class; label: one label map (k+1 per class); "
                             "none: no PNGs (default: binary)")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default: 0.5)")
    parser.add_argument("--recursive", action="store_true", help="search folders recursively")
    parser.add_argument("--instances", action="store_true",
                        help="--coco-out: one result per connected component of each class mask, "
                             "for ground truth with one annotation per object (default: one per mask)")
    add_input_arguments(parser)


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cococxr predict segmentation``."""
    from cococxr.pipelines.segmentation import predict  # deferred: imports TensorFlow

    return predict.run(args)


def configure_compare(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr compare``: the training flags plus the backbones and extra rows."""
    parser.add_argument("--backbones", default="",
                        help="comma-separated backbones, e.g. efficientnetb0,resnet34,smp:resnet18 "
                             "(plain_unet: the from-scratch U-Net; smp:ENCODER: a segmentation_models_pytorch "
                             "encoder, backend smp); leave out to only tabulate --extra-rows")
    parser.add_argument("--extra-rows", nargs="+", default=[], metavar="METRICS_JSON",
                        help="metrics.json files of other runs (U-Net, Mask R-CNN) to add as rows "
                             "(see docs/segmentation.md)")
    add_config_arguments(parser, SegmentationConfig)


def run_compare(args: argparse.Namespace) -> int:
    """Run ``cococxr compare``: train and tabulate, or (no ``--backbones``) only tabulate."""
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    if not backbones:
        return tabulate(args.extra_rows, getattr(args, "out", None))
    config = config_from_args(SegmentationConfig, args)
    if config.out is None:
        raise ConfigError("compare needs --out (the folder for the runs and the table)")
    from cococxr.pipelines.segmentation import compare  # deferred: imports TensorFlow

    return compare.main(config, backbones, args.extra_rows)


COMMANDS = [
    Command(("train", "segmentation"), "train a segmentation model", configure_train, run_train),
    Command(("evaluate", "segmentation"), "evaluate a segmentation model", configure_evaluate, run_evaluate),
    Command(("predict", "segmentation"), "predict masks for images", configure_predict, run_predict),
    Command(("compare",), "train and compare several backbones on one split", configure_compare, run_compare),
]
