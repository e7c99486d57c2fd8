"""Segmentation model factory, weights resolution and model save/load (real tf-keras models).

Models are tiny (64x64 input, 48x48 for PSPNet), random-initialised and trained for two
steps eagerly (tracing a graph costs more than two eager steps on a CPU).
"""
from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from cococxr._tf import keras
from cococxr.errors import ConfigError, WeightsUnavailableError
from cococxr.models import io as model_io
from cococxr.models import weights as W
from cococxr.models.segmentation import (
    adapt_input_kernel,
    backbone_names,
    build_plain_unet,
    build_segmentation_model,
    compile_segmentation_model,
    get_loss,
    get_metrics,
    transfer_weights,
)


def _data(size: int, channels: int, classes: int, n: int = 4):
    rng = np.random.default_rng(0)
    x = rng.random((n, size, size, channels), dtype=np.float32)
    y = (rng.random((n, size, size, classes)) > 0.5).astype(np.float32)
    return x, y


def _train_two_steps(model, x, y, **compile_kwargs):
    compile_segmentation_model(model, **compile_kwargs)
    model.run_eagerly = True
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0, workers=1)
    return history.history


SMALL_DECODER = {"decoder_filters": (32, 16, 16, 8, 8)}


@pytest.mark.parametrize("arch, backbone, size, channels, classes, kwargs", [
    ("unet", "mobilenetv2", 64, 1, 2, SMALL_DECODER),
    ("unet", "efficientnetb0", 64, 3, 1, SMALL_DECODER),
    ("fpn", "resnet18", 64, 3, 1, {"pyramid_block_filters": 16}),
    ("linknet", "resnet18", 64, 3, 1, {}),
    ("pspnet", "mobilenetv2", 48, 3, 1, {"psp_conv_filters": 16}),
    ("plain_unet", None, 64, 1, 2, {}),
])
def test_every_architecture_builds_and_trains(arch, backbone, size, channels, classes, kwargs):
    if backbone:
        kwargs = {**kwargs, "backbone": backbone}
    model = build_segmentation_model(arch, classes=classes, input_shape=(size, size, channels),
                                     **kwargs)
    assert model.input_shape == (None, size, size, channels)
    assert model.output_shape == (None, size, size, classes)
    x, y = _data(size, channels, classes)
    history = _train_two_steps(model, x, y, loss="bce_dice",
                               classes=["lung", "heart"] if classes == 2 else None)
    assert np.isfinite(history["loss"][0])
    expected = {"loss", "iou_score", "f1-score"}
    if classes == 2:
        expected |= {"iou_lung", "f1_lung", "iou_heart", "f1_heart"}
    assert set(history) == expected


def test_plain_unet_structure():
    model = build_segmentation_model("plain_unet", input_shape=(64, 64, 1))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    down = [c.filters for c in convs if c.name.startswith("down")]
    up = [c.filters for c in convs if c.name.startswith("up")]
    assert down == [16, 16, 32, 32, 64, 64, 128, 128, 128, 128]
    assert [c.filters for c in convs if c.name.startswith("bottleneck")] == [128, 128]
    assert up == [128, 128, 128, 128, 64, 64, 32, 32, 16, 16]
    assert all(c.kernel_size == (3, 3) for c in convs[:-1])
    head = convs[-1]
    assert head.kernel_size == (1, 1) and head.activation.__name__ == "sigmoid"
    count = lambda cls: sum(isinstance(layer, cls) for layer in model.layers)  # noqa: E731
    assert count(keras.layers.MaxPooling2D) == 5
    assert count(keras.layers.UpSampling2D) == 5
    assert count(keras.layers.Concatenate) == 5
    assert model.output_shape == (None, 64, 64, 1)
    frozen = build_plain_unet((32, 32, 1), filters=(4, 8))
    assert frozen.output_shape == (None, 32, 32, 1)


def test_plain_unet_encoder_freeze_and_softmax():
    model = build_segmentation_model("plain_unet", classes=3, activation="softmax",
                                     input_shape=(32, 32, 1), encoder_freeze=True,
                                     filters=(4, 8))
    assert not model.get_layer("down0_conv1").trainable
    assert model.get_layer("up0_conv1").trainable
    assert model.get_layer("mask").activation.__name__ == "softmax"


def test_configuration_errors():
    with pytest.raises(ConfigError) as err:
        build_segmentation_model("unet", backbone="resnet19", input_shape=(64, 64, 3))
    assert "resnet19" in str(err.value)
    assert all(name in str(err.value) for name in ("resnet18", "efficientnetb7", "mobilenetv2"))
    assert "efficientnetb0" in backbone_names()
    with pytest.raises(ConfigError, match="48"):
        build_segmentation_model("pspnet", backbone="resnet18", input_shape=(64, 64, 3))
    with pytest.raises(ConfigError, match="32"):
        build_segmentation_model("unet", backbone="resnet18", input_shape=(50, 50, 3))
    with pytest.raises(ConfigError, match="plain_unet"):
        build_segmentation_model("deeplab")
    with pytest.raises(ConfigError, match="75x75"):
        build_segmentation_model("unet", backbone="inceptionv3", input_shape=(64, 64, 3))
    with pytest.raises(ConfigError, match="pretrained"):
        build_segmentation_model("plain_unet", input_shape=(64, 64, 1), encoder_weights="imagenet")
    with pytest.raises(ConfigError, match="bce_dice"):
        get_loss("hinge")


def test_the_registry_names_what_segmentation_models_and_the_factories_know():
    import segmentation_models as sm

    from cococxr.models import registry
    from cococxr.models import segmentation as S

    assert list(registry.BACKBONES) == list(sm.Backbones.models_names())
    assert set(registry.LOSSES) == set(S.LOSSES) and set(registry.OPTIMIZERS) == set(S.OPTIMIZERS)
    for entry in registry.ARCHITECTURES.values():
        assert entry.factory() is getattr(S, f"make_{entry.name}")
    assert not registry.get_architecture("plain_unet").uses_backbone


def test_build_segmentation_model_dispatches_through_the_registry():
    from cococxr.models import registry

    calls = []

    def tiny(backbone, input_shape, classes, activation, encoder_weights, encoder_freeze, **kwargs):
        calls.append((backbone, input_shape, classes, activation, encoder_weights, encoder_freeze, kwargs))
        return build_plain_unet(input_shape, classes, activation, filters=(4,))

    registry.register_architecture("tiny_test_net", f"{__name__}:_TINY", uses_backbone=False)
    globals()["_TINY"] = tiny
    try:
        model = build_segmentation_model("TINY_test_net", backbone="not-a-backbone", classes=2,
                                         input_shape=(32, 32, 1), filters=(4,))
    finally:
        del registry.ARCHITECTURES["tiny_test_net"]
    assert model.output_shape == (None, 32, 32, 2)
    assert calls == [("not-a-backbone", (32, 32, 1), 2, "sigmoid", None, False, {"filters": (4,)})]


def test_get_metrics_names():
    assert [m.__name__ for m in get_metrics(1)] == ["iou_score", "f1-score"]
    names = [m.__name__ for m in get_metrics(["left lung", "heart"])]
    assert names == ["iou_score", "f1-score", "iou_left_lung", "f1_left_lung",
                     "iou_heart", "f1_heart"]
    assert all(m.threshold == 0.5 for m in get_metrics(2))


def _offline(*args, **kwargs):
    raise OSError("network is unreachable (simulated)")


def test_imagenet_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(socket, "create_connection", _offline)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as err:
        build_segmentation_model("unet", backbone="resnet18", input_shape=(64, 64, 3),
                                 encoder_weights="imagenet")
    assert time.monotonic() - start < 5
    assert "None" in str(err.value) and ".h5" in str(err.value)


def test_imagenet_probe_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    if W.host_reachable("github.com"):
        pytest.skip("github.com is reachable: this machine is online")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="weights=None"):
        W.resolve_weights("imagenet", "resnet18")
    assert time.monotonic() - start < 5


def test_resolve_weights_cache_and_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(socket, "create_connection", _offline)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "resnet18_imagenet_1000_no_top.h5").write_bytes(b"")
    assert W.resolve_weights("imagenet", "resnet18", cache_hint="resnet18") == "imagenet"
    assert W.resolve_weights(None, "x") is None
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        W.resolve_weights(tmp_path / "missing.h5", "x")
    with pytest.raises(ConfigError):
        W.resolve_weights("noisy-student", "x")


def test_encoder_weights_from_h5_file(tmp_path):
    source = build_segmentation_model("unet", backbone="mobilenetv2", input_shape=(64, 64, 3),
                                      **SMALL_DECODER)
    path = tmp_path / "encoder.h5"
    source.save_weights(path)
    loaded = build_segmentation_model("unet", backbone="mobilenetv2", input_shape=(64, 64, 3),
                                      encoder_weights=path, **SMALL_DECODER)
    for name in ("Conv1", "block_16_project", "decoder_stage0a_conv"):
        for a, b in zip(source.get_layer(name).get_weights(), loaded.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    plain = build_plain_unet((64, 64, 1), filters=(4, 8))
    with pytest.raises(ConfigError, match="no layer"):
        W.load_weights_file(plain, path)


def test_grayscale_transfer_from_rgb_twin():
    rgb = build_segmentation_model("unet", backbone="resnet18", input_shape=(64, 64, 3),
                                   **SMALL_DECODER)
    gray = build_segmentation_model("unet", backbone="resnet18", input_shape=(64, 64, 1),
                                    **SMALL_DECODER)
    assert transfer_weights(rgb, gray) == sum(bool(layer.weights) for layer in gray.layers)
    kernel = rgb.get_layer("conv0").get_weights()[0]
    np.testing.assert_allclose(gray.get_layer("conv0").get_weights()[0],
                               kernel.sum(axis=2, keepdims=True), rtol=1e-5)
    rgb.get_layer("bn_data").set_weights([np.array([1.0, 2.0, 6.0])] * 3)
    transfer_weights(rgb, gray)
    np.testing.assert_allclose(gray.get_layer("bn_data").get_weights()[0], [3.0])
    kernel3 = np.ones((3, 3, 3, 2))
    np.testing.assert_allclose(adapt_input_kernel(kernel3, 2), np.full((3, 3, 2, 2), 1.5))


@model_io.register_custom_object
class Scale(keras.layers.Layer):
    """A trivial custom layer to check the registry round trip."""

    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _small_model():
    inputs = keras.Input((32, 32, 1))
    x = Scale(0.5, name="scale")(inputs)
    x = build_plain_unet((32, 32, 1), classes=2, filters=(4, 8))(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_save_load_round_trip(tmp_path, suffix):
    model = _small_model()
    x, y = _data(32, 1, 2)
    _train_two_steps(model, x, y, loss="dice", lr=1e-3, classes=["lung", "heart"])
    path = model_io.save_model(model, tmp_path / f"model{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"model{suffix}"]  # no temp left
    loaded = model_io.load_model(path)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(),
                                  model(x, training=False).numpy())
    assert loaded.get_layer("scale").factor == 0.5
    assert model_io.get_compile_spec(loaded) == model_io.get_compile_spec(model)
    loaded.run_eagerly = True
    history = loaded.fit(x, y, batch_size=2, epochs=1, verbose=0, workers=1).history
    assert np.isfinite(history["loss"][0]) and "iou_heart" in history
    model_io.save_model(loaded, path)  # overwrite in place
    assert model_io.load_model(path, compile=False).optimizer is None


def test_save_model_rejects_other_suffixes(tmp_path):
    with pytest.raises(ConfigError, match=".keras"):
        model_io.save_model(build_plain_unet((32, 32, 1), filters=(4,)), tmp_path / "m.pb")
    with pytest.raises(ConfigError, match="absent.h5 does not exist"):
        model_io.load_model(tmp_path / "absent.h5")
