"""The pipelines' subcommands, task by task, in the order ``cococxr --help`` lists them."""
from cococxr.pipelines.app import commands as app
from cococxr.pipelines.classification import commands as classification
from cococxr.pipelines.demo import commands as demo
from cococxr.pipelines.maskrcnn import commands as maskrcnn
from cococxr.pipelines.segmentation import commands as segmentation

COMMANDS = [*segmentation.COMMANDS, *maskrcnn.COMMANDS, *classification.COMMANDS, *demo.COMMANDS, *app.COMMANDS]
