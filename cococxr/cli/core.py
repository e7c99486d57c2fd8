"""The dataset commands of the core: ``validate``, ``inspect``, ``split``, ``merge``, ``doctor``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cococxr.atomic import atomic_write_text
from cococxr.coco import CocoDataset
from cococxr.command import Command
from cococxr.doctor import diagnose
from cococxr.errors import ConfigError
from cococxr.outputs import check_outputs


def _add_image_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image-root", default=None,
                        help="folder the file_name entries are relative to "
                             "(default: info.image_root in the file, else the file's folder)")


def configure_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("coco", help="COCO JSON file")
    _add_image_root(parser)
    parser.add_argument("--no-mask-check", action="store_true",
                        help="skip decoding masks to compare bbox/area (faster on huge files)")


def run_validate(args: argparse.Namespace) -> int:
    dataset = CocoDataset(args.coco, image_root=args.image_root, validate=False)
    issues = dataset.validate(check_masks=not args.no_mask_check) + dataset.link_issues()
    for issue in issues:
        print(f"{issue.severity.upper():7} {issue.code:24} {issue.path}: {issue.message}")
    errors = sum(i.severity == "error" for i in issues)
    warnings = len(issues) - errors
    print(f"{args.coco}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def configure_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("coco", help="COCO JSON file")
    _add_image_root(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_inspect(args: argparse.Namespace) -> int:
    dataset = CocoDataset(args.coco, image_root=args.image_root, validate=False)
    summary = dataset.summary()
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_summary(summary))
    return 0


def format_summary(summary: dict, indent: str = "") -> str:
    """Render a nested summary dict as indented ``key: value`` lines."""
    lines = []
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(format_summary(value, indent + "  ") if value else f"{indent}  (none)")
        elif isinstance(value, list) and len(value) > 10:
            shown = ", ".join(map(str, value[:10]))
            lines.append(f"{indent}{key}: {shown}, ... ({len(value)} in all)")
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(lines)


def parse_fractions(text: str) -> dict[str, float]:
    """Parse ``train=0.8,val=0.2`` into a dict; fractions must be positive and sum to 1."""
    fractions: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            fractions[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip() or fractions.get(name.strip(), 0) <= 0:
            raise ConfigError(f"--fractions: expected name=positive number, got {part!r}")
    if not fractions or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ConfigError(f"--fractions must sum to 1, got {text!r}")
    return fractions


def configure_split(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("coco", help="COCO JSON file to split")
    parser.add_argument("--by", default="patient_id",
                        help="image key whose groups never straddle two splits (default: patient_id)")
    parser.add_argument("--fractions", default="train=0.8,val=0.2", help="e.g. train=0.7,val=0.15,test=0.15")
    parser.add_argument("--stratify", default=None,
                        help="image key, or 'label' for the image-level label, to keep proportions of")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-missing-group", action="store_true",
                        help="images without the --by key each form their own group (default: an error, since "
                             "per-image groups can put one patient on both sides)")
    parser.add_argument("--out-dir", required=True, help="folder for <split>.json files")


def run_split(args: argparse.Namespace) -> int:
    fractions = parse_fractions(args.fractions)
    out_dir = Path(args.out_dir)
    check_outputs([(f"split {name!r}", out_dir / f"{name}.json") for name in fractions], [("coco", args.coco)])
    dataset = CocoDataset(args.coco)
    parts = dataset.split(fractions, group_key=args.by, stratify_key=args.stratify, seed=args.seed,
                          allow_missing_group=args.allow_missing_group)
    for name, part in parts.items():
        path = out_dir / f"{name}.json"
        part.write(path)
        print(f"{name}: {len(part.imgs)} images, {len(part.anns)} annotations -> {path}")
    return 0


def configure_merge(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="COCO JSON files")
    parser.add_argument("--out", "-o", required=True, help="merged COCO JSON to write")


def run_merge(args: argparse.Namespace) -> int:
    merged = CocoDataset.merge([CocoDataset(p) for p in args.inputs])
    merged.write(args.out)
    print(f"merged {len(args.inputs)} files: {len(merged.imgs)} images, {len(merged.anns)} annotations, "
          f"{len(merged.cats)} categories -> {args.out}")
    return 0


def configure_doctor(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr doctor``."""
    parser.add_argument("dataset", help="COCO JSON file")
    parser.add_argument("--image-root", default=None,
                        help="images folder for every file (default: info.image_root in each file, else its folder)")
    parser.add_argument("--splits", nargs="+", default=[], metavar="JSON",
                        help="other split files of the same data: checked too, and for patient/image leakage")
    parser.add_argument("--out", "-o", help="write the report here (.json: JSON; else Markdown); default: print it")
    parser.add_argument("--format", choices=("markdown", "json"), help="report format (default: from --out)")
    parser.add_argument("--no-images", action="store_true",
                        help="skip the image file checks (missing, unreadable, size, duplicates)")
    parser.add_argument("--patient-key", default="patient_id", help="image key of the patient (default: patient_id)")


def run_doctor(args: argparse.Namespace) -> int:
    """Run ``cococxr doctor``; exit code 1 when the report holds an error."""
    report = diagnose(args.dataset, args.image_root, splits=args.splits, check_files=not args.no_images,
                      patient_key=args.patient_key)
    fmt = args.format or ("json" if args.out and args.out.lower().endswith(".json") else "markdown")
    text = json.dumps(report.to_dict(), indent=2, default=str) + "\n" if fmt == "json" else report.to_markdown()
    if args.out:
        atomic_write_text(args.out, text)
        print(f"{report.count('error')} error(s), {report.count('warning')} warning(s), "
              f"{report.count('info')} note(s) -> {args.out}")
    else:
        sys.stdout.write(text)
    return 1 if report.count("error") else 0


COMMANDS = [
    Command(("validate",), "validate a COCO file; list every problem, exit 1 if any error",
            configure_validate, run_validate),
    Command(("inspect",), "summarise a COCO file (images, annotations per category, ...)",
            configure_inspect, run_inspect),
    Command(("split",), "split a COCO file by a group key (e.g. patient_id), stratified",
            configure_split, run_split),
    Command(("merge",), "merge several COCO files into one (categories mapped by name)",
            configure_merge, run_merge, inputs=("inputs",), outputs=("out",)),
    Command(("doctor",), "run every dataset check and write a report a person can act on",
            configure_doctor, run_doctor, inputs=("dataset", "image_root", "splits"), outputs=("out",)),
]
