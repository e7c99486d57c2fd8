"""Mask R-CNN baseline, detectron2 backend: config, training steps, COCOEvaluator, checkpoints.

detectron2 is not on PyPI: these tests skip (with the reason printed by ``-ra``) unless
``import detectron2`` works. The missing-detectron2 error is tested in test_maskrcnn.py.
"""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from helpers import SAMPLE, tiny_coco

pytestmark = pytest.mark.torch
REASON = ("detectron2 is not installed (not on PyPI): pip install --no-build-isolation "
          "'git+https://github.com/facebookresearch/detectron2.git' after torch")


@pytest.fixture(scope="module")
def detectron2():
    """detectron2, imported as the pipeline imports it (shielded from TensorFlow), or skip."""
    from cococxr.pipelines.maskrcnn.model import shield_from_tensorflow

    shield_from_tensorflow()
    torch = pytest.importorskip("torch", reason="torch is not installed: pip install 'cococxr[baseline]'")
    module = pytest.importorskip("detectron2", reason=REASON)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared CI core: one thread wastes no time waiting on another
    yield module
    torch.set_num_threads(threads)


def _settings(**overrides) -> dict:
    from cococxr.config import config_to_dict, load_config
    from cococxr.pipelines.maskrcnn.config import MaskRCNNConfig

    return config_to_dict(load_config(MaskRCNNConfig, {"train": "t.json", "val": "v.json", **overrides}))


def test_config_is_the_r50_fpn_mask_rcnn_of_the_torchvision_backend(detectron2):
    from detectron2.modeling import build_model

    from cococxr.pipelines.maskrcnn.detectron2 import build_cfg
    from cococxr.pipelines.maskrcnn.model import build_maskrcnn, count_parameters

    cfg = build_cfg(_settings(min_size=128, max_size=160), 2)
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN" and cfg.MODEL.MASK_ON
    assert cfg.MODEL.RESNETS.DEPTH == 50 and cfg.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone"
    assert cfg.MODEL.RPN.IN_FEATURES == ["p2", "p3", "p4", "p5", "p6"]
    assert cfg.MODEL.ROI_HEADS.IN_FEATURES == ["p2", "p3", "p4", "p5"]
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 2 and cfg.MODEL.WEIGHTS == ""
    assert cfg.INPUT.MASK_FORMAT == "bitmask" and cfg.INPUT.MIN_SIZE_TRAIN == (128,)
    assert cfg.INPUT.MAX_SIZE_TEST == 160 and cfg.MODEL.BACKBONE.FREEZE_AT == 0
    # the same network as torchvision's, give or take implementation details
    d2 = count_parameters(build_model(cfg))
    tv = count_parameters(build_maskrcnn(2))
    assert abs(d2 - tv) / tv < 0.01, (d2, tv)


@pytest.fixture(scope="module")
def trained_run(detectron2, tmp_path_factory):
    """Two detectron2 training iterations at 128 px through the command line."""
    from cococxr.cli import main

    folder = tmp_path_factory.mktemp("maskrcnn-d2")
    train, val = tiny_coco(folder, n_train=4, n_val=2)
    assert main(["train", "maskrcnn", "--backend", "detectron2", "--train", str(train), "--val", str(val),
                 "--out", str(folder / "run"), "--min-size", "128", "--max-size", "128", "--iterations", "2",
                 "--batch-size", "2", "--rois-per-image", "32", "--proposals-per-image", "50",
                 "--detections-per-image", "5", "--warmup-iterations", "1", "--overlays", "1",
                 "--device", "cpu", "--no-progress"]) == 0
    return folder / "run", val


def test_two_training_iterations_stay_finite_and_both_evaluations_agree(detectron2, trained_run):
    import torch

    from cococxr.pipelines.segmentation.comparison import read_extra_row
    from cococxr.pipelines.maskrcnn.model import read_checkpoint

    run_dir, _ = trained_run
    for name in ("config.json", "model.pt", "history.csv", "loss_curves.png", "metrics.json",
                 "overlays/best.png", "detectron2/train.json", "detectron2/val.json", "detectron2/model_final.pth"):
        assert (run_dir / name).is_file(), name
    with open(run_dir / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    losses = [k for k in rows[0] if k.startswith("loss")]
    assert {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    assert all(math.isfinite(float(r[k])) for r in rows for k in losses)
    payload = read_checkpoint(run_dir / "model.pt")
    assert payload["backend"] == "detectron2" and payload["label_map"]["names"] == ["lung"]
    assert all(torch.isfinite(v).all() for v in payload["state_dict"].values() if v.is_floating_point())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    evaluator = metrics["detectron2_evaluator"]
    assert set(evaluator) == {"bbox", "segm"} and 0 <= evaluator["segm"]["AP"] <= 1
    # COCOEvaluator and cococxr's evaluation score the same detections
    assert metrics["segm_AP"] == pytest.approx(evaluator["segm"]["AP"], abs=0.02)
    assert metrics["bbox_AP"] == pytest.approx(evaluator["bbox"]["AP"], abs=0.02)
    row = read_extra_row(run_dir / "metrics.json")
    assert row["name"] == "maskrcnn-detectron2" and row["params"] > 40e6 and row["ms_per_image"] > 0


def test_checkpoint_round_trip_predicts_identically(detectron2, trained_run, tmp_path):
    from cococxr.pipelines.maskrcnn.data import read_rgb01
    from cococxr.pipelines.maskrcnn.evaluate import load_predictor
    from cococxr.pipelines.maskrcnn.model import read_checkpoint, save_checkpoint
    from cococxr.pipelines.maskrcnn.labels import LabelMap

    run_dir, _ = trained_run
    first, payload = load_predictor(run_dir, device="cpu")
    copy = save_checkpoint(tmp_path / "model.pt", first.model, first.label_map, payload["config"],
                           backend="detectron2")
    second, _ = load_predictor(copy, device="cpu")
    assert second.backend == "detectron2" and second.label_map == LabelMap((1,), ("lung",))
    assert read_checkpoint(copy)["config"] == payload["config"]
    image = read_rgb01(SAMPLE / "images" / "00870a9c.png", 256, 256)
    before, after = first(image), second(image)
    for key in ("boxes", "labels", "scores", "masks"):
        np.testing.assert_array_equal(before[key], after[key])


def test_evaluate_command_on_a_detectron2_run(detectron2, trained_run, tmp_path):
    from cococxr.cli import main

    run_dir, val = trained_run
    assert main(["evaluate", "maskrcnn", str(run_dir), "--coco", str(val), "--out", str(tmp_path),
                 "--device", "cpu", "--overlays", "0"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["backend"] == "detectron2" and metrics["num_images"] == 2
    assert "detectron2_evaluator" not in metrics  # those figures belong to the training run's validation
    assert metrics["segm_AP"] == pytest.approx(json.loads((run_dir / "metrics.json").read_text())["segm_AP"])
