"""The demo's subcommand."""
from cococxr.command import Command
from cococxr.pipelines.demo import run

COMMANDS = [
    Command(("demo",), "run the whole pipeline on the embedded sample (or your data)", run.configure_parser,
            run.run),
]
