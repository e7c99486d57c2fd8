"""Pictures and reports a person would rather look at than read.

Learning curves, confusion matrices and mask overlays as PNG files, and a
self-contained HTML report (images embedded as base64) for a run. Figures are drawn
with matplotlib's object-oriented API and rendered by Agg: no display needed, and
pyplot's global state (its backend, its open figures) is never touched.
"""
from __future__ import annotations

import base64
import html
import io as _io
import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np
from matplotlib.figure import Figure

from cococxr.atomic import atomic_write_bytes, atomic_write_text

# Distinct RGB colours for class overlays (tab10).
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _figure_png(fig) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def learning_curves_png(history: Mapping[str, Sequence[float]], path: str | Path | None = None) -> bytes:
    """Plot every metric of a Keras history with its ``val_`` twin on one axis each.

    Args:
        history: ``{"loss": [...], "val_loss": [...], "iou_score": [...], ...}``.
        path: where to write the PNG (atomically); ``None`` only returns the bytes.

    Returns:
        The PNG bytes.
    """
    names = [k for k in history if not k.startswith("val_") and k not in ("lr", "learning_rate", "epoch")]
    fig = Figure(figsize=(4 * max(len(names), 1), 3.2))
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(range(1, len(history[name]) + 1), history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(range(1, len(history[f"val_{name}"]) + 1), history[f"val_{name}"], label="validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
    data = _figure_png(fig)
    if path is not None:
        atomic_write_bytes(path, data)
    return data


def confusion_matrix_png(matrix: np.ndarray, class_names: Sequence[str], path: str | Path | None = None,
                         title: str = "Confusion matrix") -> bytes:
    """Draw a confusion matrix (rows: truth, columns: prediction) with counts in the cells."""
    matrix = np.asarray(matrix)
    fig = Figure(figsize=(1.2 * len(class_names) + 2, 1.2 * len(class_names) + 1.5))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > threshold else "black")
    data = _figure_png(fig)
    if path is not None:
        atomic_write_bytes(path, data)
    return data


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any 2-D / 3-D image (uint8, uint16 or float 0..1) as an RGB uint8 array."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.dtype == np.uint16:
        image = (image / 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image * 255.0 if image.max() <= 1.0 else image, 0, 255).astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3].copy()


def overlay_masks(image: np.ndarray, masks: Sequence[np.ndarray] | np.ndarray, alpha: float = 0.35,
                  contour_only: bool = False, colors: Sequence[tuple[int, int, int]] = PALETTE) -> np.ndarray:
    """Draw binary masks over an image, one colour per mask, with their outlines.

    Args:
        image: grayscale or RGB image.
        masks: one (H, W) mask, or a list / (H, W, K) stack of them (same size as ``image``).
        alpha: fill opacity.
        contour_only: draw outlines without fill.
        colors: RGB colours, cycled.

    Returns:
        RGB uint8 image.
    """
    out = to_rgb_uint8(image)
    if isinstance(masks, (list, tuple)):
        stack = list(masks)
    else:
        masks = np.asarray(masks)
        stack = [masks] if masks.ndim == 2 else [masks[..., k] for k in range(masks.shape[-1])]
    for k, mask in enumerate(stack):
        mask = (np.asarray(mask) > 0).astype(np.uint8)
        color = np.array(colors[k % len(colors)], dtype=np.float32)
        if not contour_only:
            sel = mask.astype(bool)
            out[sel] = (out[sel] * (1 - alpha) + color * alpha).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 1)
    return out


def comparison_overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, caption: str = "") -> np.ndarray:
    """Ground truth (green outline) and prediction (red fill) over one image, with a caption."""
    out = overlay_masks(image, [prediction], colors=[(214, 39, 40)], alpha=0.3)
    contours, _ = cv2.findContours((np.asarray(truth) > 0).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (44, 200, 44), 1)
    if caption:
        cv2.putText(out, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB (or grayscale) uint8 image."""
    array = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise ValueError("could not encode PNG")
    return buf.tobytes()


def write_png_rgb(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG, atomically."""
    atomic_write_bytes(path, encode_png(rgb))


def image_grid(images: Sequence[np.ndarray], columns: int = 4, pad: int = 2) -> np.ndarray:
    """Tile RGB images (resized to the first one's size) into one RGB image."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    h, w = images[0].shape[:2]
    tiles = [cv2.resize(to_rgb_uint8(im), (w, h), interpolation=cv2.INTER_AREA) for im in images]
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * (h + pad) + pad, min(columns, len(tiles)) * (w + pad) + pad, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = tile
    return grid


class HtmlReport:
    """A self-contained HTML page: headings, paragraphs, tables and embedded PNGs.

    Example:
        >>> report = HtmlReport("cococxr demo")
        >>> report.heading("Segmentation")
        >>> report.table({"dice": 0.95})
        >>> report.write("report.html")
    """

    def __init__(self, title: str):
        self.title = title
        self._parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        """Add a heading."""
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        """Add a paragraph of plain text."""
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, rows: Mapping[str, object] | Sequence[Mapping[str, object]]) -> None:
        """Add a key/value table (a mapping) or a table with one row per mapping."""
        if isinstance(rows, Mapping):
            body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                           for k, v in rows.items())
            self._parts.append(f"<table>{body}</table>")
            return
        rows = list(rows)
        if not rows:
            return
        columns = list(dict.fromkeys(k for row in rows for k in row))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c, '')))}</td>" for c in columns) + "</tr>"
                       for row in rows)
        self._parts.append(f"<table><tr>{head}</tr>{body}</table>")

    def image(self, png: bytes | np.ndarray, caption: str = "", width: int | None = None) -> None:
        """Embed a PNG (bytes or an RGB array) with an optional caption."""
        data = png if isinstance(png, (bytes, bytearray)) else encode_png(png)
        src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        style = f' style="max-width:{width}px"' if width else ""
        self._parts.append(f'<figure><img src="{src}" alt="{html.escape(caption)}"{style}>'
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def json_block(self, obj: object) -> None:
        """Add a pretty-printed JSON block."""
        self._parts.append(f"<pre>{html.escape(json.dumps(obj, indent=2, default=str))}</pre>")

    def render(self) -> str:
        """The whole HTML document."""
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;"
                 "text-align:left}figure{display:inline-block;margin:.4em}img{max-width:100%}"
                 "figcaption{font-size:.85em;color:#555}pre{background:#f6f6f6;padding:.6em;overflow:auto}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>"
                + "\n".join(self._parts) + "</body></html>\n")

    def write(self, path: str | Path) -> Path:
        """Write the report atomically and return its path."""
        atomic_write_text(path, self.render())
        return Path(path)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def iter_pngs(folder: str | Path, limit: int | None = None) -> Iterable[Path]:
    """PNG files in a folder, sorted, at most ``limit``."""
    return sorted(Path(folder).glob("*.png"))[:limit]
