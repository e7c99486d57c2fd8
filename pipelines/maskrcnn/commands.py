"""The Mask R-CNN baseline's subcommands."""
from cococxr.command import Command
from cococxr.pipelines.maskrcnn import evaluate, train

COMMANDS = [
    Command(("train", "maskrcnn"), "train a Mask R-CNN baseline (torch)", train.configure_parser, train.run),
    Command(("evaluate", "maskrcnn"), "evaluate a Mask R-CNN baseline", evaluate.configure_parser,
            evaluate.run),
]
