"""Issue 17 class 4: lossy or ambiguous masks are refused, or converted under a named policy.

Inputs: real X-rays and hand-drawn lung masks (0/255) from ../shared/data/cxr-sample, saved
again as JPEG, as a two-page TIFF, blurred (an anti-aliased halo), relabelled 0/1/2, or
tagged with an EXIF orientation.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import shared
from PIL import Image

from cococxr.cli import main
from cococxr.errors import ConfigError, ConversionError, ImageReadError
from cococxr.io import image_size, read_image
from cococxr.masks import annotation_to_mask
from cococxr.converters.covid_radiography import convert_covid_radiography
from cococxr.converters.mask_folders import convert_mask_folders

STEMS = ("00870a9c", "02b76460")


def _folders(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """``images/`` with two real X-rays and ``masks/`` with their masks (PNG); returns the masks."""
    sample = shared("cxr-sample")
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    truth = {}
    for stem in STEMS:
        shutil.copy(sample / "images" / f"{stem}.png", images)
        shutil.copy(sample / "masks" / f"{stem}.png", masks)
        truth[stem] = cv2.imread(str(masks / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    return images, masks, truth


def _save(path: Path, array: np.ndarray, fmt: str, **params) -> None:
    Image.fromarray(array).save(path, format=fmt, **params)


def _mask_of(ds, stem: str) -> np.ndarray:
    image_id = next(i for i, img in ds.imgs.items() if img["file_name"].startswith(stem))
    anns = ds.img_to_anns[image_id]
    img = ds.imgs[image_id]
    return np.max([annotation_to_mask(a, img["height"], img["width"]) for a in anns], axis=0)


def test_png_masks_convert_as_before_and_the_report_names_the_policies(tmp_path):
    images, masks, truth = _folders(tmp_path)
    ds, report = convert_mask_folders(images, masks, class_name="lung")
    for stem in STEMS:
        np.testing.assert_array_equal(_mask_of(ds, stem), (truth[stem] > 0).astype(np.uint8))
    text = report.format()
    assert "binary masks hold 0 and one other value" in text
    assert "lossy (JPEG) masks: refused" in text and "multi-page TIFF masks: refused" in text


def test_jpeg_mask_is_refused_as_lossy(tmp_path):
    images, masks, truth = _folders(tmp_path)
    (masks / f"{STEMS[0]}.png").unlink()
    _save(masks / f"{STEMS[0]}.jpg", truth[STEMS[0]], "JPEG", quality=75)
    with pytest.raises(ConversionError, match=r"00870a9c\.jpg is a JPEG \(lossy\).*--allow-lossy-masks"):
        convert_mask_folders(images, masks)


def test_allow_lossy_masks_thresholds_at_127_and_says_so(tmp_path):
    images, masks, truth = _folders(tmp_path)
    (masks / f"{STEMS[0]}.png").unlink()
    _save(masks / f"{STEMS[0]}.jpg", truth[STEMS[0]], "JPEG", quality=75)
    decoded = cv2.imread(str(masks / f"{STEMS[0]}.jpg"), cv2.IMREAD_GRAYSCALE)
    exact = truth[STEMS[0]] > 0
    assert (decoded != 0).sum() > 1.05 * exact.sum(), "any-non-zero on the JPEG grows the mask"
    ds, report = convert_mask_folders(images, masks, allow_lossy_masks=True)
    ours = _mask_of(ds, STEMS[0]).astype(bool)
    assert (ours & exact).sum() / (ours | exact).sum() > 0.97
    assert "lossy (JPEG) masks: allowed, thresholded at > 127 (1 mask(s))" in report.format()


def test_jpeg_mask_with_a_class_map_is_always_refused(tmp_path):
    images, masks, truth = _folders(tmp_path)
    (masks / f"{STEMS[0]}.png").unlink()
    _save(masks / f"{STEMS[0]}.jpg", truth[STEMS[0]], "JPEG")
    with pytest.raises(ConversionError, match="class map's exact values"):
        convert_mask_folders(images, masks, class_map={255: "lung"}, allow_lossy_masks=True)


def test_multipage_tiff_mask_is_refused(tmp_path):
    images, masks, truth = _folders(tmp_path)
    (masks / f"{STEMS[1]}.png").unlink()
    first, second = Image.fromarray(truth[STEMS[1]]), Image.fromarray(255 - truth[STEMS[1]])
    first.save(masks / f"{STEMS[1]}.tif", save_all=True, append_images=[second])
    with pytest.raises(ConversionError, match=r"02b76460\.tif is a TIFF file of 2 pages"):
        convert_mask_folders(images, masks)


def test_single_page_tiff_mask_converts(tmp_path):
    images, masks, truth = _folders(tmp_path)
    (masks / f"{STEMS[1]}.png").unlink()
    _save(masks / f"{STEMS[1]}.tif", truth[STEMS[1]], "TIFF")
    ds, _ = convert_mask_folders(images, masks)
    np.testing.assert_array_equal(_mask_of(ds, STEMS[1]), (truth[STEMS[1]] > 0).astype(np.uint8))


def _halo(mask: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(mask, (5, 5), 1.5)


def test_antialiased_halo_is_refused_naming_the_values(tmp_path):
    images, masks, truth = _folders(tmp_path)
    halo = _halo(truth[STEMS[0]])
    cv2.imwrite(str(masks / f"{STEMS[0]}.png"), halo)
    values = np.unique(halo)
    with pytest.raises(ConversionError) as exc:
        convert_mask_folders(images, masks)
    message = str(exc.value)
    assert f"00870a9c.png holds {len(values) - 1} non-zero values (0, {values[1]}, " in message
    assert message.count(", ") >= 7 and "..., 255)" in message and "--mask-threshold" in message


def test_mask_threshold_keeps_the_pixels_above_it(tmp_path):
    images, masks, truth = _folders(tmp_path)
    cv2.imwrite(str(masks / f"{STEMS[0]}.png"), _halo(truth[STEMS[0]]))
    ds, report = convert_mask_folders(images, masks, mask_threshold=127)
    ours, exact = _mask_of(ds, STEMS[0]).astype(bool), truth[STEMS[0]] > 0
    assert (ours & exact).sum() / (ours | exact).sum() > 0.97
    assert "--mask-threshold 127: value > 127 is foreground (2 mask(s))" in report.format()


def test_two_labels_in_a_binary_conversion_are_refused(tmp_path):
    images, masks, truth = _folders(tmp_path)
    labels = (truth[STEMS[0]] > 0).astype(np.uint8)
    labels[:, labels.shape[1] // 2:] *= 2  # left lung 1, right lung 2
    cv2.imwrite(str(masks / f"{STEMS[0]}.png"), labels)
    with pytest.raises(ConversionError, match=r"holds 2 non-zero values \(0, 1, 2\).*--class-map"):
        convert_mask_folders(images, masks)
    ds, _ = convert_mask_folders(images, masks, class_map={1: "left", 2: "right", 255: "right"})
    assert {ds.cats[a["category_id"]]["name"] for a in ds.img_to_anns[1]} == {"left", "right"}


def test_mask_threshold_with_a_class_map_is_a_config_error(tmp_path):
    images, masks, _ = _folders(tmp_path)
    with pytest.raises(ConfigError, match="binary masks"):
        convert_mask_folders(images, masks, class_map={255: "lung"}, mask_threshold=10)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def test_exif_orientation_on_a_mask_is_refused(tmp_path):
    images, masks, truth = _folders(tmp_path)
    _save(masks / f"{STEMS[0]}.png", truth[STEMS[0]], "PNG", exif=_exif(6))
    with pytest.raises(ConversionError, match=r"mask .*00870a9c\.png has EXIF orientation 6"):
        convert_mask_folders(images, masks)


def test_exif_orientation_on_an_image_is_refused_everywhere(tmp_path):
    images, masks, _ = _folders(tmp_path)
    gray = cv2.imread(str(images / f"{STEMS[0]}.png"), cv2.IMREAD_GRAYSCALE)
    path = images / f"{STEMS[0]}.png"
    _save(path, gray, "PNG", exif=_exif(8))
    with pytest.raises(ImageReadError, match="00870a9c.png has EXIF orientation 8"):
        convert_mask_folders(images, masks)
    with pytest.raises(ImageReadError, match="EXIF orientation 8"):
        read_image(path)
    with pytest.raises(ImageReadError, match="EXIF orientation 8"):
        image_size(path)
    _save(path, gray, "PNG", exif=_exif(1))
    assert read_image(path).shape == gray.shape


def test_covid_radiography_applies_the_same_policy(tmp_path):
    root = shared("covid-radiography-layout")
    tree = tmp_path / "tree" / "COVID"
    (tree / "images").mkdir(parents=True)
    (tree / "masks").mkdir()
    for name in sorted(p.name for p in (root / "COVID" / "images").iterdir())[:2]:
        shutil.copy(root / "COVID" / "images" / name, tree / "images")
        shutil.copy(root / "COVID" / "masks" / name, tree / "masks")
    mask_path = next((tree / "masks").iterdir())
    cv2.imwrite(str(mask_path), _halo(cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)))
    with pytest.raises(ConversionError, match="non-zero values"):
        convert_covid_radiography(tmp_path / "tree")
    _, report = convert_covid_radiography(tmp_path / "tree", mask_threshold=127)
    assert "--mask-threshold 127" in report.format()


def test_cli_flags(tmp_path, capsys):
    images, masks, truth = _folders(tmp_path)
    cv2.imwrite(str(masks / f"{STEMS[0]}.png"), _halo(truth[STEMS[0]]))
    out = tmp_path / "out.json"
    assert main(["convert", "masks", str(images), str(masks), "--out", str(out)]) == 2
    assert "non-zero values" in capsys.readouterr().err and not out.exists()
    assert main(["convert", "masks", str(images), str(masks), "--mask-threshold", "127", "--out", str(out)]) == 0
    assert "value > 127 is foreground" in capsys.readouterr().out

