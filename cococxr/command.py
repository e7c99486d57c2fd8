"""A subcommand of the ``cococxr`` command line, declared as data.

Every layer that offers commands (the CLI's own core commands, ``cococxr.converters``,
``cococxr.pipelines``) lists :class:`Command` objects in a ``COMMANDS`` list of its
``commands`` module; :mod:`cococxr.cli` only wires those lists into one ``argparse``
tree. A command's ``configure`` and ``run`` live in a light module: the heavy
implementation (TensorFlow, torch) is imported by ``run`` when the command runs, so
``cococxr --help`` stays fast. A command whose arguments are an option schema
(:mod:`cococxr.config`) is made with :meth:`Command.from_schema`.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Callable

from cococxr.config import add_arguments, option_values, path_roles


@dataclass(frozen=True)
class Command:
    """One subcommand.

    Attributes:
        path: the words that call it, e.g. ``("validate",)`` or ``("convert", "masks")``.
            Commands of two words are grouped under their first word.
        help: the one-line help shown by ``cococxr --help`` and as the description.
        configure: adds the command's arguments to its parser.
        run: runs the command on the parsed arguments; returns the exit code.
        schema: the option schema of a command made by :meth:`from_schema` (else None).
        function: the function such a command calls (else None).
        inputs: the argument names (``dest``) of the files and folders it reads.
        outputs: the argument names of the files and folders it writes; the CLI refuses
            an output that is, is inside or contains an input before running it.
    """

    path: tuple[str, ...]
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    schema: type | None = None
    function: Callable[..., Any] | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The command as typed, e.g. ``"convert masks"``."""
        return " ".join(self.path)

    def path_arguments(self, args: argparse.Namespace, labels: dict[str, str]) -> tuple[list, list]:
        """``(outputs, inputs)`` as ``(label, path)`` pairs from parsed arguments (lists flattened).

        Args:
            args: the parsed arguments.
            labels: what to call each argument (``dest`` -> ``"--out"`` or ``"coco"``).
        """
        def named(dests):
            pairs = []
            for dest in dests:
                value = getattr(args, dest, None)
                for item in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(item, (str, os.PathLike)):
                        pairs.append((labels.get(dest, dest), item))
            return pairs
        return named(self.outputs), named(self.inputs)

    @classmethod
    def from_schema(cls, path: tuple[str, ...], help: str, schema, function: Callable[..., Any],
                    show: Callable[[Any], None]) -> Command:
        """A command whose arguments are the fields of ``schema`` (see :func:`cococxr.config.add_arguments`).

        Its run calls ``function(**{field: value})`` (the function validates them, as for
        any Python caller), hands the result to ``show`` and exits 0.
        """
        def run(args: argparse.Namespace) -> int:
            show(function(**option_values(schema, args)))
            return 0

        inputs, outputs = path_roles(schema)
        return cls(tuple(path), help, lambda parser: add_arguments(parser, schema), run, schema, function,
                   inputs, outputs)


__all__ = ["Command"]
