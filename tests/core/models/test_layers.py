"""Custom layers: cv2-exact histogram equalisation, channel/mask helpers, save and reload."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cococxr._tf import keras
from cococxr.errors import ConfigError
from cococxr.models.io import CUSTOM_OBJECTS, load_model, save_model
from cococxr.models.layers import (ApplicationPreprocess, ApplyMask, BinarizeMask,
                                   GrayscaleToRGB, HistogramEqualization, ResizeLike,
                                   equalize_histogram)


def _cv2_batch(images: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist of every image and channel of a (B, H, W, C) uint8 batch."""
    out = np.empty_like(images)
    for b in range(images.shape[0]):
        for c in range(images.shape[3]):
            out[b, :, :, c] = cv2.equalizeHist(np.ascontiguousarray(images[b, :, :, c]))
    return out


def _random_batch(rng, n=40, shape=(23, 31)) -> np.ndarray:
    batch = []
    for _ in range(n):
        lo, hi = sorted(rng.integers(0, 256, 2))
        batch.append(rng.integers(lo, hi + 1, shape))
    return np.stack(batch).astype(np.uint8)[..., np.newaxis]


def test_equalization_matches_cv2_exactly_on_uint8():
    batch = _random_batch(np.random.default_rng(0))
    batch[0] = 77  # constant image: cv2 leaves it unchanged
    batch[1] = 0
    batch[1, 0, :4, 0] = 1  # two levels
    out = equalize_histogram(batch, (0, 255)).numpy()
    np.testing.assert_array_equal(out, _cv2_batch(batch).astype(np.float32))


def test_equalization_rounds_half_to_even_like_cv2():
    # (cdf - cdf_min) * 255 / (total - cdf_min) = 42.5 and 25.5: cv2 gives 42 and 26
    for pixels in ([0, 1, 2, 2, 2, 2, 2], [0, 1] + [2] * 9):
        image = np.array(pixels, np.uint8).reshape(1, 1, -1, 1)
        expected = cv2.equalizeHist(image[0, :, :, 0])
        np.testing.assert_array_equal(equalize_histogram(image, (0, 255)).numpy()[0, :, :, 0],
                                      expected)


def test_equalization_of_float_images_quantises_to_256_levels():
    batch = _random_batch(np.random.default_rng(1), n=8)
    out = equalize_histogram(batch.astype(np.float32) / 255.0, (0, 1)).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(np.round(out * 255.0), _cv2_batch(batch))


def test_equalization_is_per_channel():
    rgb = np.random.default_rng(2).integers(0, 256, (2, 9, 13, 3)).astype(np.uint8)
    rgb[..., 1] //= 4
    out = equalize_histogram(rgb, (0, 255)).numpy()
    np.testing.assert_array_equal(out, _cv2_batch(rgb))


@settings(max_examples=40)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=20),
                  elements=st.integers(0, 255)))
def test_equalization_matches_cv2_on_any_uint8_image(image):
    out = equalize_histogram(image[np.newaxis, :, :, np.newaxis], (0, 255)).numpy()
    np.testing.assert_array_equal(out[0, :, :, 0], cv2.equalizeHist(image))


@pytest.mark.parametrize("value_range", [(0, 2), (1, 255), "0..1", None])
def test_equalization_rejects_other_value_ranges(value_range):
    with pytest.raises(ConfigError, match="value_range"):
        HistogramEqualization(value_range)


def test_channel_and_mask_layers():
    gray = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    np.testing.assert_array_equal(GrayscaleToRGB()(gray).numpy(), np.repeat(gray, 3, axis=-1))
    with pytest.raises(ConfigError, match="1 channel"):
        GrayscaleToRGB()(np.zeros((1, 3, 4, 2), np.float32))

    probs = np.zeros((1, 2, 2, 3), np.float32)
    probs[0, 0, 0] = [0.9, 0.1, 0.1]
    probs[0, 0, 1] = [0.1, 0.7, 0.1]
    probs[0, 1, 0] = [0.5, 0.5, 0.5]  # not above the threshold
    probs[0, 1, 1] = [0.1, 0.1, 0.8]
    np.testing.assert_array_equal(BinarizeMask()(probs).numpy()[0, :, :, 0], [[1, 1], [0, 1]])
    np.testing.assert_array_equal(BinarizeMask(0.5, channels=[0, 1])(probs).numpy()[0, :, :, 0],
                                  [[1, 1], [0, 0]])

    image = np.full((1, 2, 2, 3), 0.5, np.float32)
    mask = np.array([[[[1], [0]], [[0], [1]]]], np.float32)
    np.testing.assert_array_equal(ApplyMask()([image, mask]).numpy()[0, :, :, 0], [[0.5, 0], [0, 0.5]])

    big = ResizeLike()([mask, np.zeros((1, 4, 6, 1), np.float32)]).numpy()
    assert big.shape == (1, 4, 6, 1)
    assert set(np.unique(big)) == {0.0, 1.0}


@pytest.mark.parametrize("application", ["xception", "resnet50", "efficientnetb0"])
def test_application_preprocess_uses_the_applications_function(application):
    rgb = np.random.default_rng(3).random((2, 5, 5, 3), dtype=np.float32)
    module = {"xception": keras.applications.xception, "resnet50": keras.applications.resnet50,
              "efficientnetb0": keras.applications.efficientnet}[application]
    expected = module.preprocess_input(rgb * 255.0)
    np.testing.assert_allclose(ApplicationPreprocess(application)(rgb).numpy(), expected, atol=1e-4)
    with pytest.raises(ConfigError, match="no preprocessing"):
        ApplicationPreprocess("alexnet")


def test_layers_are_registered_custom_objects():
    for cls in (HistogramEqualization, GrayscaleToRGB, ApplicationPreprocess, BinarizeMask,
                ApplyMask, ResizeLike):
        assert CUSTOM_OBJECTS[cls.__name__] is cls


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_model_with_custom_layers_saves_and_reloads(tmp_path, suffix):
    image = keras.Input((None, None, 1))
    rgb = GrayscaleToRGB()(HistogramEqualization((0, 255))(image))
    mask = BinarizeMask(0.3, channels=[0])(ApplicationPreprocess("mobilenetv2", input_max=255)(rgb))
    out = ResizeLike("bilinear")([ApplyMask()([rgb, mask]), image])
    model = keras.Model(image, out)
    batch = _random_batch(np.random.default_rng(4), n=3).astype(np.float32)
    loaded = load_model(save_model(model, tmp_path / f"layers{suffix}"))
    np.testing.assert_array_equal(loaded.predict(batch, verbose=0), model.predict(batch, verbose=0))
    config = loaded.get_layer(model.layers[1].name).get_config()
    assert config["value_range"] == [0.0, 255.0]
