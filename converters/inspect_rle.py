"""Render one image's Kaggle RLE masks in both pixel orders (``cococxr inspect-rle``).

A Kaggle CSV does not say whether its runs are row-major or column-major. This decodes
the rows of one image both ways, draws each over the image side by side ("row-major"
left, "column-major" right) and scores each decoding:

- fragments per row: 8-connected components per decoded row. A mask decoded in the
  wrong order of a non-square image breaks into stripes, so the plausible order has
  fewer fragments;
- edge score: mean image gradient on the mask outline divided by the mean gradient of
  the image; outlines decoded in the right order tend to follow edges in the image.

For a square image the two decodings are transposes of each other: fragments cannot
tell them apart, only the image (edge score, and a person looking at the PNG) can.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cococxr.config import PathArg, load_options, option
from cococxr.errors import ConfigError, ConversionError, RLEError
from cococxr.rle import ORDERS

from .csv_table import read_csv_table
from .rle_spec import PRESETS, CsvColumns, id_fields, locate_image, resolve_spec

_TITLES = {"row": "row-major", "column": "column-major"}
_COLOURS = ((255, 64, 64), (64, 200, 255), (255, 220, 0), (120, 255, 120), (255, 120, 255))
_PANEL = 512  # longer side of each rendered panel
_BAR = 30  # title bar height


@dataclass(frozen=True)
class OrderScore:
    """How plausible one pixel order looks.

    Attributes:
        order: ``"row"`` or ``"column"``.
        fragments_per_row: mean 8-connected components per non-empty row.
        edge_score: mean gradient on the mask outline / mean gradient of the image
            (None without an image).
    """

    order: str
    fragments_per_row: float
    edge_score: float | None


@dataclass(frozen=True)
class RleInspection:
    """The result of :func:`inspect_rle`.

    Attributes:
        kaggle_id: the image id.
        rows: number of CSV rows of the image (non-empty ones are drawn).
        scores: order -> :class:`OrderScore`.
        plausible: ``"row"``, ``"column"`` or None when undecided.
        hint: one sentence saying which order looks plausible and why.
        output: the PNG written.
    """

    kaggle_id: str
    rows: int
    scores: dict
    plausible: str | None
    hint: str
    output: str


def _display_image(path: Path | None, shape: tuple[int, int]) -> np.ndarray:
    """The image as RGB uint8 for drawing (black when there is no image file)."""
    from cococxr.io import read_image

    if path is None or not path.is_file():
        return np.zeros((*shape, 3), np.uint8)
    image = read_image(path)
    if image.dtype == np.uint16:
        image = (image.astype(np.float64) * (255.0 / max(1, int(image.max())))).astype(np.uint8)
    return np.dstack([image] * 3) if image.ndim == 2 else image


def _fragments(masks: list[np.ndarray]) -> float:
    """Mean number of 8-connected components per non-empty mask."""
    counts = [cv2.connectedComponents(m, connectivity=8)[0] - 1 for m in masks if m.any()]
    return float(np.mean(counts)) if counts else 0.0


def _edge_score(gray: np.ndarray | None, union: np.ndarray) -> float | None:
    """Mean gradient on the outline of ``union`` relative to the image's mean gradient."""
    if gray is None or not union.any():
        return None
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    magnitude = cv2.magnitude(gx, gy)
    outline = union.astype(bool) & ~cv2.erode(union, np.ones((3, 3), np.uint8)).astype(bool)
    mean = float(magnitude.mean())
    return float(magnitude[outline].mean()) / mean if mean > 0 else None


def _panel(base: np.ndarray, masks: list[np.ndarray], classes: list[str], title: str) -> np.ndarray:
    """The image with the masks filled and outlined, scaled, under a title bar."""
    overlay = base.copy()
    names = sorted(set(classes))
    for mask, name in zip(masks, classes):
        colour = _COLOURS[names.index(name) % len(_COLOURS)]
        region = mask.astype(bool)
        overlay[region] = (0.5 * overlay[region] + 0.5 * np.array(colour)).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(overlay, contours, -1, colour, 1)
    scale = _PANEL / max(overlay.shape[:2])
    size = (max(1, round(overlay.shape[1] * scale)), max(1, round(overlay.shape[0] * scale)))
    overlay = cv2.resize(overlay, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
    bar = np.full((_BAR, overlay.shape[1], 3), 32, np.uint8)
    cv2.putText(bar, title, (6, _BAR - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack((bar, overlay))


def _verdict(scores: dict[str, OrderScore], same: bool, square: bool) -> tuple[str | None, str]:
    """Pick the plausible order and explain why."""
    if same:
        return None, "both orders give the same masks here: this image cannot tell them apart"
    row, column = scores["row"], scores["column"]
    low, high = sorted((row, column), key=lambda s: s.fragments_per_row)
    if high.fragments_per_row >= 1.5 * max(low.fragments_per_row, 1e-9):
        return low.order, (f"{_TITLES[low.order]} looks right: {_TITLES[high.order]} breaks each mask into "
                           f"{high.fragments_per_row:.1f} fragments on average (stripes) against "
                           f"{low.fragments_per_row:.1f}")
    if row.edge_score is not None and column.edge_score is not None:
        weak, strong = sorted((row, column), key=lambda s: s.edge_score)
        if strong.edge_score >= 1.1 * weak.edge_score:
            return strong.order, (f"{_TITLES[strong.order]} looks right: its outlines follow image edges "
                                  f"(edge score {strong.edge_score:.2f} against {weak.edge_score:.2f}); check the PNG")
    why = ("the image is square, so the two decodings are transposes of each other"
           if square else "the scores are close")
    return None, f"cannot tell: {why}; compare the two panels of the PNG with the image"


@dataclass
class InspectRleOptions:
    """The options of :func:`inspect_rle` and ``cococxr inspect-rle``.

    ``out`` defaults to ``rle-orders-<id>.png`` in the current folder; ``class_name``
    draws only that class's rows; the other options are as for
    :func:`cococxr.converters.rle_csv.convert_rle_csv`.
    """

    csv: PathArg = option(None, "Kaggle RLE CSV", positional=True, required=True)
    image_id: str = option(None, "the image id whose rows to draw", flags=("--id",), required=True)
    out: PathArg | None = option(None, "PNG to write (default: rle-orders-<id>.png)", flags=("--out", "-o"),
                                   role="output")
    class_name: str | None = option(None, "draw only this class's rows", flags=("--class",))
    images: PathArg | None = option(None, "image folder (default: the CSV's folder)")
    preset: str | None = option(None, "column names and image pattern of a known CSV", choices=tuple(sorted(PRESETS)))
    id_column: str | None = option(None, "image id column (default: ImageId)")
    class_column: str | None = option(None, "class column (default: none)")
    rle_column: str | None = option(None, "RLE column (default: EncodedPixels)")
    image_pattern: str | None = option(None, "image path under --images for an id (default: {id}.png)")
    id_regex: str | None = option(None, "regex with named groups for the pattern (see convert rle-csv)")
    height: int | None = option(None, "image height when there is no image file (with --width)")
    width: int | None = option(None, "image width")
    sep: str = option(",", "CSV separator (default: ',')")


def inspect_rle(csv: PathArg, image_id: str, out: PathArg | None = None, **options) -> RleInspection:
    """Render one image's RLE rows decoded in both pixel orders and score each order.

    Args:
        csv: the Kaggle RLE CSV.
        image_id: the id whose rows are drawn.
        out: PNG to write (default: ``rle-orders-<id>.png`` in the current folder).
        **options: the other fields of :class:`InspectRleOptions` (``images``, ``preset``,
            column names, ``class_name``, ``image_pattern``, ``id_regex``, ``height``,
            ``width``, ``sep``).

    Returns:
        :class:`RleInspection`.

    Raises:
        ConversionError: unknown column, id or class; no image and no explicit size.
        RLEError: a malformed row (names the line).
        ConfigError: a bad or unknown option.
    """
    from cococxr.io import write_png
    from cococxr.rle import kaggle_rle_decode

    opts = load_options(InspectRleOptions, csv=csv, image_id=image_id, out=out, **options)
    image_id, class_name, height, width = opts.image_id, opts.class_name, opts.height, opts.width
    # The order is what we are looking for: any value satisfies resolve_spec.
    spec = resolve_spec(opts.preset, id_column=opts.id_column, class_column=opts.class_column, rle_column=opts.rle_column,
                        image_pattern=opts.image_pattern, id_regex=opts.id_regex, order="column")
    csv = Path(opts.csv)
    root = Path(opts.images) if opts.images is not None else csv.parent
    table = read_csv_table(csv, opts.sep)
    cols = CsvColumns.find(table, spec)
    if class_name is not None and cols.cls is None:
        raise ConfigError(f"--class {class_name!r} needs a class column (--class-column)")
    picked = [(row, line) for row, line in zip(table.rows, table.lines) if row[cols.id].strip() == image_id
              and (class_name is None or row[cols.cls].strip() == class_name)]
    if not picked:
        known = list(dict.fromkeys(row[cols.id].strip() for row in table.rows))
        raise ConversionError(f"{csv}: no row with id {image_id!r}"
                              f"{f' and class {class_name!r}' if class_name else ''}; first ids: {known[:5]}")
    where = f"{csv}: line {picked[0][1]}"
    size = (height, width) if height is not None and width is not None else None
    image = locate_image(spec, root, image_id, id_fields(spec, image_id, where), where, size)
    shape = (image.height, image.width)
    decoded: dict[str, list[np.ndarray]] = {order: [] for order in ORDERS}
    classes = []
    for row, line in picked:
        try:
            masks = [kaggle_rle_decode(row[cols.rle], shape, order) for order in ORDERS]
        except RLEError as exc:
            raise RLEError(f"{csv}: line {line} (id {image_id!r}, image {shape[0]}x{shape[1]}): {exc}") from exc
        if masks[0].any():
            for order, mask in zip(ORDERS, masks):
                decoded[order].append(mask)
            classes.append(row[cols.cls].strip() if cols.cls is not None else spec.category)
    base = _display_image(root / image.file_name, shape)
    gray = cv2.cvtColor(base, cv2.COLOR_RGB2GRAY) if base.any() else None
    scores = {}
    for order in ORDERS:
        union = np.bitwise_or.reduce(decoded[order], axis=0) if decoded[order] else np.zeros(shape, np.uint8)
        scores[order] = OrderScore(order, _fragments(decoded[order]), _edge_score(gray, union))
    same = all(np.array_equal(a, b) for a, b in zip(decoded["row"], decoded["column"]))
    plausible, hint = _verdict(scores, same, shape[0] == shape[1])
    panels = [_panel(base, decoded[o], classes, f"{_TITLES[o]}: {scores[o].fragments_per_row:.1f} fragments/row")
              for o in ORDERS]
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    out = Path(opts.out) if opts.out is not None else Path(f"rle-orders-{image_id}.png")
    write_png(out, np.hstack((panels[0], gap, panels[1])))
    return RleInspection(image_id, len(picked), scores, plausible, hint, str(out))


def print_inspection(result: RleInspection) -> None:
    """Print what ``cococxr inspect-rle`` found: the scores of each order and the hint."""
    print(f"{result.kaggle_id}: {result.rows} row(s) -> {result.output}")
    for score in result.scores.values():
        edge = "n/a" if score.edge_score is None else f"{score.edge_score:.2f}"
        print(f"  {_TITLES[score.order]:<13} fragments per row {score.fragments_per_row:5.2f}   edge score {edge}")
    print(f"hint: {result.hint}")


__all__ = ["InspectRleOptions", "OrderScore", "RleInspection", "inspect_rle", "print_inspection"]
