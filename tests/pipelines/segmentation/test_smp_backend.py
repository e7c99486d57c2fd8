"""segmentation_models_pytorch as the second training backend (``--backend smp``).

smp is trained in child processes (it cannot be imported where TensorFlow is loaded, as
in this test process); what it saves, TorchScript, is read here beside TensorFlow by the
same evaluate, predict and compare code as the tf-keras models.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cococxr.errors import ConfigError
from cococxr.models.torchscript import ProbabilityHead, load_torchscript, save_torchscript
from cococxr.pipelines.segmentation.config import SegmentationConfig, check_config
from helpers import tiny_coco

pytestmark = pytest.mark.torch
TINY = ["--input-size", "64", "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "2", "--progress", "0",
        "--overlays", "1"]


def _cococxr(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cococxr", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def smp_run(tmp_path_factory):
    if importlib.util.find_spec("segmentation_models_pytorch") is None:
        pytest.skip("segmentation_models_pytorch is not installed (baseline extra)")
    folder = tmp_path_factory.mktemp("smp")
    train, val = tiny_coco(folder)
    done = _cococxr("train", "segmentation", "--backend", "smp", "--arch", "unet", "--backbone", "resnet18",
                    "--train", train, "--val", val, "--out", folder / "run", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "run", train, val, done


def test_the_smp_run_folder_has_the_same_artifacts_and_card(smp_run):
    run, _, _, done = smp_run
    for name in ("config.json", "model.pt", "history.csv", "learning_curves.png", "metrics.json",
                 "per_image.csv", "overlays/best.png", "report.html"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    card = json.loads((run / "model.cococxr.json").read_text())
    assert card["format"] == "cococxr-model/1" and card["task"] == "segmentation"
    assert card["classes"] == ["lung"] and card["input"]["channels"] == 1
    assert card["details"] == {"arch": "unet", "backbone": "resnet18", "backend": "smp", "framework": "torch",
                               "activation": "sigmoid"}
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert len(rows) == 2 and {"loss", "val_loss", "f1-score", "val_f1-score", "iou_score", "lr"} <= set(rows[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["name"] == "smp-unet-resnet18" and metrics["backend"] == "smp" and metrics["epochs"] == 2
    best = max(float(r["val_f1-score"]) for r in rows)
    assert metrics["best_val_f1-score"] == pytest.approx(best)
    assert metrics["best_epoch"] == 1 + [float(r["val_f1-score"]) for r in rows].index(best)
    assert 11_000_000 < metrics["params"] < 20_000_000  # a ResNet-18 U-Net (14.3M), not a stub
    assert "run folder:" in done.stdout


def test_the_torchscript_model_is_scored_here_beside_tensorflow_as_in_its_run(smp_run, tmp_path):
    """Evaluate in this (TensorFlow) process gives the run's own validation metrics."""
    import tensorflow  # noqa: F401  # the point: TorchScript loads where TensorFlow is

    from cococxr.pipelines.segmentation.evaluate import evaluate_segmentation

    run, _, val, _ = smp_run
    metrics = evaluate_segmentation(run / "model.pt", str(val), out=tmp_path, overlays=0, progress=False)
    recorded = json.loads((run / "metrics.json").read_text())
    for key in ("dice", "iou", "hausdorff_95", "segm_AP", "params", "num_images"):
        assert metrics[key] == pytest.approx(recorded[key]), key
    assert 0 < metrics["dice"] <= 1


def test_predict_cli_writes_masks_from_the_smp_model(smp_run, tmp_path):
    run, _, val, _ = smp_run
    done = _cococxr("predict", "segmentation", run / "model.pt", val, "--out", tmp_path / "masks")
    assert done.returncode == 0, done.stderr[-2000:]
    masks = sorted((tmp_path / "masks").rglob("*.png"))
    assert len(masks) == 3


def test_the_lung_masker_of_classify_and_the_app_takes_the_smp_model(smp_run):
    """The TorchScript model masks lungs as the Keras one does: probabilities at the asked size."""
    from cococxr.coco import CocoDataset
    from cococxr.io import read_image
    from cococxr.pipelines.engine.segmenter import LungMasker

    run, _, val, _ = smp_run
    coco = CocoDataset(val)
    images = [read_image(coco.image_path(i)) for i in sorted(coco.imgs)]
    probs = LungMasker(run / "model.pt").mask_images(images, (40, 56))
    assert probs.shape == (len(images), 40, 56) and probs.dtype == np.float32
    assert 0 <= probs.min() and probs.max() <= 1 and probs.std() > 0


def test_compare_puts_sm_and_smp_backbones_in_one_table(tmp_path):
    """compare from this TensorFlow process: the sm row in process, the smp row in a child."""
    if importlib.util.find_spec("segmentation_models_pytorch") is None:
        pytest.skip("segmentation_models_pytorch is not installed (baseline extra)")
    from cococxr.pipelines.segmentation.compare import compare_backbones

    train, val = tiny_coco(tmp_path)
    rows = compare_backbones(dict(train=str(train), val=str(val), filters=[4, 8], input_size=64, epochs=1,
                                  steps_per_epoch=1, batch_size=2, progress=0, overlays=0, tensorboard=False),
                             ["plain_unet", "smp:resnet18"], tmp_path / "cmp")
    assert [r["name"] for r in rows] == ["plain_unet", "smp-unet-resnet18"]
    assert all(0 <= r["dice"] <= 1 and r["params"] > 0 for r in rows)
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "plain_unet" in table and "smp-unet-resnet18" in table
    assert (tmp_path / "cmp" / "smp-unet-resnet18" / "model.pt").is_file()


def test_bad_smp_settings_fail_before_training(tmp_path):
    def config(**kw):
        return SegmentationConfig(train="t.json", val="v.json", **kw)

    with pytest.raises(ConfigError, match="smp has no architecture 'plain_unet'"):
        check_config(config(backend="smp"))
    with pytest.raises(ConfigError, match="leave preprocessing unset"):
        check_config(config(backend="smp", arch="unet", preprocessing="resnet34", channels=3))
    with pytest.raises(ConfigError, match="backend sm has no architecture 'deeplabv3plus'"):
        check_config(config(arch="deeplabv3plus"))
    check_config(config(backend="smp", arch="deeplabv3plus"))
    train, val = tiny_coco(tmp_path)
    done = _cococxr("train", "segmentation", "--backend", "smp", "--arch", "unet", "--backbone", "resnet1800",
                    "--train", train, "--val", val, *TINY, cwd=tmp_path)
    assert done.returncode != 0 and "unknown smp encoder 'resnet1800'" in done.stderr
    assert "Traceback" not in done.stderr


def test_pretrained_smp_weights_offline_fail_at_once_with_the_way_out(tmp_path):
    train, val = tiny_coco(tmp_path)
    dead_proxy = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}
    done = _cococxr("train", "segmentation", "--backend", "smp", "--arch", "unet", "--backbone", "resnet18",
                    "--encoder-weights", "imagenet", "--train", train, "--val", val, *TINY, env=dead_proxy, cwd=tmp_path)
    assert done.returncode != 0, done.stdout
    assert "cannot be reached" in done.stderr and "encoder_weights None" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()


def test_smp_refuses_to_load_after_tensorflow_instead_of_crashing():
    import tensorflow  # noqa: F401

    from cococxr.models.smp_models import import_smp

    if "segmentation_models_pytorch" in sys.modules:
        pytest.skip("smp was imported into this process before TensorFlow")
    with pytest.raises(ConfigError, match="in its own process"):
        import_smp()


def test_a_saved_torchscript_model_predicts_probabilities_in_the_keras_layout(tmp_path):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 2, 3, padding=1)
    images = np.random.default_rng(0).random((2, 16, 16, 3), np.float32)
    path = save_torchscript(conv, tmp_path / "m.pt", images[:1])
    model = load_torchscript(path)
    expected = torch.sigmoid(conv(torch.from_numpy(images).permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
    np.testing.assert_allclose(model.predict_on_batch(images), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert model.input_shape == (None, 16, 16, 3) and model.output_shape == (None, 16, 16, 2)
    assert model.count_params() == 3 * 2 * 9 + 2
    softmax = ProbabilityHead(conv, "softmax")(torch.from_numpy(images)).detach().numpy()
    np.testing.assert_allclose(softmax.sum(axis=-1), 1.0, rtol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary left
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="bad.pt: not a TorchScript"):
        load_torchscript(tmp_path / "bad.pt")


def test_epoch_overlap_scores_are_dice_and_iou_of_the_thresholded_masks():
    from cococxr.pipelines.segmentation.train_smp import OverlapCounts

    truth = torch.zeros(1, 2, 4, 4)
    truth[0, 0, :2] = 1  # class 0: 8 pixels
    logits = torch.full((1, 2, 4, 4), -5.0)
    logits[0, 0, :1] = 5  # predicts 4 of them
    logits[0, 0, 3, 0] = 5  # and one false positive; class 1 empty in both
    counts = OverlapCounts(2)
    counts.add(logits, truth)
    scores = counts.scores()
    assert scores["f1-score"] == pytest.approx((2 * 4 / (2 * 4 + 1 + 4) + 1) / 2)
    assert scores["iou_score"] == pytest.approx((4 / (4 + 1 + 4) + 1) / 2)
