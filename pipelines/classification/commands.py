"""The classification task's subcommands: their arguments, and runs that load the implementation.

Each ``run_*`` imports its implementation module when the command runs (``train
classifier`` resolves and checks its settings first, so that a bad flag or config file
fails at once): those import TensorFlow at their top, and ``cococxr --help`` must not.
"""
from __future__ import annotations

import argparse

from cococxr.command import Command
from cococxr.config import add_config_arguments, config_from_args
from cococxr.pipelines.classification.config import GRADCAM_METHODS, ClassificationConfig, check_config


def configure_train(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr train classifier`` (the :class:`ClassificationConfig` schema)."""
    add_config_arguments(parser, ClassificationConfig)


def run_train(args: argparse.Namespace) -> int:
    """Run ``cococxr train classifier``."""
    config = config_from_args(ClassificationConfig, args)
    check_config(config)
    from cococxr.pipelines.classification import train  # deferred: imports TensorFlow

    return train.main(config)


def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr evaluate classifier``."""
    parser.add_argument("model", help="classifier file (.h5 or .keras) with its .cococxr.json sidecar beside it")
    parser.add_argument("--coco", required=True, help="COCO JSON with image-level labels (not rebalanced)")
    parser.add_argument("--out", required=True, help="folder for metrics.json, predictions.csv, plots")
    parser.add_argument("--seg-model", help="segmentation model for U-Net-masked classifiers "
                                            "(default: the one recorded in the sidecar)")
    parser.add_argument("--threshold", type=float, help="positive-class threshold (default: the tuned one)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the AUC interval "
                                                                 "(default: 1000)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    parser.add_argument("--image-root", help="folder of the images (default: as the COCO file says)")


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``cococxr evaluate classifier``."""
    from cococxr.pipelines.classification import evaluate  # deferred: imports TensorFlow

    return evaluate.run(args)


def configure_predict(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr predict classifier``."""
    parser.add_argument("model", help="classifier file (.h5 or .keras) with its .cococxr.json sidecar beside it")
    parser.add_argument("images", nargs="+", help="image files, folders, or one COCO JSON file")
    parser.add_argument("--out", help="write the predictions to this .csv or .json file")
    parser.add_argument("--seg-model", help="segmentation model for U-Net-masked classifiers "
                                            "(default: the one recorded in the sidecar)")
    parser.add_argument("--threshold", type=float, help="positive-class threshold (default: the tuned one)")
    parser.add_argument("--recursive", action="store_true", help="search folders recursively")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    parser.add_argument("--image-root", help="image folder of a COCO input (default: as the file says)")


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cococxr predict classifier``."""
    from cococxr.pipelines.classification import predict  # deferred: imports TensorFlow

    return predict.run(args)


def configure_explain(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr explain``."""
    parser.add_argument("model", help="classifier file (.h5 or .keras) with its .cococxr.json sidecar beside it")
    parser.add_argument("images", nargs="+", help="image files, folders, or one COCO JSON file")
    parser.add_argument("--out", required=True, help="folder for overlays/, energy.csv and energy.json")
    parser.add_argument("--method", choices=GRADCAM_METHODS, default="gradcam",
                        help="heatmap method (default: gradcam)")
    parser.add_argument("--layer", help="layer to explain (default: the last convolutional feature map)")
    parser.add_argument("--class", dest="class_name", help="class to explain (default: the most probable)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--masks", dest="masks_dir", help="folder of lung masks named like the images")
    source.add_argument("--coco", dest="mask_coco", help="COCO file whose lung annotations are the masks "
                                                         "(matched by file name)")
    source.add_argument("--seg-model", help="segmentation model predicting the lung masks")
    parser.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity (default: 0.4)")
    parser.add_argument("--recursive", action="store_true", help="search folders recursively")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default: 8)")
    parser.add_argument("--image-root", help="image folder of a COCO input (default: as the file says)")


def run_explain(args: argparse.Namespace) -> int:
    """Run ``cococxr explain``."""
    from cococxr.pipelines.classification import explain  # deferred: imports TensorFlow

    return explain.run(args)


COMMANDS = [
    Command(("train", "classifier"), "train a (lung-masked) classifier", configure_train, run_train),
    Command(("evaluate", "classifier"), "evaluate a classifier", configure_evaluate, run_evaluate),
    Command(("predict", "classifier"), "classify images", configure_predict, run_predict),
    Command(("explain",), "Grad-CAM heatmaps and in-lung energy share", configure_explain, run_explain),
]
