"""The segmentation task's subcommands."""
from cococxr.command import Command
from cococxr.pipelines.segmentation import compare, evaluate, predict, train

COMMANDS = [
    Command(("train", "segmentation"), "train a segmentation model", train.configure_parser, train.run),
    Command(("evaluate", "segmentation"), "evaluate a segmentation model", evaluate.configure_parser,
            evaluate.run),
    Command(("predict", "segmentation"), "predict masks for images", predict.configure_parser, predict.run),
    Command(("compare",), "train and compare several backbones on one split", compare.configure_parser,
            compare.run),
]
