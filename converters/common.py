"""Shared plumbing for converters: ordered parallel map, count reports, output paths,
the options every converter has, and the ending of those that write a COCO file."""
from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

from tqdm.auto import tqdm

from cococxr.coco import CocoBuilder, CocoDataset
from cococxr.config import flag_name, option
from cococxr.distributed import active_client, dask_map
from cococxr.outputs import check_outputs
from cococxr.paths import check_inside
from cococxr.workers import die_with_parent

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(func: Callable[[T], R], items: Sequence[T], workers: int = 1,
                 desc: str = "converting", chunksize: int = 8) -> list[R]:
    """Apply ``func`` to every item, in order, with a progress bar.

    Results come back in input order whatever ``workers`` is, so converters that number
    ids after this call produce byte-identical output for any worker count. Inside
    :func:`cococxr.distributed.dask_engine` the items go to the Dask cluster in shards
    instead (``workers`` is then ignored), with the same results.

    Args:
        func: a picklable top-level function (it runs in worker processes when workers > 1).
        items: the inputs.
        workers: number of processes; 1 runs in this process.
        desc: progress bar label.
        chunksize: items sent to a worker at a time.

    Returns:
        ``[func(item) for item in items]``. The first exception raised by ``func`` propagates.
    """
    disable = len(items) < 50 or not _progress_enabled()
    client = active_client()
    if client is not None:  # inside cococxr.distributed.dask_engine: shards on the cluster instead
        return dask_map(client, func, items, desc=desc, min_shard=chunksize, progress=not disable)
    if workers <= 1 or len(items) < 2:
        return [func(item) for item in tqdm(items, desc=desc, disable=disable, unit="img")]
    pool = ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        results = list(tqdm(pool.map(func, items, chunksize=chunksize), total=len(items), desc=desc,
                            disable=disable, unit="img"))
    except BaseException:  # an error, Ctrl-C or SIGTERM: stop the workers now, not after the queue
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()  # SIGTERM: each removes its temporary files and leaves
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def _progress_enabled() -> bool:
    return os.environ.get("COCOCXR_PROGRESS", "1") != "0"


@dataclass
class ConversionReport:
    """Counts in and out of a conversion, printed at the end so nothing is lost silently.

    Attributes:
        source: what was converted (a folder or file).
        output: the file written.
        counts: named counts, e.g. ``images in``, ``images out``, ``masks in``, ``annotations out``.
        notes: policies that were applied (e.g. ``12 masks resized from 256x256``).
    """

    source: str
    output: str = ""
    counts: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        """Increase a named count."""
        self.counts[key] += n

    def format(self) -> str:
        """The report as printable lines."""
        lines = [f"converted {self.source}" + (f" -> {self.output}" if self.output else "")]
        width = max((len(k) for k in self.counts), default=0)
        lines += [f"  {k:<{width}} : {v}" for k, v in self.counts.items()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def image_root_hint(images_dir: str | os.PathLike, out_json: str | os.PathLike) -> str:
    """The ``info.image_root`` value to store: ``images_dir`` relative to the JSON's folder.

    Falls back to the absolute path when no relative path exists (another drive).
    """
    images_dir = Path(images_dir).resolve()
    out_dir = Path(out_json).resolve().parent
    try:
        return os.path.relpath(images_dir, out_dir).replace(os.sep, "/")
    except ValueError:  # pragma: no cover - Windows, different drives
        return str(images_dir)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")


def list_images(folder: str | os.PathLike, suffixes: Iterable[str] = IMAGE_SUFFIXES,
                recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` sorted by relative path (deterministic ids).

    Raises:
        UnsafePathError: a file is a link that leaves ``folder`` (:func:`cococxr.paths.check_inside`).
    """
    folder = Path(folder)
    suffixes = tuple(s.lower() for s in suffixes)
    pattern = "**/*" if recursive else "*"
    found = sorted((p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in suffixes),
                   key=lambda p: p.relative_to(folder).as_posix())
    for path in found:
        check_inside(folder, path, "input folder")
    return found


def ignored_files(folder: str | os.PathLike, recursive: bool = False,
                  suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[tuple[Path, str]]:
    """The files of ``folder`` that :func:`list_images` leaves out, each with the reason."""
    folder = Path(folder)
    suffixes = tuple(s.lower() for s in suffixes)
    found = sorted(p for p in folder.glob("**/*" if recursive else "*") if p.is_file() or p.is_symlink())
    return [(p, "hidden file" if p.name.startswith(".") else f"not an image type ({p.suffix.lower() or 'no suffix'})")
            for p in found if p.suffix.lower() not in suffixes]


def note_ignored(report: ConversionReport, ignored: list[tuple[Path, str]], root: str | os.PathLike | None = None) -> None:
    """Count ignored input files in the report, with their reasons and a few examples (relative to ``root``)."""
    report.add("files ignored", len(ignored))
    by_reason: dict[str, list[str]] = {}
    for path, reason in ignored:
        try:
            shown = path.relative_to(root).as_posix() if root is not None else path.as_posix()
        except ValueError:
            shown = path.as_posix()
        by_reason.setdefault(reason, []).append(shown)
    for reason, names in by_reason.items():
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        report.notes.append(f"ignored {len(names)} file(s), {reason}: {', '.join(names[:3])}{more}")


def info_image_root(images_dir: str | os.PathLike, out_json: str | os.PathLike | None) -> str:
    """The ``info.image_root`` of a converted dataset: relative to ``out_json``, absolute without one."""
    return image_root_hint(images_dir, out_json) if out_json is not None else str(Path(images_dir).resolve())


def finish(builder: CocoBuilder, image_root: str | os.PathLike, out: str | os.PathLike | None,
           report: ConversionReport, indent: int | None = None, *,
           checked: bool = False) -> tuple[CocoDataset, ConversionReport]:
    """The ending of a converter that writes a COCO file.

    Builds the dataset (validated, unless ``checked``: the builder checked every record
    as it was added), writes it atomically when ``out`` is given and names it in the report.

    Args:
        builder: the records.
        image_root: the folder the dataset resolves file names against.
        out: the COCO JSON to write, or None.
        report: the count report.
        indent: JSON indent.
        checked: skip re-validation; the dataset counts as validated.

    Returns:
        ``(CocoDataset, ConversionReport)``.
    """
    dataset = builder.build(image_root, validate=not checked)
    dataset.validated = dataset.validated or checked
    if out is not None:
        dataset.write(out, indent=indent)
        report.output = str(out)
        note = outside_root_note(image_root, out)
        if note:
            report.notes.append(note)
    return dataset, report


def check_config_outputs(config, inputs: Iterable[tuple]) -> None:
    """Refuse a resolved config's ``out`` / ``out_images`` that is, is inside or contains an input.

    For the commands whose outputs may come from a ``--config`` file (the CLI checks flags).
    """
    check_outputs([(flag_name(k), getattr(config, k, None)) for k in ("out", "out_images")], inputs)


def outside_root_note(image_root: str | os.PathLike, out: str | os.PathLike) -> str | None:
    """A note when the images lie outside the written file's folder: reading it needs --image-root."""
    root, folder = Path(image_root).resolve(), Path(out).resolve().parent
    if root == folder or folder in root.parents:
        return None
    return (f"the images ({root}) are outside the folder of {out}, so the file cannot name them itself: "
            f"read it with --image-root {root}")


def print_report(result) -> None:
    """Print the :class:`ConversionReport` a converter returned (alone, or last of a tuple)."""
    report = result[-1] if isinstance(result, tuple) else result
    print(report.format())


def comma_list(value: str | Sequence[str]) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]`` (blanks dropped; ``""`` -> None); a list is kept."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()] if value else None
    return list(value)


# Options most converters share (each converter's schema lists them in its --help order).
def out_option(help: str = "COCO JSON file to write (atomically)", *, cli_required: bool = True,
               metavar: str | None = None):
    """``--out/-o``: the file (or folder) written; the Python API writes nothing without it."""
    return option(None, help, flags=("--out", "-o"), cli_required=cli_required, metavar=metavar,
                  role="output")


def workers_option():
    """``--workers``: worker processes."""
    return option(1, "parallel worker processes (output is identical for any value)")


def indent_option():
    """``--indent``: JSON indent."""
    return option(None, "indent the JSON (default: compact)")


def verify_images_option():
    """``--verify-images``: decode every image fully."""
    return option(False, "decode every image fully to catch truncated files (default: header only)")
