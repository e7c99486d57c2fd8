"""The Mask R-CNN baseline's subcommands: their arguments, and runs that load the implementation.

Each ``run_*`` imports its implementation module when the command runs, so that
``cococxr --help`` stays light; torch itself is imported later still, by
:func:`~cococxr.pipelines.maskrcnn.model.require_torch`.
"""
from __future__ import annotations

import argparse

from cococxr.command import Command
from cococxr.config import add_config_arguments, config_from_args
from cococxr.pipelines.maskrcnn.config import MaskRCNNConfig, check_config
from cococxr.pipelines.maskrcnn.model import DEVICES


def configure_train(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr train maskrcnn`` (the :class:`MaskRCNNConfig` schema)."""
    add_config_arguments(parser, MaskRCNNConfig)


def run_train(args: argparse.Namespace) -> int:
    """Run ``cococxr train maskrcnn``."""
    config = config_from_args(MaskRCNNConfig, args)
    check_config(config)
    from cococxr.pipelines.maskrcnn import train  # deferred: keeps --help light (matplotlib, COCOeval)

    return train.main(config)


def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr evaluate maskrcnn``."""
    parser.add_argument("model", metavar="RUN_OR_CHECKPOINT", help="run folder of `cococxr train maskrcnn` "
                        "or its model.pt")
    parser.add_argument("--coco", required=True, help="COCO JSON with the ground-truth masks")
    parser.add_argument("--out", required=True, help="folder for metrics.json, per_image.csv, overlays/")
    parser.add_argument("--image-root", help="folder of the images (default: as the COCO file says)")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="(default: auto)")
    parser.add_argument("--score-threshold", type=float, default=0.05,
                        help="detections kept for AP (default: 0.05)")
    parser.add_argument("--union-score-threshold", type=float, default=0.5,
                        help="detections whose masks form the per-class union scored by Dice (default: 0.5)")
    parser.add_argument("--mask-threshold", type=float, default=0.5,
                        help="mask probability threshold (default: 0.5)")
    parser.add_argument("--overlays", type=int, default=4, help="best and worst images drawn (default: 4)")
    parser.add_argument("--include-empty", action="store_true",
                        help="also evaluate images without any mask of the classes")


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``cococxr evaluate maskrcnn``."""
    from cococxr.pipelines.maskrcnn import evaluate  # deferred: keeps --help light (matplotlib, COCOeval)

    return evaluate.run(args)


COMMANDS = [
    Command(("train", "maskrcnn"), "train a Mask R-CNN baseline (torch)", configure_train, run_train),
    Command(("evaluate", "maskrcnn"), "evaluate a Mask R-CNN baseline", configure_evaluate, run_evaluate),
]
