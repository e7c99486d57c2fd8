"""Reports: PNG plots decode, overlays colour the right pixels, the HTML report is self-contained."""
from __future__ import annotations

import base64
import re

import cv2
import numpy as np

from cococxr import reports


def _decode(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_learning_curves_png_writes_a_decodable_image(tmp_path):
    path = tmp_path / "curves.png"
    data = reports.learning_curves_png({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "iou": [0.2, 0.6]}, path)
    assert path.read_bytes() == data
    assert _decode(data).shape[1] > _decode(data).shape[0]  # two panels side by side


def test_confusion_matrix_png(tmp_path):
    data = reports.confusion_matrix_png(np.array([[3, 1], [0, 4]]), ["COVID", "other"], tmp_path / "cm.png")
    assert _decode(data).ndim == 3


def test_overlay_masks_colours_only_masked_pixels():
    image = np.zeros((20, 20), np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 1
    out = reports.overlay_masks(image, mask, alpha=0.5)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert out[10, 10].sum() > 0          # inside: tinted
    assert out[0, 0].sum() == 0           # outside: untouched
    assert out[5, 5].tolist() == list(reports.PALETTE[0])  # outline in the class colour


def test_to_rgb_uint8_scales_every_dtype():
    assert reports.to_rgb_uint8(np.full((2, 2), 65535, np.uint16)).max() == 255
    assert reports.to_rgb_uint8(np.full((2, 2), 1.0, np.float32)).max() == 255
    assert reports.to_rgb_uint8(np.full((2, 2, 1), 7, np.uint8)).shape == (2, 2, 3)


def test_image_grid_tiles():
    grid = reports.image_grid([np.zeros((8, 8), np.uint8)] * 5, columns=2, pad=1)
    assert grid.shape == (3 * 9 + 1, 2 * 9 + 1, 3)


def test_html_report_embeds_images_and_escapes_text(tmp_path):
    report = reports.HtmlReport("Run <1>")
    report.heading("Metrics")
    report.table({"dice": 0.91234, "note": "<b>"})
    report.table([{"backbone": "a", "dice": 0.5}, {"backbone": "b", "iou": 0.4}])
    report.image(np.zeros((4, 4, 3), np.uint8), caption="overlay")
    path = report.write(tmp_path / "report.html")
    text = path.read_text()
    assert "Run &lt;1&gt;" in text and "&lt;b&gt;" in text and "0.9123" in text
    src = re.search(r'src="data:image/png;base64,([^"]+)"', text).group(1)
    assert _decode(base64.b64decode(src)).shape == (4, 4, 3)
    assert "http" not in text  # self-contained: nothing fetched from elsewhere


def test_comparison_overlay_outlines_truth_and_fills_prediction():
    image = np.zeros((20, 20), np.uint8)
    truth = np.zeros((20, 20), np.uint8)
    truth[2:10, 2:10] = 1
    prediction = np.zeros((20, 20), np.uint8)
    prediction[12:18, 12:18] = 1
    out = reports.comparison_overlay(image, truth, prediction, caption="")
    assert out[15, 15, 0] > 0 and out[15, 15, 1] < out[15, 15, 0]   # red fill
    assert out[2, 2].tolist() == [44, 200, 44]                       # green outline
    assert out[5, 5].sum() == 0                                      # inside truth only: untouched
