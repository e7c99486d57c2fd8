"""Tests of cococxr.preprocess: contrast, colour layout, resizing, scaling and masking."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import cococxr
from cococxr.errors import ConfigError
from cococxr.io import read_image, read_mask
from cococxr.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    _equalize_lut,
    apply_mask,
    clahe,
    equalize_hist,
    gray_to_rgb,
    minmax_scale,
    pad_to_square,
    resize_image,
    resize_mask,
    standardize,
    to_gray,
)

SAMPLE = Path(cococxr.__file__).parent / "sample"


@pytest.fixture(scope="module")
def xray():
    """A real 8-bit chest X-ray and its 0/255 lung mask from the packaged sample."""
    name = sorted(p.name for p in (SAMPLE / "masks").glob("*.png"))[0]
    return read_image(SAMPLE / "images" / name), read_mask(SAMPLE / "masks" / name)


# ----------------------------------------------------------------- contrast


def test_equalize_hist_uint8_equals_opencv(xray):
    image, _ = xray
    np.testing.assert_array_equal(equalize_hist(image), cv2.equalizeHist(image))
    rgb = gray_to_rgb(image)
    np.testing.assert_array_equal(equalize_hist(rgb), gray_to_rgb(cv2.equalizeHist(image)))


@pytest.mark.parametrize("seed", range(5))
def test_equalize_lut_is_the_opencv_algorithm(seed, xray):
    rng = np.random.default_rng(seed)
    low = int(rng.integers(0, 120))
    high = low + 1 + int(rng.integers(1, 130))
    image = rng.integers(low, high, (int(rng.integers(1, 90)), 77)).astype(np.uint8)
    np.testing.assert_array_equal(_equalize_lut(image, 256), cv2.equalizeHist(image))
    np.testing.assert_array_equal(_equalize_lut(xray[0], 256), cv2.equalizeHist(xray[0]))


def test_equalize_hist_uint16(xray):
    image = xray[0].astype(np.uint16) * 64 + 5  # 14-bit-like data
    out = equalize_hist(image)
    assert out.dtype == np.uint16 and out.shape == image.shape
    assert out.min() == 0 and out.max() == 65535
    order = np.argsort(image.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[order].astype(np.int64)) >= 0)  # order preserving
    scaled = cv2.equalizeHist(xray[0]).astype(np.float64) * 257
    assert np.abs(out - scaled).max() <= 257  # same CDF, finer output levels
    constant = np.full((4, 4), 1234, np.uint16)
    np.testing.assert_array_equal(equalize_hist(constant), constant)


def test_clahe_uint8_uint16_and_grid_order(xray):
    image = xray[0]
    expected = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(4, 2)).apply(image)
    np.testing.assert_array_equal(clahe(image, clip_limit=3.0, tile_grid_size=(2, 4)), expected)
    wide = clahe(image.astype(np.uint16) * 257)
    assert wide.dtype == np.uint16 and wide.shape == image.shape
    assert clahe(gray_to_rgb(image)).shape == image.shape + (3,)


@pytest.mark.parametrize("func", [equalize_hist, clahe])
def test_contrast_rejects_float(func):
    with pytest.raises(ConfigError):
        func(np.zeros((4, 4), np.float32))


# ----------------------------------------------------------------- colour layout


def test_gray_rgb_round_trip(xray):
    image = xray[0]
    rgb = gray_to_rgb(image)
    assert rgb.shape == image.shape + (3,) and rgb.dtype == image.dtype
    np.testing.assert_array_equal(to_gray(rgb), image)
    np.testing.assert_array_equal(gray_to_rgb(image[:, :, None]), rgb)
    assert gray_to_rgb(rgb) is rgb and to_gray(image) is image
    colour = np.dstack([image, image // 2, 255 - image])
    np.testing.assert_array_equal(to_gray(colour), cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY))
    assert to_gray(np.dstack([colour, image])).shape == image.shape
    with pytest.raises(ConfigError):
        to_gray(np.zeros((2, 2, 2), np.uint8))


# ----------------------------------------------------------------- resizing


def test_resize_image_shapes_and_auto(xray):
    image = xray[0]
    small = resize_image(image, (64, 48))
    assert small.shape == (64, 48) and small.dtype == np.uint8
    np.testing.assert_array_equal(small, cv2.resize(image, (48, 64), interpolation=cv2.INTER_AREA))
    big = resize_image(image, (300, 400))
    np.testing.assert_array_equal(big, cv2.resize(image, (400, 300), interpolation=cv2.INTER_LINEAR))
    assert resize_image(image[:, :, None], (10, 12)).shape == (10, 12, 1)
    assert resize_image(gray_to_rgb(image).astype(np.float32), (10, 12), "linear").dtype == np.float32
    assert resize_image(image.astype(np.uint16), (10, 12), "area").dtype == np.uint16


@pytest.mark.parametrize("size,interpolation", [((0, 5), "area"), ((5,), "area"), ((5, 5), "cubic")])
def test_resize_image_rejects_bad_arguments(size, interpolation):
    with pytest.raises(ConfigError):
        resize_image(np.zeros((8, 8), np.uint8), size, interpolation)


def test_resize_mask_real_mask_stays_binary(xray):
    image, mask = xray
    small = resize_mask(mask, (100, 90))
    assert small.shape == (100, 90) and set(np.unique(small)) <= {0, 255}
    back = resize_mask(small, mask.shape)
    assert back.shape == mask.shape
    assert (back == mask).mean() > 0.97


@settings(max_examples=30, deadline=None)
@given(
    mask=arrays(st.sampled_from([np.uint8, np.uint16, np.int32, np.bool_]),
                st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([0, 1, 5]))
                .map(lambda s: s[:2] if s[2] == 0 else s)),
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
)
def test_resize_mask_never_creates_values(mask, size):
    out = resize_mask(mask, size)
    assert out.dtype == mask.dtype
    assert out.shape == size + mask.shape[2:]
    assert set(np.unique(out)) <= set(np.unique(mask))


def test_resize_mask_rejects_int64():
    with pytest.raises(ConfigError):
        resize_mask(np.zeros((4, 4), np.int64), (2, 2))


def test_pad_to_square():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3) + 1
    square, (top, left) = pad_to_square(image)
    assert square.shape == (3, 3) and (top, left) == (0, 0)
    np.testing.assert_array_equal(square[top:top + 2, left:left + 3], image)
    tall, offset = pad_to_square(np.ones((5, 2, 3), np.uint16), value=7)
    assert tall.shape == (5, 5, 3) and offset == (0, 1)
    assert tall[0, 0, 0] == 7 and tall[0, 4, 0] == 7 and tall[0, 1, 0] == 1


# ----------------------------------------------------------------- scaling and masking


def test_minmax_scale():
    out = minmax_scale(np.array([[10, 20], [30, 50]], np.uint16))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0, 0.25], [0.5, 1]])
    assert minmax_scale(np.full((2, 2), 9.0)).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_standardize(xray):
    rgb = gray_to_rgb(xray[0])
    out = standardize(rgb, IMAGENET_MEAN, IMAGENET_STD)
    assert out.dtype == np.float32 and out.shape == rgb.shape
    expected = (rgb[..., 1] / np.float32(255) - np.float32(IMAGENET_MEAN[1])) / np.float32(IMAGENET_STD[1])
    np.testing.assert_allclose(out[..., 1], expected, rtol=1e-5, atol=1e-6)
    z = standardize(xray[0])
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-3
    with pytest.raises(ConfigError):
        standardize(rgb, IMAGENET_MEAN)
    with pytest.raises(ConfigError):
        standardize(rgb, 0.5, 0.0)


def test_apply_mask(xray):
    image, mask = xray
    binary = (mask > 0).astype(np.uint8)
    out = apply_mask(image, binary)
    assert out.dtype == image.dtype
    np.testing.assert_array_equal(out[binary == 0], 0)
    np.testing.assert_array_equal(out[binary == 1], image[binary == 1])
    np.testing.assert_array_equal(apply_mask(image, mask), out)  # 0/255 masks too
    rgb = apply_mask(gray_to_rgb(image.astype(np.uint16)), binary[:, :, None])
    np.testing.assert_array_equal(rgb[..., 2], out)
    with pytest.raises(ConfigError):
        apply_mask(image, binary[:-1])
