"""A subcommand of the ``cococxr`` command line, declared as data.

Every layer that offers commands (the CLI's own core commands, ``cococxr.converters``,
``cococxr.pipelines``) lists :class:`Command` objects in a ``COMMANDS`` list of its
``commands`` module; :mod:`cococxr.cli` only wires those lists into one ``argparse``
tree. A command's ``configure`` and ``run`` live in a light module: the heavy
implementation (TensorFlow, torch) is imported by ``run`` when the command runs, so
``cococxr --help`` stays fast.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Command:
    """One subcommand.

    Attributes:
        path: the words that call it, e.g. ``("validate",)`` or ``("convert", "masks")``.
            Commands of two words are grouped under their first word.
        help: the one-line help shown by ``cococxr --help`` and as the description.
        configure: adds the command's arguments to its parser.
        run: runs the command on the parsed arguments; returns the exit code.
    """

    path: tuple[str, ...]
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    @property
    def name(self) -> str:
        """The command as typed, e.g. ``"convert masks"``."""
        return " ".join(self.path)


__all__ = ["Command"]
