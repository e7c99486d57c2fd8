"""Grad-CAM / Grad-CAM++ on real (tiny) models, overlays and the in-mask energy share."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from cococxr._tf import keras
from cococxr.errors import ConfigError, UnsafePathError
from cococxr.explain import (find_layer, grad_cam, grad_cam_plus_plus, in_mask_energy_share,
                             last_conv_layer, overlay_heatmap, write_overlays)
from cococxr.models.classifiers import build_classifier, get_backbone

SIZE = 32
REGION = np.zeros((SIZE, SIZE), np.uint8)
REGION[:16, :16] = 1  # the only place where the class-1 blob appears


def _blob_data(n: int, seed: int):
    """Noise images; class 1 has a bright 6x6 square somewhere in the top-left quadrant."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.3, (n, SIZE, SIZE, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, 11, 2)
        x[i, r:r + 6, c:c + 6] = 1.0
    return x, y


@pytest.fixture(scope="module")
def blob_model():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build_classifier("cnn", 2, (SIZE, SIZE, 1), n_blocks=2, base_filters=8,
                             dense_units=16, dropout=0, batch_norm=False, learning_rate=3e-3)
    x, y = _blob_data(256, seed=0)
    model.fit(x, np.eye(2)[y], batch_size=32, epochs=4, verbose=0)
    return model


@pytest.fixture(scope="module")
def positives(blob_model):
    x, y = _blob_data(32, seed=1)
    assert (blob_model.predict(x, verbose=0).argmax(-1) == y).mean() >= 0.9  # it learned
    return x[y == 1]


def test_grad_cam_puts_its_energy_on_the_blob_region(blob_model, positives):
    heatmaps = grad_cam(blob_model, positives)  # default: the predicted class (1)
    assert heatmaps.shape == positives.shape[:3] and heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    np.testing.assert_allclose(heatmaps.max(axis=(1, 2)), 1.0, atol=0.05)
    shares = in_mask_energy_share(heatmaps, np.broadcast_to(REGION, heatmaps.shape))
    assert np.nanmean(shares) > 0.5  # the region is 25% of the image
    np.testing.assert_array_equal(grad_cam(blob_model, positives, class_index=1), heatmaps)


def test_grad_cam_plus_plus_returns_valid_heatmaps(blob_model, positives):
    heatmaps = grad_cam_plus_plus(blob_model, positives[:3], layer_name="block2_act2")
    assert heatmaps.shape == (3, SIZE, SIZE)
    assert np.isfinite(heatmaps).all()
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0 and heatmaps.max() > 0.5
    single = grad_cam_plus_plus(blob_model, positives[0], layer_name="block2_act2")
    np.testing.assert_allclose(single, heatmaps[0], atol=1e-5)


def test_layer_call_is_restored_after_a_heatmap(blob_model, positives):
    layer = last_conv_layer(blob_model)
    grad_cam(blob_model, positives[:1])
    assert "call" not in vars(layer)


def test_nested_backbone_layers_are_found_in_transfer_models():
    keras.backend.clear_session()
    model = build_classifier("mobilenetv2", 2, (SIZE, SIZE, 1))
    backbone = get_backbone(model)
    assert last_conv_layer(model) is backbone.get_layer("out_relu")
    assert find_layer(model, "block_3_expand") is backbone.get_layer("block_3_expand")
    with pytest.raises(ConfigError, match="no layer named 'nope'"):
        find_layer(model, "nope")
    x = np.random.default_rng(0).random((2, SIZE, SIZE, 1), dtype=np.float32)
    for layer_name in (None, "block_13_expand_relu"):
        heatmaps = grad_cam(model, x, class_index=[0, 1], layer_name=layer_name)
        assert heatmaps.shape == (2, SIZE, SIZE) and np.isfinite(heatmaps).all()


def test_sigmoid_models_explain_both_classes():
    keras.backend.clear_session()
    model = build_classifier("cnn", "binary", (16, 16, 1), n_blocks=2, base_filters=4)
    x = np.random.default_rng(2).random((2, 16, 16, 1), dtype=np.float32)
    for class_index in (None, 0, 1):
        heatmaps = grad_cam(model, x, class_index=class_index)
        assert heatmaps.shape == (2, 16, 16) and np.isfinite(heatmaps).all()


def test_models_without_feature_maps_are_refused():
    image = keras.Input((4,))
    dense = keras.Model(image, keras.layers.Dense(2, activation="softmax")(image))
    with pytest.raises(ConfigError, match="no convolutional"):
        grad_cam(dense, np.zeros((1, 4), np.float32)[:, None, None, :])


def test_in_mask_energy_share_on_hand_made_arrays():
    heatmap = np.array([[1.0, 3.0], [0.0, 4.0]])
    mask = np.array([[1, 0], [1, 1]], np.uint8)
    assert in_mask_energy_share(heatmap, mask) == pytest.approx(5 / 8)
    assert in_mask_energy_share(heatmap, np.ones_like(mask)) == 1.0
    assert in_mask_energy_share(heatmap, np.zeros_like(mask)) == 0.0
    with np.errstate(all="raise"):  # no warning for the undefined case
        assert np.isnan(in_mask_energy_share(np.zeros((2, 2)), mask))
    shares = in_mask_energy_share(np.stack([heatmap, np.zeros((2, 2))]), np.stack([mask, mask]))
    assert shares[0] == pytest.approx(5 / 8) and np.isnan(shares[1])
    with pytest.raises(ConfigError, match="shapes differ"):
        in_mask_energy_share(heatmap, np.ones((3, 3)))


def test_overlay_heatmap_blends_jet_colours():
    image = np.full((6, 8), 100, np.uint8)
    heatmap = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)  # resized to the image
    assert overlay_heatmap(image, heatmap, alpha=0.0).tolist() == np.full((6, 8, 3), 100).tolist()
    colours = overlay_heatmap(image, np.ones((6, 8)), alpha=1.0)
    assert colours.dtype == np.uint8 and colours.shape == (6, 8, 3)
    jet_max = cv2.applyColorMap(np.full((1, 1), 255, np.uint8), cv2.COLORMAP_JET)[0, 0, ::-1]
    assert (colours == jet_max).all()  # RGB, not BGR: the hottest colour is dark red
    blend = overlay_heatmap(np.full((6, 8, 1), 100 / 255, np.float32), heatmap, alpha=0.5)
    assert blend.shape == (6, 8, 3)
    with pytest.raises(ConfigError, match="alpha"):
        overlay_heatmap(image, heatmap, alpha=1.5)


def test_write_overlays_writes_png_files(tmp_path):
    images = [np.zeros((5, 7), np.uint8), np.ones((4, 4, 3), np.float32)]
    heatmaps = [np.ones((5, 7)), np.zeros((2, 2))]
    paths = write_overlays(tmp_path / "gradcam", images, heatmaps, names=["a", "sub/b.png"])
    assert [p.relative_to(tmp_path / "gradcam").as_posix() for p in paths] == ["a.png", "sub/b.png"]
    first = cv2.cvtColor(cv2.imread(str(paths[0])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(first, overlay_heatmap(images[0], heatmaps[0]))
    assert write_overlays(tmp_path, images[:1], heatmaps[:1])[0].name == "overlay_0000.png"
    with pytest.raises(UnsafePathError):
        write_overlays(tmp_path, images[:1], heatmaps[:1], names=["../escape"])
    with pytest.raises(ConfigError, match="heatmaps"):
        write_overlays(tmp_path, images, heatmaps[:1])
