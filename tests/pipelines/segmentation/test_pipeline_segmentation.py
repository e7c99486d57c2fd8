"""Segmentation pipeline: config schema, training run folder, evaluation core, predict, compare."""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from cococxr.errors import ConfigError
from cococxr.config import add_config_arguments, config_from_args, load_config
from cococxr.pipelines.segmentation.config import SegmentationConfig
from helpers import SAMPLE, tiny_coco

TINY = dict(arch="plain_unet", filters=[4, 8], input_size=64, epochs=1, steps_per_epoch=2, batch_size=2,
            progress=0, overlays=2)


def _parse(argv: list[str]) -> SegmentationConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, SegmentationConfig)
    return config_from_args(SegmentationConfig, parser.parse_args(argv))


# ---------------------------------------------------------------- config (no TensorFlow)
def test_config_file_and_flags_resolve_to_the_same_config(tmp_path):
    (tmp_path / "cfg.yaml").write_text(
        "train: t.json\nval: v.json\nbackbone: resnet34\ninput-size: 128\nlr: 1e-4\n"
        "classes: [lung, heart]\naugment: none\ntensorboard: false\nfilters: [4, 8]\n")
    from_file = _parse(["--config", str(tmp_path / "cfg.yaml")])
    from_flags = _parse(["--train", "t.json", "--val", "v.json", "--backbone", "resnet34",
                         "--input-size", "128", "--lr", "1e-4", "--classes", "lung,heart",
                         "--augment", "none", "--no-tensorboard", "--filters", "4,8"])
    assert from_file == from_flags
    assert from_file.lr == 1e-4 and from_file.classes == ["lung", "heart"] and from_file.augment is None
    assert from_file.filters == [4, 8]
    # flags override the file; the saved config reads back identically
    assert _parse(["--config", str(tmp_path / "cfg.yaml"), "--input-size", "64"]).input_size == 64
    from cococxr.config import save_config

    save_config(from_file, tmp_path / "config.json")
    assert load_config(SegmentationConfig, tmp_path / "config.json") == from_file


def test_unknown_or_bad_config_keys_raise_config_error(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"train": "t", "val": "v", "lerning_rate": 1, "bogus": 2}))
    with pytest.raises(ConfigError, match="lerning_rate.*bogus"):
        load_config(SegmentationConfig, tmp_path / "cfg.json")
    with pytest.raises(ConfigError, match="epochs: expected an integer"):
        load_config(SegmentationConfig, {"train": "t", "val": "v", "epochs": "many"})
    with pytest.raises(ConfigError, match="arch='vnet' is not one of"):
        load_config(SegmentationConfig, {"train": "t", "val": "v", "arch": "vnet"})
    with pytest.raises(ConfigError, match="missing required.*val"):
        load_config(SegmentationConfig, {"train": "t"})


# ---------------------------------------------------------------- evaluation core
def _truth_masks(coco, classes):
    from cococxr.masks import annotations_to_channels

    cat_ids = [coco.cat_id(c) for c in classes]
    for image_id in coco.img_ids(cat_names=classes):
        img = coco.imgs[image_id]
        yield image_id, annotations_to_channels(coco.anns_for(image_id, cat_ids), img["height"],
                                                img["width"], cat_ids)


def test_perfect_predictions_score_dice_one(tmp_path):
    from cococxr.coco import CocoDataset
    from cococxr.pipelines.engine.evaluation import score_predictions

    _, val = tiny_coco(tmp_path)
    coco = CocoDataset(val)
    result = score_predictions(coco, ["lung"], _truth_masks(coco, ["lung"]))
    m = result.metrics
    assert m["num_images"] == 3 and m["dice"] == 1.0 and m["iou"] == 1.0 and m["hausdorff_95"] == 0.0
    assert m["segm_AP"] == pytest.approx(1.0) and m["per_class"]["lung"]["segm_AP"] == pytest.approx(1.0)
    # an all-empty prediction scores 0
    empty = ((i, np.zeros_like(t)) for i, t in _truth_masks(coco, ["lung"]))
    assert score_predictions(coco, ["lung"], empty).metrics["dice"] == 0.0


def test_ground_truth_with_instances_is_scored_per_component():
    """Two lungs, each its own annotation: a perfect semantic prediction scores AP 1 only
    when its mask is split into components (the default for such ground truth); one union
    mask overlaps each lung by about half (IoU 0.47-0.53) and matches none at IoU 0.75."""
    from cococxr.coco import CocoBuilder
    from cococxr.rle import coco_rle_encode
    from cococxr.pipelines.engine.evaluation import score_predictions

    builder = CocoBuilder()
    lung = builder.add_category("lung", "anatomy")
    masks = []
    for n in range(3):
        left, right = np.zeros((40, 50), np.uint8), np.zeros((40, 50), np.uint8)
        left[5:35, 4:20 + n], right[5:35, 28:46] = 1, 1
        image_id = builder.add_image(f"{n}.png", 40, 50)
        for part in (left, right):
            builder.add_annotation(image_id, lung, coco_rle_encode(part))
        masks.append((image_id, (left | right)[..., None].astype(np.float32)))
    coco = builder.build(".")
    auto = score_predictions(coco, ["lung"], iter(masks)).metrics
    assert auto["segm_results"] == "components" and auto["segm_AP"] == pytest.approx(1.0)
    union = score_predictions(coco, ["lung"], iter(masks), instances=False).metrics
    assert union["segm_results"] == "masks" and union["segm_AP75"] == 0.0 and union["segm_AP"] < 0.1
    assert union["dice"] == auto["dice"] == 1.0  # Dice does not depend on the results' form


def test_uw_madison_score_groups_case_day_volumes():
    from cococxr.coco import CocoBuilder
    from cococxr.masks import mask_to_annotations
    from cococxr.pipelines.engine.evaluation import score_predictions

    builder = CocoBuilder()
    cat = builder.add_category("stomach", "anatomy")
    truths = []
    for case, day, sl in [(1, 1, 2), (1, 1, 1), (2, 3, 1)]:
        mask = np.zeros((16, 16), np.uint8)
        mask[4:9, 3 + sl:10] = 1
        image_id = builder.add_image(f"case{case}_day{day}_slice{sl}.png", 16, 16, case=case, day=day, slice=sl)
        for ann in mask_to_annotations(mask, cat, image_id):
            builder.add_annotation(image_id, cat, ann["segmentation"])
        truths.append((image_id, mask))
    coco = builder.build()
    metrics = score_predictions(coco, ["stomach"], truths, metric="uw-madison").metrics
    assert metrics["uw_madison"] == {"dice": 1.0, "hausdorff": 0.0, "score": 1.0, "n_volumes": 2}


# ---------------------------------------------------------------- training run (TensorFlow)
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from cococxr.pipelines.segmentation.train import train_segmentation

    folder = tmp_path_factory.mktemp("seg")
    train, val = tiny_coco(folder)
    result = train_segmentation(train=str(train), val=str(val), out=str(folder / "run"), **TINY)
    return result, train, val


def test_training_writes_every_run_artifact(trained_run):
    result, _, _ = trained_run
    run = __import__("pathlib").Path(result["run_dir"])
    for name in ("config.json", "model.h5", "history.csv", "learning_curves.png", "metrics.json",
                 "per_image.csv", "overlays/best.png", "overlays/worst.png", "report.html"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    if importlib.util.find_spec("tensorboard"):
        assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result["metrics"]))
    assert metrics["name"] == "plain_unet" and metrics["classes"] == ["lung"] and metrics["num_images"] == 3
    for key in ("dice", "iou", "segm_AP", "segm_AP50", "segm_AP75"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["hausdorff_95"] >= 0 and metrics["params"] > 100
    assert metrics["epochs"] == 1 and metrics["best_epoch"] == 1 and metrics["replicas"] == 1
    assert metrics["seconds_per_epoch"] > 0 and metrics["ms_per_image"] > 0
    assert metrics["resolution"] == "original" and metrics["stopped_by_budget"] is False
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "val_loss" in history[0] and "epoch_seconds" in history[0]
    saved = load_config(SegmentationConfig, run / "config.json")
    assert saved.classes == ["lung"] and saved.input_size == 64


def test_the_model_card_names_the_model_and_runs_of_earlier_versions_still_load(trained_run, tmp_path):
    import shutil

    from cococxr.pipelines.segmentation.evaluate import evaluate_segmentation

    result, _, val = trained_run
    model = Path(result["model"])
    card = json.loads((model.parent / "model.cococxr.json").read_text())
    assert card["format"] == "cococxr-model/1" and card["task"] == "segmentation" and card["classes"] == ["lung"]
    assert card["input"] == {"input_size": [64, 64], "channels": 1, "equalize": "hist", "preprocessing": None}
    assert card["details"]["arch"] == "plain_unet"
    # two models share a folder, each read through its own card
    shared = tmp_path / "models"
    shared.mkdir()
    for stem, name in (("a", "lung"), ("b", "left lung")):
        shutil.copy(model, shared / f"{stem}.h5")
        (shared / f"{stem}.cococxr.json").write_text(json.dumps({**card, "classes": [name]}))
    assert evaluate_segmentation(shared / "a.h5", str(val), progress=False)["classes"] == ["lung"]
    with pytest.raises(ConfigError, match="no category named 'left lung'"):
        evaluate_segmentation(shared / "b.h5", str(val), progress=False)  # b's card names another class
    # a run folder of an earlier version: config.json beside the model, no card
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(model, legacy / "model.h5")
    shutil.copy(model.parent / "config.json", legacy / "config.json")
    metrics = evaluate_segmentation(legacy / "model.h5", str(val), progress=False)
    assert metrics["classes"] == ["lung"] and metrics["dice"] == pytest.approx(result["metrics"]["dice"])


def test_evaluate_cli_writes_metrics_and_overlays(trained_run, tmp_path, capsys):
    from cococxr.cli import main

    result, _, val = trained_run
    assert main(["evaluate", "segmentation", result["model"], "--coco", str(val),
                 "--out", str(tmp_path / "eval"), "--overlays", "1"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["dice"] == pytest.approx(result["metrics"]["dice"])
    assert (tmp_path / "eval" / "overlays" / "worst.png").is_file()
    assert "COCO segm AP" in capsys.readouterr().out


def test_evaluate_tta_postprocess_groups_and_qc(trained_run, tmp_path, capsys):
    from cococxr.cli import main
    from cococxr.coco import CocoDataset

    result, _, val = trained_run
    data = json.loads(Path(val).read_text())
    for n, record in enumerate(data["images"]):
        record["view"] = ("PA", "AP")[n % 2]
    grouped = tmp_path / "grouped.json"
    grouped.write_text(json.dumps(data))
    out = tmp_path / "eval"
    assert main(["evaluate", "segmentation", result["model"], "--coco", str(grouped), "--image-root",
                 str(CocoDataset(val).image_root), "--out", str(out), "--flip-tta", "--postprocess"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["flip_tta"] is True and metrics["postprocess"] is True
    views = metrics["per_group"]["view"]
    assert set(views) == {"PA", "AP"} and sum(v["images"] for v in views.values()) == metrics["num_images"]
    printed = capsys.readouterr().out
    assert "Dice by view: AP" in printed and "QC:" in printed
    for row in metrics["qc"]:  # every flagged image has a reason and an overlay
        assert row["reasons"] and (out / "qc" / f"{Path(row['file_name']).stem}.png").is_file()


def test_predict_writes_masks_and_coco(trained_run, tmp_path):
    from pycocotools.coco import COCO

    from cococxr.cli import main
    from cococxr.io import read_image, read_mask

    result, _, val = trained_run
    images = tmp_path / "in" / "sub"
    images.mkdir(parents=True)
    names = sorted(p.name for p in (SAMPLE / "images").glob("*.png"))[:3]
    for name in names:
        (images / name).write_bytes((SAMPLE / "images" / name).read_bytes())
    out = tmp_path / "masks"
    assert main(["predict", "segmentation", result["model"], str(tmp_path / "in"), "--recursive",
                 "--out", str(out), "--coco-out", str(tmp_path / "pred.json")]) == 0
    for name in names:
        mask = read_mask(out / name)
        assert mask.shape == read_image(images / name).shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
    coco = COCO(str(tmp_path / "pred.json"))
    assert sorted(img["file_name"] for img in coco.dataset["images"]) == names
    # a COCO input gives a results list referring to its image ids
    assert main(["predict", "segmentation", result["model"], str(val), "--format", "label",
                 "--out", str(tmp_path / "labels"), "--coco-out", str(tmp_path / "results.json")]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert isinstance(results, list) and all({"image_id", "score", "segmentation"} <= set(r) for r in results)
    assert len(list((tmp_path / "labels").glob("*.png"))) == 3
    # --instances: the same pixels, one result per connected component
    assert main(["predict", "segmentation", result["model"], str(val), "--format", "none",
                 "--coco-out", str(tmp_path / "parts.json"), "--instances"]) == 0
    parts = json.loads((tmp_path / "parts.json").read_text())
    assert len(parts) >= len(results)
    for whole in results:
        mine = [p for p in parts if (p["image_id"], p["category_id"]) == (whole["image_id"], whole["category_id"])]
        union = np.any([mask_utils.decode(p["segmentation"]) for p in mine], axis=0)
        np.testing.assert_array_equal(union, mask_utils.decode(whole["segmentation"]))
        assert len(mine) == cv2.connectedComponents(mask_utils.decode(whole["segmentation"]), connectivity=8)[0] - 1
        for p in mine:  # each part is one 8-connected piece
            assert cv2.connectedComponents(mask_utils.decode(p["segmentation"]), connectivity=8)[0] == 2


def test_wall_clock_budget_stops_training():
    from cococxr._tf import keras
    from cococxr.pipelines.engine.callbacks import EpochTimer, WallClockBudget

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    budget, timer = WallClockBudget(0.0), EpochTimer()
    history = model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, epochs=5, verbose=0,
                        validation_data=(np.zeros((2, 2)), np.zeros((2, 1))), callbacks=[timer, budget])
    assert budget.stopped and len(history.history["loss"]) == 1 and "val_loss" in history.history
    assert len(timer.seconds) == 1


def test_bn_momentum_reaches_every_batchnorm_of_the_saved_model(tmp_path):
    """MobileNetV2's BatchNorms default to momentum 0.999: --bn-momentum must reach all of them."""
    from cococxr._tf import keras
    from cococxr.models.io import load_model
    from cococxr.pipelines.segmentation.train import train_segmentation

    train, val = tiny_coco(tmp_path)
    config = {**TINY, "arch": "unet", "backbone": "mobilenetv2", "input_size": 32, "steps_per_epoch": 1,
              "tensorboard": False, "overlays": 0}
    result = train_segmentation(train=str(train), val=str(val), out=str(tmp_path / "run"), bn_momentum=0.9,
                                **config)
    model = load_model(result["model"], compile=False)
    momenta = {m.momentum for m in model.submodules if isinstance(m, keras.layers.BatchNormalization)}
    assert momenta == {0.9}
    with pytest.raises(ConfigError, match=r"bn_momentum must be in \[0, 1\)"):
        train_segmentation(train=str(train), val=str(val), out=str(tmp_path / "bad"), bn_momentum=1.0, **config)


def test_compare_without_backbones_only_tabulates_existing_runs(tmp_path, capsys):
    from cococxr.cli import main

    rows = [{"name": "plain_unet", "dice": 0.92, "segm_AP": 0.75, "train_seconds": 1234.5},
            {"name": "maskrcnn-torchvision", "dice": 0.86, "segm_AP": 0.44, "ms_per_image": 737.4, "epochs": 4.76}]
    paths = []
    for row in rows:
        path = tmp_path / row["name"] / "metrics.json"
        path.parent.mkdir()
        path.write_text(json.dumps(row))
        paths.append(str(path))
    assert main(["compare", "--extra-rows", *paths, "--out", str(tmp_path / "table")]) == 0
    table = (tmp_path / "table" / "comparison.md").read_text()
    assert table in capsys.readouterr().out
    lines = table.splitlines()
    assert lines[2].startswith("| plain_unet |") and "| 1234 |" in lines[2] and "0.9200" in lines[2]
    assert lines[3].startswith("| maskrcnn-torchvision |") and "| 737.4 |" in lines[3]
    assert lines[3].endswith("| 4.76 |")
    assert main(["compare"]) == 2
    assert "--backbones to train, or --extra-rows" in capsys.readouterr().err


def test_compare_tables_with_extra_rows(trained_run, tmp_path):
    from cococxr.pipelines.segmentation.compare import compare_backbones
    from cococxr.pipelines.segmentation.comparison import ROW_KEYS

    result, train, val = trained_run
    extra = tmp_path / "maskrcnn" / "metrics.json"
    extra.parent.mkdir()
    extra.write_text(json.dumps({"name": "maskrcnn-r50", "params": 43_000_000, "dice": 0.9, "segm_AP": 0.7,
                                 "unrelated": 1}))
    config = {**TINY, "train": str(train), "val": str(val), "steps_per_epoch": 1, "tensorboard": False}
    rows = compare_backbones(config, ["plain_unet"], tmp_path / "cmp", [extra])
    assert [r["name"] for r in rows] == ["plain_unet", "maskrcnn-r50"]
    assert set(rows[0]) == set(ROW_KEYS) and rows[0]["dice"] is not None
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| model | params | s/epoch | train s | ms/image | Dice | IoU | AP |" in table and "maskrcnn-r50" in table
    csv_lines = (tmp_path / "cmp" / "comparison.csv").read_text().splitlines()
    assert csv_lines[0] == ",".join(ROW_KEYS) and len(csv_lines) == 3
    with pytest.raises(ConfigError, match="needs a 'name'"):
        extra.write_text("{}")
        compare_backbones(config, ["plain_unet"], tmp_path / "cmp2", [extra])
