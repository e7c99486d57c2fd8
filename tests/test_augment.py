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
