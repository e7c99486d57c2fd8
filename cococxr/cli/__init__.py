"""The ``cococxr`` command line: the top layer, wiring every layer's commands into one parser.

Each layer declares its subcommands as :class:`~cococxr.command.Command` objects in a
``COMMANDS`` list (:mod:`cococxr.cli.core` for the dataset commands,
``cococxr.converters.commands``, ``cococxr.pipelines.commands``); this package only
builds the ``argparse`` tree from them and turns cococxr errors into one clean line.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import sys
import warnings

from cococxr._version import __version__
from cococxr.cli import core
from cococxr.command import Command
from cococxr.converters import commands as converter_commands
from cococxr.distributed import SCHEDULER_ENV, engine_from_environment
from cococxr.errors import CococxrError
from cococxr.outputs import check_outputs
from cococxr.workers import Terminated, terminate_like_interrupt
from cococxr.pipelines import commands as pipeline_commands

COMMANDS: list[Command] = [*core.COMMANDS, *converter_commands.COMMANDS, *pipeline_commands.COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    """Build the full ``cococxr`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="cococxr",
        description="Medical image segmentation data in COCO: convert, validate, stream, train, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"cococxr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                        help="run the per-file work of convert and export on this Dask scheduler "
                             "(tcp://host:8786; workers must see the same paths; output is identical; "
                             f"default: ${SCHEDULER_ENV}, else local processes)")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in COMMANDS:
        first, *rest = command.path
        if not rest:
            sub = top.add_parser(first, help=command.help, description=command.help)
        else:
            if first not in groups:
                group = top.add_parser(first, help=f"{first} subcommands")
                groups[first] = group.add_subparsers(dest="subcommand", metavar="FORMAT", required=True)
            sub = groups[first].add_parser(rest[0], help=command.help, description=command.help)
        command.configure(sub)
        labels = {a.dest: (a.option_strings[0] if a.option_strings else a.dest) for a in sub._actions}
        sub.set_defaults(_handler=command.run, _command=command, _labels=labels)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    handler = getattr(args, "_handler", None)
    if handler is None:
        parser.print_help()
        return 2
    previous = terminate_like_interrupt()  # SIGTERM unwinds like Ctrl-C: temporary files are removed
    shown, warnings.showwarning = warnings.showwarning, _one_line_warning
    try:
        check_outputs(*args._command.path_arguments(args, args._labels))
        with engine_from_environment(args.dask_scheduler):
            return int(handler(args) or 0)
    except CococxrError as exc:
        print(f"cococxr: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment: a folder where a file goes, no permission, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"cococxr: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("cococxr: terminated (SIGTERM); no partial output was left", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("cococxr: interrupted; no partial output was left", file=sys.stderr)
        return 130
    except RecursionError:
        print("cococxr: error: the input is nested too deeply to process (RecursionError)", file=sys.stderr)
        return 2
    except OverflowError as exc:  # e.g. pycocotools' 32-bit counts
        print(f"cococxr: error: a size or count in the input is too large to process ({exc})", file=sys.stderr)
        return 2
    except MemoryError:
        print("cococxr: error: out of memory; the input claims more memory than this machine has (see "
              "COCOCXR_MAX_PIXELS in docs/reliability.md)", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as one clean line (no source line, no category), as errors are shown."""
    print(f"cococxr: warning: {message}", file=file or sys.stderr)


def reference_markdown() -> str:
    """The CLI reference (docs/cli.md), generated from the parsers' ``--help`` texts."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # fixed wrapping: the committed file must not depend on the terminal
    try:
        sections = ["# CLI reference", "",
                    "Generated from `cococxr ... --help` by `python -m cococxr.cli.reference`; "
                    "a test fails when this file and the parsers disagree.", ""]
        for path in [()] + [c.path for c in COMMANDS]:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
                main([*path, "--help"])
            title = " ".join(("cococxr", *path))
            sections += [f"## `{title}`", "", "```text", buf.getvalue().rstrip(), "```", ""]
        return "\n".join(sections)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
