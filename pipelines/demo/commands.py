"""The demo's subcommand: its arguments, and a run that loads the pipeline.

The settings are resolved and the data options checked here, so that a bad flag or
config file fails at once; the pipeline (TensorFlow) is imported only then.
"""
from __future__ import annotations

import argparse
import time

from cococxr.command import Command
from cococxr.config import add_config_arguments, config_from_args
from cococxr.pipelines.demo.config import DemoConfig, input_folders


def configure_demo(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr demo`` (the :class:`DemoConfig` schema)."""
    add_config_arguments(parser, DemoConfig)


def run_demo(args: argparse.Namespace) -> int:
    """Run ``cococxr demo``."""
    started = time.perf_counter()  # the report's startup time includes importing TensorFlow
    config = config_from_args(DemoConfig, args)
    input_folders(config)
    from cococxr.pipelines.demo import run  # deferred: imports TensorFlow

    return run.main(config, started)


COMMANDS = [
    Command(("demo",), "run the whole pipeline on the embedded sample (or your data)", configure_demo, run_demo),
]
