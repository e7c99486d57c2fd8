"""How to read a Kaggle RLE CSV: the column and pixel-order spec, presets, and image lookup.

Shared by ``cococxr convert rle-csv`` (:mod:`converters.rle_csv`) and ``cococxr
inspect-rle`` (:mod:`converters.inspect_rle`).
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from cococxr.errors import ConfigError, ConversionError
from cococxr.io import image_size
from cococxr.paths import check_inside, check_relative_name

from .csv_table import CsvTable

#: Image record keys a ``--id-regex`` group may not use.
RESERVED_IMAGE_KEYS = frozenset({"id", "file_name", "height", "width", "kaggle_id", "kaggle_empty_rows"})
_UW_FILE = re.compile(r"slice_(\d+)_(\d+)_(\d+)_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)\.png")
_MAX_LISTED = 5


@dataclass(frozen=True)
class RleSpec:
    """How to read one Kaggle RLE CSV.

    Attributes:
        id_column, rle_column: the image id and RLE columns.
        class_column: the class column, or None (then every mask is ``category``).
        order: ``"row"`` or ``"column"`` pixel order.
        instances: one annotation per row instead of one per image and class.
        image_pattern: image path under the image folder; ``{id}`` and the named groups
            of ``id_regex`` are filled in; ``*`` and ``?`` are globbed (one match needed).
        id_regex: regex the whole id must match; its named groups are stored on the
            image record (as ints when they are digits).
        categories: the classes in category order (None: the sorted class values).
        category: the class name when there is no class column.
        supercategory: supercategory of the classes.
        size_from_name: read height, width and pixel spacing from UW-Madison file names
            (``slice_0001_266_266_1.50_1.50.png`` = slice, width, height, spacing w, h).
    """

    id_column: str = "ImageId"
    rle_column: str = "EncodedPixels"
    class_column: str | None = None
    order: str | None = None
    instances: bool = False
    image_pattern: str = "{id}.png"
    id_regex: str | None = None
    categories: tuple[str, ...] | None = None
    category: str = "foreground"
    supercategory: str = "anatomy"
    size_from_name: bool = False


PRESETS: dict[str, RleSpec] = {
    "uw-madison": RleSpec(
        id_column="id", class_column="class", rle_column="segmentation", order="row",
        image_pattern="train/case{case}/case{case}_day{day}/scans/slice_{slice}_*.png",
        id_regex=r"case(?P<case>\d+)_day(?P<day>\d+)_slice_(?P<slice>\d+)",
        categories=("large_bowel", "small_bowel", "stomach"), size_from_name=True),
    "dsb2018": RleSpec(
        id_column="ImageId", rle_column="EncodedPixels", order="column", instances=True,
        image_pattern="stage1_train/{id}/images/{id}.png", category="nucleus", supercategory="cell"),
}


def resolve_spec(preset: str | None = None, **overrides) -> RleSpec:
    """A preset (or the generic defaults) with the given non-None fields replaced.

    Raises:
        ConfigError: unknown preset or field, missing or bad ``order``, bad ``id_regex``,
            or a pattern placeholder that neither ``id`` nor a regex group provides.
    """
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    spec = PRESETS[preset] if preset else RleSpec()
    try:
        spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
    except TypeError as exc:
        raise ConfigError(f"unknown RLE CSV option: {exc}") from exc
    if spec.class_column == "":
        spec = replace(spec, class_column=None)
    if spec.order not in ("row", "column"):
        raise ConfigError(f"pixel order {spec.order!r}: pass order 'row' or 'column' (--order); "
                          "`cococxr inspect-rle CSV --id ID` renders both to show which one the CSV uses")
    groups = _regex_groups(spec.id_regex)
    try:
        spec.image_pattern.format(id="x", **dict.fromkeys(groups, "1"))
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"image pattern {spec.image_pattern!r}: bad placeholder {exc}; available: "
                          f"{{id}}{''.join(f', {{{g}}}' for g in groups)}") from exc
    return spec


def _regex_groups(id_regex: str | None) -> list[str]:
    """Named groups of the id regex (validated)."""
    if id_regex is None:
        return []
    try:
        groups = list(re.compile(id_regex).groupindex)
    except re.error as exc:
        raise ConfigError(f"--id-regex {id_regex!r} is not a valid regular expression: {exc}") from exc
    reserved = sorted(set(groups) & RESERVED_IMAGE_KEYS)
    if reserved:
        raise ConfigError(f"--id-regex groups {reserved} are reserved image keys; rename them")
    return groups


@dataclass(frozen=True)
class CsvColumns:
    """Indexes of the spec's columns in one table (``cls`` is None without a class column)."""

    id: int
    rle: int
    cls: int | None
    extra: tuple[int, ...]

    @classmethod
    def find(cls, table: CsvTable, spec: RleSpec) -> CsvColumns:
        """Look the columns up; ConversionError names a missing one and the columns found."""
        ids = table.column_index(spec.id_column, "--id-column")
        rle = table.column_index(spec.rle_column, "--rle-column")
        klass = table.column_index(spec.class_column, "--class-column") if spec.class_column else None
        used = {ids, rle, klass}
        return cls(ids, rle, klass, tuple(i for i in range(len(table.columns)) if i not in used))


def id_fields(spec: RleSpec, kaggle_id: str, where: str) -> dict[str, str]:
    """The named groups of ``spec.id_regex`` in ``kaggle_id`` (empty without a regex)."""
    if spec.id_regex is None:
        return {}
    match = re.fullmatch(spec.id_regex, kaggle_id)
    if match is None:
        raise ConversionError(f"{where}: id {kaggle_id!r} does not match --id-regex {spec.id_regex!r}")
    return match.groupdict()


@dataclass(frozen=True)
class ImageLocation:
    """Where an id's image is and how big it is."""

    file_name: str
    height: int
    width: int
    extras: dict


def locate_image(spec: RleSpec, root: str | os.PathLike, kaggle_id: str, fields: dict[str, str],
                 where: str, size: tuple[int, int] | None = None) -> ImageLocation:
    """Find an id's image under ``root`` and its size.

    Args:
        spec: the reading spec (pattern, ``size_from_name``).
        root: the image folder.
        kaggle_id: the id; ``fields``: its regex groups.
        where: prefix for messages (CSV file and line).
        size: explicit ``(height, width)``; then the image file need not exist (unless the
            pattern has wildcards).

    Raises:
        ConversionError: no image (or several) matches, or the file name's size disagrees
            with the image.
        ImageReadError: the image header cannot be read.
    """
    root = Path(root)
    name = spec.image_pattern.format(id=kaggle_id, **fields)
    check_relative_name(name, f"{where}: image path for id {kaggle_id!r}")
    if glob.has_magic(spec.image_pattern):
        escaped = spec.image_pattern.format(id=glob.escape(kaggle_id), **{k: glob.escape(v) for k, v in fields.items()})
        matches = sorted(p.relative_to(root).as_posix() for p in root.glob(escaped) if p.is_file())
        if len(matches) != 1:
            found = "nothing matches" if not matches else f"{len(matches)} files match ({matches[:_MAX_LISTED]})"
            raise ConversionError(f"{where}: no unique image for id {kaggle_id!r}: {found} {root / name} "
                                  f"(--image-pattern {spec.image_pattern!r}, --images {root})")
        name = matches[0]
    elif size is None and not (root / name).is_file():
        raise ConversionError(f"{where}: no image for id {kaggle_id!r}: {root / name} does not exist "
                              f"(--image-pattern {spec.image_pattern!r}, --images {root}; or give --height "
                              "and --width)")
    if (root / name).exists():
        check_inside(root, root / name, f"{where}: image for id {kaggle_id!r}")
    extras = {k: int(v) if v.isdigit() else v for k, v in fields.items()}
    if size is not None:
        return ImageLocation(name, size[0], size[1], extras)
    height, width = image_size(root / name)
    if spec.size_from_name:
        extras.update(_uw_file_facts(root / name, height, width))
    return ImageLocation(name, height, width, extras)


def _uw_file_facts(path: Path, height: int, width: int) -> dict:
    """Pixel spacing ``[row, col]`` from a UW-Madison file name, checked against the image size."""
    match = _UW_FILE.fullmatch(path.name)
    if match is None:
        raise ConversionError(f"{path}: not a UW-Madison slice file name "
                              "(slice_<n>_<width>_<height>_<spacing w>_<spacing h>.png)")
    name_width, name_height = int(match.group(2)), int(match.group(3))
    if (name_height, name_width) != (height, width):
        raise ConversionError(f"{path}: the file name gives width x height {name_width}x{name_height} but the "
                              f"image is {width}x{height}")
    return {"pixel_spacing": [float(match.group(5)), float(match.group(4))]}


__all__ = ["PRESETS", "RESERVED_IMAGE_KEYS", "CsvColumns", "ImageLocation", "RleSpec", "id_fields",
           "locate_image", "resolve_spec"]
