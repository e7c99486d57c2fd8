"""Joint augmentation keeps image and mask aligned, and is reproducible per seed."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import albumentations as A
import cv2
import numpy as np
import pytest

from cococxr.augment import Augmenter, build_augmenter, preset
from cococxr.errors import ConfigError

THRESHOLD = 100


def shapes_image(size: int = 96) -> np.ndarray:
    """Dark background (20) with bright shapes (200): mask = image > THRESHOLD."""
    image = np.full((size, size), 20, np.uint8)
    cv2.circle(image, (30, 35), 17, 200, -1)
    cv2.rectangle(image, (55, 20), (85, 45), 200, -1)
    cv2.ellipse(image, (48, 72), (30, 12), 20, 0, 360, 200, -1)
    return image


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels more than 2 px away from any edge of the mask (where interpolation cannot reach)."""
    kernel = np.ones((5, 5), np.uint8)
    return (cv2.erode(mask, kernel) > 0) | (cv2.dilate(mask, kernel) == 0)


@pytest.mark.parametrize("transform", ["light", "medium", preset("medium", horizontal_flip=True),
                                       A.Compose([A.Affine(rotate=(-30, 30), scale=(0.7, 1.3),
                                                           translate_percent=(-0.2, 0.2), p=1),
                                                  A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])])
def test_mask_stays_aligned_with_the_image(transform):
    image = shapes_image()
    mask = (image > THRESHOLD).astype(np.uint8)
    augment = build_augmenter(transform)
    moved = 0
    for seed in range(12):
        out_image, out_mask = augment(image, np.stack([mask, 1 - mask], axis=2), seed=seed)
        from_image = (out_image > THRESHOLD).astype(np.uint8)
        sure = interior(from_image)
        np.testing.assert_array_equal(out_mask[..., 0][sure], from_image[sure])
        assert np.mean(out_mask[..., 0] != from_image) < 0.03  # disagreement only at borders
        moved += not np.array_equal(out_mask[..., 0], mask)
    assert moved >= 6


def test_same_seed_same_output_in_any_thread():
    image = shapes_image()
    mask = (image > THRESHOLD).astype(np.uint8)
    augment = build_augmenter("medium")
    serial = [augment(image, mask, seed=s) for s in range(16)]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda s: augment(image, mask, seed=s), range(16)))
    for (a_img, a_mask), (b_img, b_mask) in zip(serial, parallel):
        np.testing.assert_array_equal(a_img, b_img)
        np.testing.assert_array_equal(a_mask, b_mask)
    assert not np.array_equal(serial[0][0], serial[1][0])


def test_float_images_and_image_only_calls():
    image = shapes_image().astype(np.float32) / 255
    out, mask = build_augmenter("light")(image, seed=3)
    assert mask is None and out.dtype == np.float32 and out.shape == image.shape
    assert 0 <= out.min() and out.max() <= 1


def test_presets_never_flip_unless_asked():
    for name in ("light", "medium"):
        kinds = {type(t) for t in preset(name).transforms}
        assert A.HorizontalFlip not in kinds and A.VerticalFlip not in kinds
    assert A.HorizontalFlip in {type(t) for t in preset("light", horizontal_flip=True).transforms}


def test_bad_augment_values():
    assert build_augmenter(None) is None
    with pytest.raises(ConfigError, match="light"):
        build_augmenter("heavy")
    with pytest.raises(ConfigError, match="albumentations"):
        Augmenter(lambda image: image)
    single = build_augmenter(A.HorizontalFlip(p=1))
    image = shapes_image()
    np.testing.assert_array_equal(single(image, seed=0)[0], image[:, ::-1])


LEVER_SPECS = ["light+letterbox+exposure", "zoom+rotate", "letterbox", "medium+noise+blur+text"]


@pytest.mark.parametrize("spec", LEVER_SPECS)
def test_levers_move_the_mask_with_the_image(spec):
    image = shapes_image()
    mask = (image > THRESHOLD).astype(np.uint8)
    augment = build_augmenter(spec)
    for seed in range(12):
        out_image, out_mask = augment(image, np.stack([mask, 1 - mask], axis=2), seed=seed)
        assert out_image.shape == image.shape and out_mask.shape == (96, 96, 2)
        if "text" in spec or "noise" in spec or "exposure" in spec:
            continue  # the image-only levers change intensities: checked below
        from_image = (out_image > THRESHOLD).astype(np.uint8)
        sure = interior(from_image)
        assert np.mean(out_mask[..., 0][sure] != from_image[sure]) < 0.002  # a few pixels at the frame edge
        assert np.mean(out_mask[..., 0] != from_image) < 0.03


def test_letterbox_pads_image_and_mask_identically_with_black():
    from cococxr.augment import Letterbox

    image = np.full((80, 120), 200, np.uint8)
    mask = np.ones((80, 120), np.uint8)
    framed = 0
    augment = build_augmenter(Letterbox(p=1.0))
    for seed in range(10):
        out_image, out_mask = augment(image, mask, seed=seed)
        np.testing.assert_array_equal(out_image > 0, out_mask > 0)  # padding is 0 in both, content 1/200
        assert 0.45 < out_mask.mean() <= 1.0
        framed += out_mask.mean() < 0.98
    assert framed >= 8


def test_burned_in_text_changes_the_image_only():
    from cococxr.augment import BurnedInText

    image = shapes_image()
    mask = (image > THRESHOLD).astype(np.uint8)
    augment = build_augmenter(BurnedInText(p=1.0))
    for seed in range(8):
        out_image, out_mask = augment(image, mask, seed=seed)
        assert not np.array_equal(out_image, image)
        np.testing.assert_array_equal(out_mask, mask)
    out_float, _ = augment(image.astype(np.float32) / 255, seed=1)
    assert out_float.dtype == np.float32 and out_float.max() <= 1.0


@pytest.mark.parametrize("spec", LEVER_SPECS)
def test_levers_are_deterministic_under_a_seed(spec):
    image = shapes_image()
    mask = (image > THRESHOLD).astype(np.uint8)
    augment = build_augmenter(spec)
    first = [augment(image, mask, seed=s) for s in range(6)]
    with ThreadPoolExecutor(3) as pool:
        again = list(pool.map(lambda s: build_augmenter(spec)(image, mask, seed=s), range(6)))
    for (a_img, a_mask), (b_img, b_mask) in zip(first, again):
        np.testing.assert_array_equal(a_img, b_img)
        np.testing.assert_array_equal(a_mask, b_mask)
    assert any(not np.array_equal(first[0][0], other[0]) for other in first[1:])


def test_lever_names_are_checked_without_albumentations():
    from cococxr.augment_names import augment_parts, parse_augment

    assert augment_parts("light+text+exposure") == ("light", ["exposure", "text"])
    assert parse_augment("none") is None and parse_augment("light + zoom") == "light+zoom"
    with pytest.raises(ConfigError, match=r"unknown augmentation 'shear'.*known: light, medium, exposure"):
        parse_augment("light+shear")
    with pytest.raises(ConfigError, match="preset may only come first"):
        parse_augment("zoom+light")
    with pytest.raises(ConfigError, match="twice"):
        parse_augment("zoom+zoom")
    with pytest.raises(ConfigError, match="light"):
        build_augmenter("heavy")
