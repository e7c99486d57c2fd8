"""The classification task's subcommands."""
from cococxr.command import Command
from cococxr.pipelines.classification import evaluate, explain, predict, train

COMMANDS = [
    Command(("train", "classifier"), "train a (lung-masked) classifier", train.configure_parser, train.run),
    Command(("evaluate", "classifier"), "evaluate a classifier", evaluate.configure_parser, evaluate.run),
    Command(("predict", "classifier"), "classify images", predict.configure_parser, predict.run),
    Command(("explain",), "Grad-CAM heatmaps and in-lung energy share", explain.configure_parser, explain.run),
]
