"""DICOM folders -> PNG images + COCO image records (``cococxr convert dicom``).

Every DICOM file under a folder (recursively; a ``.dcm``/``.dicom`` suffix or the
``DICM`` marker) is decoded with :func:`cococxr.io.read_dicom` (rescale, VOI LUT /
window, MONOCHROME1 inverted), min-max scaled to 8 or 16 bits and written as a PNG at
the same relative path. Each image record carries:

- ``dicom``: the chosen tags (JSON values: strings, numbers, lists);
- ``patient_id`` (PatientID), ``view`` (ViewPosition), ``pixel_spacing`` ([row, col] mm
  from PixelSpacing, else ImagerPixelSpacing; left out unless both values are positive)
  when present;
- ``bit_depth`` (8 or 16) and ``source`` (the DICOM file, relative to the folder).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cococxr.coco import CocoBuilder
from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError, ConversionError, ImageReadError
from cococxr.paths import check_inside

from .common import ConversionReport, finish, indent_option, info_image_root, out_option, parallel_map, workers_option

#: Tags stored under the image record's ``dicom`` key by default.
DEFAULT_TAGS = ("PatientID", "PatientSex", "PatientAge", "StudyInstanceUID", "SeriesInstanceUID",
                "SOPInstanceUID", "StudyDate", "Modality", "BodyPartExamined", "ViewPosition", "Manufacturer",
                "PhotometricInterpretation", "BitsStored", "PixelSpacing", "ImagerPixelSpacing",
                "TransferSyntaxUID")
_DICOM_SUFFIXES = (".dcm", ".dicom")
_MAX_LISTED = 5


def check_tags(tags) -> tuple[str, ...]:
    """Validate DICOM keywords (``"PatientID,ViewPosition"`` or a list).

    Raises:
        ConfigError: a keyword pydicom does not know (a typo such as ``PatientId``).
    """
    from pydicom.datadict import tag_for_keyword

    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    unknown = [t for t in tags if t != "TransferSyntaxUID" and tag_for_keyword(t) is None]
    if unknown:
        raise ConfigError(f"--tags: unknown DICOM keyword(s) {unknown} (keywords are CamelCase, e.g. PatientID, "
                          "ViewPosition, PixelSpacing)")
    return tuple(dict.fromkeys(tags))


def find_dicoms(folder: str | os.PathLike) -> tuple[list[str], int]:
    """DICOM files under ``folder`` as sorted relative POSIX paths, and the count of other files."""
    from cococxr.io import is_dicom

    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder}: not a folder")
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())
    for path in files:
        check_inside(folder, path, "DICOM folder")
    found = [p.relative_to(folder).as_posix() for p in files if is_dicom(p)]
    return found, len(files) - len(found)


def png_name(relative: str) -> str:
    """The PNG path for a DICOM path: ``.dcm``/``.dicom`` replaced (other names kept whole) + ``.png``."""
    path = PurePosixPath(relative)
    stem = path.stem if path.suffix.lower() in _DICOM_SUFFIXES else path.name
    return str(path.with_name(stem + ".png"))


def _json_tags(path: Path, keywords: list[str]) -> dict:
    """Read ``keywords`` from a DICOM header as JSON values (binary and sequence values left out)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=keywords)
    except Exception as exc:  # pydicom raises many types on corrupt files
        raise ImageReadError(f"{path}: cannot read the DICOM header ({exc})") from exc
    tags = {}
    for keyword in keywords:
        element = ds[keyword] if keyword in ds else None
        if element is None or element.VR == "SQ":
            continue
        values = element.to_json_dict(None, 1 << 20).get("Value")
        if not values:
            continue
        values = [v.get("Alphabetic", "") if isinstance(v, dict) else v for v in values]
        tags[keyword] = values[0] if len(values) == 1 else values
    return tags


def _spacing(value) -> list[float] | None:
    """``[row, col]`` mm from a PixelSpacing-like value, None unless two positive numbers."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in value):
        return [float(v) for v in value]
    return None


@dataclass(frozen=True)
class _Settings:
    folder: str
    out_images: str
    bits: int
    tags: tuple[str, ...]
    skip_bad: bool


def _convert_file(settings: _Settings, relative: str) -> dict:
    """Decode one DICOM, write its PNG and return the image record facts (or the error)."""
    from cococxr.io import DICOM_TAGS, read_dicom, write_png

    path = Path(settings.folder) / relative
    try:
        image = read_dicom(path)
        known = {k: v for k, v in image.tags.items() if k in settings.tags}
        missing = [t for t in settings.tags if t not in DICOM_TAGS and t != "TransferSyntaxUID"]
        tags = {**known, **(_json_tags(path, missing) if missing else {})}
    except ImageReadError as exc:
        if settings.skip_bad:
            return {"error": str(exc)}
        raise
    pixels = image.to_uint8() if settings.bits == 8 else image.to_uint16()
    name = png_name(relative)
    write_png(Path(settings.out_images) / name, pixels)
    extras = {"source": relative, "bit_depth": settings.bits}
    if image.tags.get("PatientID"):
        extras["patient_id"] = str(image.tags["PatientID"])
    if image.tags.get("ViewPosition"):
        extras["view"] = str(image.tags["ViewPosition"])
    spacing = [_spacing(image.tags.get(k)) for k in ("PixelSpacing", "ImagerPixelSpacing")]
    if any(spacing):
        extras["pixel_spacing"] = next(s for s in spacing if s)
    extras["dicom"] = {k: tags[k] for k in settings.tags if k in tags}
    return {"file_name": name, "height": int(pixels.shape[0]), "width": int(pixels.shape[1]), "extras": extras}


@dataclass
class DicomOptions:
    """The options of :func:`convert_dicom` and ``cococxr convert dicom``.

    ``bits``: 8 (for viewing) or 16 (keeps the dynamic range; both min-max scaled);
    ``tags``: DICOM keywords stored under the image's ``dicom`` key (list or comma text);
    ``skip_bad``: skip unreadable DICOM files (counted and listed in the report).
    """

    folder: PathArg = option(None, "folder searched recursively for DICOM files", positional=True, required=True)
    out_images: PathArg = option(None, "folder to write the PNGs to (same relative paths)", required=True,
                                  role="output")
    bits: int = option(8, "PNG bit depth: 8 for viewing, 16 to keep the dynamic range (default: 8)", choices=(8, 16))
    tags: tuple = option(DEFAULT_TAGS, "DICOM keywords stored under the image's 'dicom' key "
                                       f"(default: {','.join(DEFAULT_TAGS)})", parse=check_tags)
    skip_bad: bool = option(False, "skip unreadable DICOM files (counted in the report) instead of failing")
    out: PathArg | None = out_option()
    workers: int = workers_option()
    indent: int | None = indent_option()


def convert_dicom(folder: PathArg, out_images: PathArg, out: PathArg | None = None, **options):
    """Convert a folder of DICOM files into PNGs and a COCO dataset of image records.

    Args:
        folder: searched recursively for DICOM files.
        out_images: folder the PNGs are written to (same relative paths); ``file_name``
            is relative to it and ``info.image_root`` points at it.
        out: COCO JSON to write atomically (nothing is written when None).
        **options: the other fields of :class:`DicomOptions` (``bits``, ``tags``,
            ``skip_bad``, ``workers``, ``indent``).

    Returns:
        ``(CocoDataset, ConversionReport)``.

    Raises:
        ImageReadError: an unreadable DICOM file (names it), unless ``skip_bad``.
        ConversionError: no DICOM file found, or two files map to one PNG name.
        ConfigError: bad ``bits``, an unknown tag keyword, or an unknown option.
    """
    opts = load_options(DicomOptions, folder=folder, out_images=out_images, out=out, **options)
    folder, out_images = Path(opts.folder), Path(opts.out_images)
    files, others = find_dicoms(folder)
    if not files:
        raise ConversionError(f"{folder}: no DICOM file found (.dcm/.dicom suffix or 'DICM' marker)")
    names: dict[str, str] = {}
    for relative in files:
        clash = names.setdefault(png_name(relative).lower(), relative)
        if clash != relative:
            raise ConversionError(f"{folder}: {clash} and {relative} would both be written as {png_name(relative)}")
    report = ConversionReport(source=str(folder))
    report.add("DICOM files in", len(files))
    report.add("other files ignored", others)
    settings = _Settings(str(folder), str(out_images), opts.bits, opts.tags, opts.skip_bad)
    results = parallel_map(functools.partial(_convert_file, settings), files, opts.workers, desc="converting DICOM")
    builder = CocoBuilder(info={"description": f"DICOM folder {folder.name}",
                                "image_root": info_image_root(out_images, opts.out)})
    bad = [(relative, result["error"]) for relative, result in zip(files, results) if "error" in result]
    for result in results:
        if "error" not in result:
            builder.add_image(result["file_name"], result["height"], result["width"], **result["extras"])
    report.add("images out", len(results) - len(bad))
    report.add("bad DICOM files skipped", len(bad))
    report.notes += [f"skipped {error}" for _, error in bad[:_MAX_LISTED]]
    if len(bad) > _MAX_LISTED:
        report.notes.append(f"... and {len(bad) - _MAX_LISTED} more bad files")
    return finish(builder, out_images, opts.out, report, opts.indent)


__all__ = ["DEFAULT_TAGS", "DicomOptions", "convert_dicom", "find_dicoms", "png_name"]
