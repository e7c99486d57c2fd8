"""The ``cococxr`` command line.

Each subcommand lives in a module that defines ``configure_parser(parser)`` and
``run(args) -> int``; this file only wires them into one ``argparse`` tree. Command
modules import TensorFlow lazily, inside ``run``, so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from cococxr._version import __version__
from cococxr.errors import CococxrError

# (command path, module, one-line help). Groups (convert, export, train, ...) are
# created from the first word of the path.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("validate",), "cococxr.cli_core", "validate a COCO file; list every problem, exit 1 if any error"),
    (("inspect",), "cococxr.cli_core", "summarise a COCO file (images, annotations per category, ...)"),
    (("split",), "cococxr.cli_core", "split a COCO file by a group key (e.g. patient_id), stratified"),
    (("merge",), "cococxr.cli_core", "merge several COCO files into one (categories mapped by name)"),
    (("doctor",), "cococxr.doctor", "run every dataset check and write a report a person can act on"),
    (("convert", "masks"), "cococxr.converters.mask_folders", "image + mask folders -> COCO"),
    (("convert", "covid-radiography"), "cococxr.converters.covid_radiography",
     "COVID-19 Radiography Database layout -> COCO"),
    (("convert", "folders"), "cococxr.converters.class_folders", "class-per-folder trees -> COCO image labels"),
    (("convert", "rle-csv"), "cococxr.converters.rle_csv", "Kaggle RLE CSV -> COCO"),
    (("convert", "metadata"), "cococxr.converters.metadata", "metadata table (CSV) -> COCO image labels"),
    (("convert", "dicom"), "cococxr.converters.dicom", "DICOM folder -> PNG + COCO image records"),
    (("export", "masks"), "cococxr.converters.export_masks", "COCO -> mask PNG folders"),
    (("export", "rle-csv"), "cococxr.converters.export_rle_csv", "COCO -> Kaggle RLE CSV"),
    (("inspect-rle",), "cococxr.converters.inspect_rle", "render one image's RLE mask in both pixel orders"),
    (("train", "segmentation"), "cococxr.pipelines.segmentation", "train a segmentation model"),
    (("evaluate", "segmentation"), "cococxr.pipelines.segmentation_eval", "evaluate a segmentation model"),
    (("predict", "segmentation"), "cococxr.pipelines.segmentation_predict", "predict masks for images"),
    (("compare",), "cococxr.pipelines.compare", "train and compare several backbones on one split"),
    (("train", "maskrcnn"), "cococxr.pipelines.maskrcnn", "train a Mask R-CNN baseline (torch)"),
    (("evaluate", "maskrcnn"), "cococxr.pipelines.maskrcnn_eval", "evaluate a Mask R-CNN baseline"),
    (("train", "classifier"), "cococxr.pipelines.classification", "train a (lung-masked) classifier"),
    (("evaluate", "classifier"), "cococxr.pipelines.classification_eval", "evaluate a classifier"),
    (("predict", "classifier"), "cococxr.pipelines.classification_predict", "classify images"),
    (("explain",), "cococxr.pipelines.explain", "Grad-CAM heatmaps and in-lung energy share"),
    (("demo",), "cococxr.pipelines.demo", "run the whole pipeline on the embedded sample (or your data)"),
    (("app",), "cococxr.pipelines.app_launcher", "start the Streamlit demo app"),
]


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def build_parser() -> argparse.ArgumentParser:
    """Build the full ``cococxr`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="cococxr",
        description="Medical image segmentation data in COCO: convert, validate, stream, train, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"cococxr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for path, module, help_text in COMMANDS:
        if not _available(module):
            continue
        mod = importlib.import_module(module)
        if len(path) == 1:
            sub = top.add_parser(path[0], help=help_text, description=help_text)
        else:
            if path[0] not in groups:
                group = top.add_parser(path[0], help=f"{path[0]} subcommands")
                groups[path[0]] = group.add_subparsers(dest="subcommand", metavar="FORMAT", required=True)
            sub = groups[path[0]].add_parser(path[1], help=help_text, description=help_text)
        configure = getattr(mod, f"configure_{'_'.join(path).replace('-', '_')}", None) or mod.configure_parser
        handler = getattr(mod, f"run_{'_'.join(path).replace('-', '_')}", None) or mod.run
        configure(sub)
        sub.set_defaults(_handler=handler)
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
    try:
        return int(handler(args) or 0)
    except CococxrError as exc:
        print(f"cococxr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        print("cococxr: interrupted", file=sys.stderr)
        return 130


def reference_markdown() -> str:
    """The CLI reference (docs/cli.md), generated from the parsers' ``--help`` texts."""
    import contextlib
    import io
    import os

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # fixed wrapping: the committed file must not depend on the terminal
    try:
        sections = ["# CLI reference", "",
                    "Generated from `cococxr ... --help` by `python -m cococxr.cli_reference`; "
                    "a test fails when this file and the parsers disagree.", ""]
        for path in [()] + [p for p, _, _ in COMMANDS]:
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
