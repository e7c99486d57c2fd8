"""Mask R-CNN baseline (torchvision backend): targets, training steps, evaluation, checkpoints, errors.

Tests that need torch skip with the install hint when the ``baseline`` extra is missing;
the label map, config checks, scoring and missing-dependency errors run without it.
"""
from __future__ import annotations

import csv
import json
import math
import sys

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from cococxr.errors import ConfigError, MissingDependencyError
from cococxr.pipelines.maskrcnn.labels import LabelMap
from helpers import SAMPLE, tiny_coco

pytestmark = pytest.mark.torch
TORCH_REASON = "torch/torchvision not installed: pip install 'cococxr[baseline]'"


@pytest.fixture(scope="module")
def torch():
    """torch, imported the way the pipeline imports it (shielded from TensorFlow), or skip."""
    from cococxr.pipelines.maskrcnn.model import shield_from_tensorflow

    shield_from_tensorflow()
    pytest.importorskip("torchvision", reason=TORCH_REASON)
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared CI core: one thread wastes no time waiting on another
    yield torch
    torch.set_num_threads(threads)


def _coco_dict():
    """One real sample image: an RLE lung, a polygon 'heart', a crowd, an empty RLE and a label."""
    from cococxr.io import read_image, read_mask
    from cococxr.rle import coco_rle_encode, rle_area, rle_bbox

    stem = "00870a9c"
    height, width = read_image(SAMPLE / "images" / f"{stem}.png").shape[:2]
    lung = coco_rle_encode(read_mask(SAMPLE / "masks" / f"{stem}.png") > 0)
    empty = coco_rle_encode(np.zeros((height, width), np.uint8))
    triangle = [[30.0, 40.5, 120.0, 60.0, 70.0, 150.0]]
    tri_rle = mask_utils.frPyObjects(triangle, height, width)[0]

    def geometry(ann_id, cat, segm, area, bbox, crowd=0):
        return {"id": ann_id, "image_id": 1, "category_id": cat, "segmentation": segm, "area": area,
                "bbox": bbox, "iscrowd": crowd}

    return {
        "info": {"image_root": str(SAMPLE / "images")},
        "images": [{"id": 1, "file_name": f"{stem}.png", "height": height, "width": width}],
        "categories": [{"id": 7, "name": "heart", "supercategory": "anatomy"},
                       {"id": 3, "name": "lung", "supercategory": "anatomy"},
                       {"id": 9, "name": "COVID-19", "supercategory": "finding"}],
        "annotations": [
            geometry(1, 3, lung, rle_area(lung), rle_bbox(lung)),
            geometry(2, 7, triangle, float(mask_utils.area(tri_rle)), mask_utils.toBbox(tri_rle).tolist()),
            geometry(3, 3, lung, rle_area(lung), rle_bbox(lung), crowd=1),
            geometry(4, 7, empty, 0, [0.0, 0.0, 0.0, 0.0]),
            {"id": 5, "image_id": 1, "category_id": 9, "iscrowd": 0, "area": 0},
        ],
    }


# ---------------------------------------------------------------- no torch needed
def test_label_map_orders_mask_categories_by_id():
    from cococxr.coco import CocoDataset

    label_map = LabelMap.from_coco(CocoDataset(_coco_dict()))
    assert label_map.names == ("lung", "heart") and label_map.category_ids == (3, 7)
    assert [label_map.label(c) for c in (3, 7, 9)] == [1, 2, 0]  # the finding has no masks
    assert label_map.category_id(2) == 7
    assert LabelMap.from_dict(json.loads(json.dumps(label_map.to_dict()))) == label_map
    with pytest.raises(ConfigError, match="label 3 is outside 1..2"):
        label_map.category_id(3)


def test_config_checks_name_the_bad_value():
    from cococxr.pipelines.maskrcnn.config import MaskRCNNConfig, check_config
    from cococxr.config import load_config

    def check(**values):
        check_config(load_config(MaskRCNNConfig, {"train": "t.json", "val": "v.json", **values}))

    with pytest.raises(ConfigError, match="max_size .128. must be at least min_size .256."):
        check(max_size=128)
    with pytest.raises(ConfigError, match="not supported by the detectron2 backend"):
        check(backend="detectron2", max_train_seconds=60)
    with pytest.raises(ConfigError, match="score_threshold <= union_score_threshold"):
        check(score_threshold=0.6)
    with pytest.raises(ConfigError, match="backend='mmdet' is not one of"):
        check(backend="mmdet")


def _truth_instances(coco, label_map: LabelMap):
    from cococxr.masks import annotation_to_mask

    for image_id in coco.img_ids(cat_names=list(label_map.names)):
        img = coco.imgs[image_id]
        anns = coco.anns_for(image_id, label_map.category_ids, geometry=True)
        masks = np.stack([annotation_to_mask(a, img["height"], img["width"]) for a in anns]).astype(np.float32)
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
        yield image_id, {"boxes": boxes, "labels": np.array([label_map.label(a["category_id"]) for a in anns]),
                         "scores": np.full(len(anns), 0.99), "masks": masks}


def test_ground_truth_as_predictions_scores_ap_one(tmp_path):
    from cococxr.coco import CocoDataset
    from cococxr.pipelines.segmentation.comparison import comparison_row
    from cococxr.pipelines.maskrcnn.evaluate import score_instances

    _, val = tiny_coco(tmp_path)
    coco = CocoDataset(val)
    label_map = LabelMap.from_coco(coco)
    m = score_instances(coco, label_map, _truth_instances(coco, label_map)).metrics
    assert m["num_images"] == 3 and m["detections"] == 3 and m["segm_results"] == "instances"
    for key in ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "bbox_AP50", "bbox_AP75"):
        assert m[key] == pytest.approx(1.0), key
    assert m["per_class"]["lung"]["segm_AP"] == pytest.approx(1.0)
    assert m["per_class"]["lung"]["bbox_AP"] == pytest.approx(1.0)
    assert m["dice"] == 1.0 and m["iou"] == 1.0
    assert comparison_row({"name": "maskrcnn", **m})["segm_AP"] == pytest.approx(1.0)
    # classes are matched by name: a training file may number its categories differently
    renumbered = score_instances(coco, LabelMap((42,), ("lung",)), _truth_instances(coco, label_map))
    assert renumbered.metrics["segm_AP"] == pytest.approx(1.0)
    # below the union score threshold a mask counts for AP but not for Dice
    low = ((i, {**p, "scores": p["scores"] * 0.3}) for i, p in _truth_instances(coco, label_map))
    m = score_instances(coco, label_map, low).metrics
    assert m["segm_AP"] == pytest.approx(1.0) and m["dice"] == 0.0
    # nothing predicted scores 0
    none = ((i, {**p, "scores": p["scores"] * 0.0}) for i, p in _truth_instances(coco, label_map))
    m = score_instances(coco, label_map, none).metrics
    assert m["segm_AP"] == 0.0 and m["bbox_AP"] == 0.0 and m["dice"] == 0.0


def test_missing_torch_fails_at_once_with_the_install_hint(monkeypatch, capsys):
    from cococxr.cli import main
    from cococxr.pipelines.maskrcnn.train import train_maskrcnn
    from cococxr.pipelines.maskrcnn.evaluate import evaluate_maskrcnn

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'cococxr\[baseline\]'"):
        train_maskrcnn(train="no-such-train.json", val="no-such-val.json")  # fails before reading files
    with pytest.raises(MissingDependencyError, match=r"cococxr\[baseline\]"):
        evaluate_maskrcnn("no-such-run", "no-such-val.json")
    assert main(["train", "maskrcnn", "--train", "a.json", "--val", "b.json"]) == 2
    assert "pip install 'cococxr[baseline]'" in capsys.readouterr().err


def test_missing_detectron2_fails_at_once_with_the_install_hint(torch, monkeypatch):
    from cococxr.pipelines.maskrcnn.train import train_maskrcnn

    monkeypatch.setitem(sys.modules, "detectron2", None)
    with pytest.raises(MissingDependencyError, match=r"git\+https://github.com/facebookresearch/detectron2.git"):
        train_maskrcnn(train="no-such-train.json", val="no-such-val.json", backend="detectron2")


# ---------------------------------------------------------------- torch
def test_dataset_targets_come_from_the_masks(torch, caplog):
    from cococxr.coco import CocoDataset
    from cococxr.io import read_image
    from cococxr.pipelines.maskrcnn.data import CocoMaskRCNNDataset

    coco = CocoDataset(_coco_dict())
    label_map = LabelMap.from_coco(coco)
    with caplog.at_level("WARNING"):
        dataset = CocoMaskRCNNDataset(coco, label_map)
    assert dataset.skipped == [4] and "skipped 1 annotation(s) with an empty mask" in caplog.text
    image, target = dataset[0]
    gray = read_image(coco.image_path(1)).astype(np.float32) / 255
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, *gray.shape)
    np.testing.assert_allclose(image.numpy(), np.repeat(gray[None], 3, axis=0))
    # the RLE lung and the polygon heart; the crowd, the empty mask and the label are left out
    oracle = coco.to_pycocotools()
    expected = [oracle.annToMask(oracle.anns[i]) for i in (1, 2)]
    assert target["labels"].tolist() == [1, 2] and target["masks"].dtype == torch.uint8
    for k, mask in enumerate(expected):
        np.testing.assert_array_equal(target["masks"][k].numpy(), mask)
        x, y, w, h = mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask)))
        assert target["boxes"][k].tolist() == [x, y, x + w, y + h]
        assert target["area"][k].item() == mask.sum()
    # a flip mirrors image, masks and boxes together
    flipped_image, flipped = CocoMaskRCNNDataset(coco, label_map, hflip=1.0)[0]
    width = gray.shape[1]
    np.testing.assert_array_equal(flipped_image.numpy(), image.numpy()[:, :, ::-1])
    np.testing.assert_array_equal(flipped["masks"].numpy(), target["masks"].numpy()[:, :, ::-1])
    x1, y1, x2, y2 = target["boxes"].unbind(1)
    assert torch.equal(flipped["boxes"], torch.stack([width - x2, y1, width - x1, y2], 1))


def test_optimizer_clips_the_global_gradient_norm(torch):
    from cococxr.config import load_config
    from cococxr.pipelines.maskrcnn.common import build_optimizer
    from cococxr.pipelines.maskrcnn.config import MaskRCNNConfig

    base = {"train": "t.json", "val": "v.json"}
    model = torch.nn.Linear(4, 1, bias=False)
    assert isinstance(build_optimizer(torch, model, load_config(MaskRCNNConfig, base)), torch.optim.AdamW)
    torch.nn.init.zeros_(model.weight)
    sgd = build_optimizer(torch, model, load_config(MaskRCNNConfig, base, optimizer="sgd", lr=1.0,
                                                    weight_decay=0.0, grad_clip=1.0))
    model(torch.full((1, 4), 1000.0)).sum().backward()  # gradient norm 2000
    sgd.step()
    assert isinstance(sgd, torch.optim.SGD)
    assert torch.linalg.vector_norm(model.weight).item() == pytest.approx(1.0)


TINY = ["--min-size", "128", "--max-size", "128", "--iterations", "2", "--batch-size", "2",
        "--rois-per-image", "32", "--proposals-per-image", "50", "--detections-per-image", "5",
        "--warmup-iterations", "1", "--overlays", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def trained_run(torch, tmp_path_factory):
    """Two training iterations at 128 px through the command line."""
    from cococxr.cli import main

    folder = tmp_path_factory.mktemp("maskrcnn")
    train, val = tiny_coco(folder, n_train=4, n_val=2)
    assert main(["train", "maskrcnn", "--train", str(train), "--val", str(val), "--out",
                 str(folder / "run"), *TINY]) == 0
    return folder / "run", val


def test_two_training_iterations_stay_finite(torch, trained_run):
    from cococxr.pipelines.segmentation.comparison import read_extra_row
    from cococxr.pipelines.engine.cards import read_card
    from cococxr.pipelines.maskrcnn.model import read_checkpoint

    run_dir, _ = trained_run
    for name in ("config.json", "model.pt", "history.csv", "loss_curves.png", "metrics.json",
                 "per_image.csv", "overlays/best.png", "overlays/worst.png"):
        assert (run_dir / name).is_file(), name
    with open(run_dir / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    losses = [k for k in rows[0] if k.startswith("loss")]
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    assert all(math.isfinite(float(r[k])) for r in rows for k in losses)
    payload = read_checkpoint(run_dir / "model.pt")
    assert payload["label_map"] == {"category_ids": [1], "names": ["lung"]}
    assert all(torch.isfinite(v).all() for v in payload["state_dict"].values() if v.is_floating_point())
    assert payload["train_stats"]["iterations"] == 2 and payload["config"]["min_size"] == 128
    card = read_card(run_dir / "model.pt")
    assert card["task"] == "maskrcnn" and card["classes"] == payload["label_map"]["names"]
    assert card["input"] is None and card["details"]["min_size"] == 128
    row = read_extra_row(run_dir / "metrics.json")
    assert row["name"] == "maskrcnn-torchvision" and row["params"] > 40e6
    assert row["ms_per_image"] > 0 and row["seconds_per_epoch"] > 0
    assert 0 <= row["dice"] <= 1 and 0 <= row["segm_AP"] <= 1


def test_evaluate_command_writes_a_comparison_row(torch, trained_run, tmp_path, capsys):
    from cococxr.cli import main

    run_dir, val = trained_run
    assert main(["evaluate", "maskrcnn", str(run_dir), "--coco", str(val), "--out", str(tmp_path),
                 "--device", "cpu", "--overlays", "0"]) == 0
    assert "COCO bbox AP" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_images"] == 2 and metrics["backend"] == "torchvision"
    assert set(metrics["per_class"]["lung"]) >= {"dice", "iou", "segm_AP", "bbox_AP"}
    assert metrics["seconds_per_epoch"] > 0  # carried over from the checkpoint


def test_checkpoint_round_trip_predicts_identically(torch, tmp_path):
    from cococxr.pipelines.maskrcnn.data import read_rgb01
    from cococxr.pipelines.maskrcnn.evaluate import TorchvisionPredictor, load_predictor
    from cococxr.pipelines.maskrcnn.model import build_maskrcnn, save_checkpoint

    torch.manual_seed(0)
    label_map = LabelMap((1, 2), ("lung", "heart"))
    model = build_maskrcnn(2, 128, 128, proposals_per_image=50, detections_per_image=5).eval()
    config = {"min_size": 128, "max_size": 128, "proposals_per_image": 50, "detections_per_image": 5}
    path = save_checkpoint(tmp_path / "model.pt", model, label_map, config)
    assert not list(tmp_path.glob(".model.pt.*"))  # the temporary file was renamed
    image = read_rgb01(SAMPLE / "images" / "00870a9c.png", 256, 256)
    before = TorchvisionPredictor(model, label_map)(image)
    predictor, payload = load_predictor(path, device="cpu")
    after = predictor(image)
    assert predictor.label_map == label_map and payload["config"] == config
    assert len(before["scores"]) == 5
    for key in ("boxes", "labels", "scores", "masks"):
        np.testing.assert_array_equal(before[key], after[key])


def test_a_file_that_is_not_a_checkpoint_is_refused(torch, tmp_path):
    from cococxr.pipelines.maskrcnn.model import read_checkpoint

    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a cococxr Mask R-CNN checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")
