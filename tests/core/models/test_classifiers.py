"""Classifier factory: every registered name builds; small ones train; two-phase training."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from cococxr._tf import keras
from cococxr.errors import ConfigError, WeightsUnavailableError
from cococxr.models.classifiers import (APPLICATIONS, CLASSIFIERS, build_classifier, fine_tune,
                                        get_backbone, set_backbone_trainable)
from cococxr.models.composite import build_segment_then_classify
from cococxr.models.io import get_compile_spec, load_model, save_model

TRAINED = [
    ("cnn", (32, 32, 1), {"n_blocks": 2, "base_filters": 4, "dense_units": 8}),
    ("separable_cnn", (32, 32, 1), {}),
    ("xception", (71, 71, 1), {"truncate_at": 20}),
    ("mobilenetv2", (32, 32, 1), {}),
    ("efficientnetb0", (32, 32, 3), {}),
]
BUILT = [("inceptionv3", 75), ("resnet50", 32), ("vgg19", 32)]  # vgg16: see the weights test
SLOW_BUILT = [f"efficientnetb{i}" for i in range(1, 8)]


def _batch(shape, n=4, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    return rng.random((n, *shape), dtype=np.float32), np.eye(classes, dtype=np.float32)[labels]


def _trainable_layer_names(layers):
    return {layer.name for layer in layers if layer.trainable_weights}


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)


@pytest.mark.parametrize("name, shape, options", TRAINED, ids=[t[0] for t in TRAINED])
def test_small_classifiers_train_two_steps(name, shape, options):
    model = build_classifier(name, 2, shape, **options)
    model.run_eagerly = True  # two steps: tracing a graph would cost more than running them
    x, y = _batch(shape)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.get_layer("probabilities").activation.__name__ == "softmax"


@pytest.mark.parametrize("name, size", BUILT, ids=[b[0] for b in BUILT])
def test_large_transfer_classifiers_build(name, size):
    model = build_classifier(name, 3, (size, size, 1))
    assert model.output_shape == (None, 3)
    assert get_backbone(model).input_shape == (None, size, size, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_BUILT)
def test_larger_efficientnets_build(name):
    assert build_classifier(name, 2, (32, 32, 3)).output_shape == (None, 2)


def test_registry_covers_the_applications():
    expected = {"cnn", "separable_cnn", "xception", "inceptionv3", "resnet50", "vgg16", "vgg19",
                "mobilenetv2", *(f"efficientnetb{i}" for i in range(8))}
    assert set(CLASSIFIERS) == expected
    for spec in APPLICATIONS.values():
        assert callable(getattr(keras.applications, spec.constructor))


@pytest.mark.parametrize("num_classes", [1, "binary"])
def test_binary_head_is_one_sigmoid_unit(num_classes):
    model = build_classifier("separable_cnn", num_classes, (16, 16, 1), filters=(4, 8))
    assert model.output_shape == (None, 1)
    assert model.get_layer("probabilities").activation.__name__ == "sigmoid"
    assert get_compile_spec(model)["loss"] == "binary_crossentropy"
    x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
    model.run_eagerly = True
    model.fit(x, np.array([0, 1, 0, 1], np.float32), batch_size=2, verbose=0)


def test_cnn_options_shape_the_network():
    model = build_classifier("cnn", 4, (64, 64, 3), n_blocks=3, base_filters=8, kernel_size=5,
                             convs_per_block=1, batch_norm=False, dropout=0, pooling="flatten",
                             dense_units=0, optimizer="adamw", learning_rate=0.01)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [8, 16, 32]
    assert convs[0].kernel_size == (5, 5)
    assert not any(isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Dropout))
                   for layer in model.layers)
    assert isinstance(model.get_layer("head_pool"), keras.layers.Flatten)
    assert type(model.optimizer).__name__ == "AdamW"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)


def test_separable_cnn_is_the_studys_light_model():
    model = build_classifier("separable_cnn", 3, (64, 64, 1))
    seps = [layer.filters for layer in model.layers
            if isinstance(layer, keras.layers.SeparableConv2D)]
    assert seps == [16, 16, 32, 32, 64, 64, 128, 128]
    assert isinstance(model.get_layer("head_pool"), keras.layers.GlobalMaxPooling2D)
    assert model.get_layer("head_dense").units == 16


def test_truncated_xception_has_the_studys_head():
    model = build_classifier("xception", 2, (71, 71, 1), truncate_at=30)
    assert len(get_backbone(model).layers) <= 30
    names = [layer.name for layer in model.layers]
    assert names[names.index("backbone") + 1:] == ["head_conv", "head_bn", "head_dropout",
                                                    "head_pool", "probabilities"]
    with pytest.raises(ConfigError, match="truncate_at"):
        build_classifier("xception", 2, (71, 71, 1), truncate_at=1)


@pytest.mark.parametrize("name, kwargs, match", [
    ("resnet", {}, "known: cnn,"),
    ("cnn", {"num_classes": 0}, "num_classes"),
    ("cnn", {"num_classes": 2.0}, "num_classes"),
    ("xception", {"input_shape": (64, 64, 1)}, ">= 71"),
    ("mobilenetv2", {"input_shape": (32, 32, 2)}, "1 or 3"),
    ("cnn", {"input_shape": (8, 8, 1)}, ">= 16"),
    ("cnn", {"pooling": "median"}, "pooling"),
    ("cnn", {"optimizer": "nope"}, "optimizer"),
    ("cnn", {"loss": "nope"}, "loss"),
    ("cnn", {"weights": "imagenet"}, "from scratch"),
])
def test_bad_arguments_raise_config_errors(name, kwargs, match):
    args = {"num_classes": 2, "input_shape": (32, 32, 1), **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_classifier(name, **args)


def test_imagenet_weights_offline_fail_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # nothing cached
    monkeypatch.setattr("cococxr.models.weights.host_reachable", lambda host, timeout=2: False)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="weights=None"):
        build_classifier("mobilenetv2", 2, (32, 32, 1), weights="imagenet")
    assert time.monotonic() - start < 5


def test_weights_file_loads_into_the_backbone_and_freezes_it(tmp_path):
    source = build_classifier("vgg16", 2, (32, 32, 1))
    path = tmp_path / "vgg16_notop.h5"
    get_backbone(source).save_weights(path)
    model = build_classifier("vgg16", 2, (32, 32, 1), weights=path)
    for a, b in zip(get_backbone(source).get_weights(), get_backbone(model).get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not get_backbone(model).trainable_weights  # pretrained: frozen for phase one
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        build_classifier("vgg16", 2, (32, 32, 1), weights=tmp_path / "missing.h5")


def test_backbone_freezing_and_fine_tuning():
    model = build_classifier("mobilenetv2", 2, (32, 32, 1), freeze_backbone=True)
    backbone = get_backbone(model)
    assert not backbone.trainable_weights
    assert _trainable_layer_names(model.layers) == {"probabilities"}

    set_backbone_trainable(model, 5)
    top = backbone.layers[-5:]
    expected = {layer.name for layer in top if layer.weights
                and not isinstance(layer, keras.layers.BatchNormalization)}
    assert _trainable_layer_names(backbone.layers) == expected

    fine_tune(model, learning_rate=1e-5)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-5)
    assert get_compile_spec(model)["lr"] == pytest.approx(1e-5)
    trainable = [layer for layer in backbone.layers if layer.trainable_weights]
    assert backbone.get_layer("Conv1") in trainable
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)

    # random weights + frozen batch norm barely propagate gradients: unfreeze it to train
    fine_tune(model, learning_rate=1e-3, freeze_batchnorm=False)
    model.run_eagerly = True
    x, y = _batch((32, 32, 1))
    before = backbone.get_layer("Conv1").get_weights()[0].copy()
    model.fit(x, y, batch_size=2, verbose=0)
    assert not np.array_equal(before, backbone.get_layer("Conv1").get_weights()[0])

    set_backbone_trainable(model, False)
    assert not backbone.trainable_weights
    with pytest.raises(ConfigError, match="trainable"):
        set_backbone_trainable(model, -1)


def test_backbone_helpers_need_a_transfer_model():
    model = build_classifier("cnn", 2, (32, 32, 1), n_blocks=2, base_filters=4)
    with pytest.raises(ConfigError, match="backbone"):
        fine_tune(model, 1e-5)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_classifier_saves_and_reloads_compiled(tmp_path, suffix):
    model = build_classifier("cnn", 3, (32, 32, 1), n_blocks=2, base_filters=4,
                             optimizer="rmsprop", learning_rate=5e-4)
    x, y = _batch((32, 32, 1), classes=3)
    model.fit(x, y, batch_size=2, verbose=0)
    loaded = load_model(save_model(model, tmp_path / f"cnn{suffix}"))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert get_compile_spec(loaded) == get_compile_spec(model)
    assert float(loaded.optimizer.learning_rate.numpy()) == pytest.approx(5e-4)
    loaded.fit(x, y, batch_size=2, verbose=0)


def _tiny_segmenter(size=32, channels=1, classes=1):
    image = keras.Input((size, size, channels))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(image)
    probs = keras.layers.Conv2D(classes, 1, activation="sigmoid")(features)
    return keras.Model(image, probs, name="tiny_unet")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_segment_then_classify_saves_reloads_and_predicts_identically(tmp_path, suffix):
    seg = _tiny_segmenter()
    cls = build_classifier("cnn", 3, (24, 24, 1), n_blocks=2, base_filters=4, dense_units=8)
    composite = build_segment_then_classify(seg, cls)
    x = np.random.default_rng(0).random((2, 50, 40, 1), dtype=np.float32)
    out = composite.predict(x, verbose=0)
    assert out["probabilities"].shape == (2, 3)
    assert out["mask"].shape == (2, 50, 40, 1)
    assert set(np.unique(out["mask"])) <= {0.0, 1.0}
    loaded = load_model(save_model(composite, tmp_path / f"composite{suffix}"))
    again = loaded.predict(x, verbose=0)
    np.testing.assert_array_equal(again["probabilities"], out["probabilities"])
    np.testing.assert_array_equal(again["mask"], out["mask"])


def test_segment_then_classify_masks_then_equalises():
    seg = _tiny_segmenter(16, classes=2)
    cls = build_classifier("cnn", 2, (16, 16, 1), n_blocks=1, base_filters=2, dense_units=0)
    composite = build_segment_then_classify(seg, cls, mask_channels=[1], threshold=0.4)
    x = np.random.default_rng(1).random((1, 16, 16, 1), dtype=np.float32)
    mask = composite.predict(x, verbose=0)["mask"]
    expected = (seg.predict(x, verbose=0)[..., 1:2] > 0.4).astype(np.float32)
    np.testing.assert_array_equal(mask, expected)
    equalised = keras.Model(composite.input, composite.get_layer("equalize").output)
    first = cv2.equalizeHist(np.round(x[0, :, :, 0] * 255).astype(np.uint8))  # at native size, as in training
    manual = cv2.equalizeHist(first * expected[0, :, :, 0].astype(np.uint8))
    np.testing.assert_allclose(equalised.predict(x, verbose=0)[0, :, :, 0] * 255, manual, atol=1e-3)


def test_segment_then_classify_adapts_channels_and_checks_inputs():
    rgb_cls = build_classifier("separable_cnn", 2, (16, 16, 3), filters=(4,))
    composite = build_segment_then_classify(_tiny_segmenter(16), rgb_cls, channels=1)
    assert composite.input_shape == (None, None, None, 1)
    assert composite.predict(np.zeros((1, 20, 20, 1), np.float32), verbose=0)["mask"].shape == (1, 20, 20, 1)
    with pytest.raises(ConfigError, match="composite input has 3"):
        build_segment_then_classify(_tiny_segmenter(16, channels=1), rgb_cls)
    image = keras.Input((None, None, 1))
    any_size = keras.Model(image, keras.layers.Conv2D(1, 1, activation="sigmoid")(image))
    with pytest.raises(ConfigError, match="fixed"):
        build_segment_then_classify(any_size, rgb_cls, channels=1)
