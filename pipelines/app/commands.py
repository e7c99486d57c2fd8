"""The app's subcommand."""
from cococxr.command import Command
from cococxr.pipelines.app import launcher

COMMANDS = [
    Command(("app",), "start the Streamlit demo app", launcher.configure_parser, launcher.run),
]
