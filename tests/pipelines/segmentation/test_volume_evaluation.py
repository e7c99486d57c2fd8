"""evaluate segmentation on volume slices: Dice per volume in 3-D and HD95 in millimetres."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from cococxr.converters.nifti import convert_nifti
from cococxr.rle import coco_rle_decode
from cococxr.volumes.layout import SliceLayout

from helpers import las_affine, save_nifti, synthetic_case


@pytest.fixture
def two_volumes(tmp_path):
    """Two LAS CT cases (nnU-Net layout) converted to COCO slices with every slice kept."""
    for n in range(2):
        image, labels = synthetic_case(shape=(16, 16, 5), seed=n)
        save_nifti(tmp_path / "in" / "imagesTr" / f"case{n}_0000.nii.gz", image, las_affine())
        save_nifti(tmp_path / "in" / "labelsTr" / f"case{n}.nii.gz", labels, las_affine())
    (tmp_path / "in" / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "liver": 1, "spleen": 2, "kidney": 5}, "channel_names": {"0": "CT"},
         "file_ending": ".nii.gz"}))
    dataset, _ = convert_nifti(tmp_path / "in", out=tmp_path / "out" / "coco.json",
                               out_images=tmp_path / "out" / "images")
    return dataset, tmp_path


def test_per_volume_dice_is_the_voxel_dice_of_the_stacked_predictions(two_volumes):
    from cococxr.models.segmentation import build_plain_unet
    from cococxr.pipelines.segmentation.evaluate import evaluate_segmentation

    dataset, tmp_path = two_volumes
    model = build_plain_unet((16, 16, 3), classes=1, filters=(4, 8))
    metrics = evaluate_segmentation(model, dataset, classes=["liver"], input_size=16, channels=3,
                                    include_empty=True, threshold=0.5, progress=False, overlays=0,
                                    out=tmp_path / "eval", metric=None)
    volumes = metrics["per_volume"]
    assert sorted(volumes["per_case"]) == ["case0", "case1"]
    results = json.loads((tmp_path / "eval" / "metrics.json").read_text())["per_volume"]
    assert results["mean"] == pytest.approx(volumes["mean"])
    # the same Dice by hand: the model's slice masks stacked against the label volume read with nibabel
    predicted = _predicted_volumes(model, dataset)
    for case, scores in volumes["per_case"].items():
        truth = nib.load(tmp_path / "in" / "labelsTr" / f"{case}.nii.gz")
        layout = SliceLayout.from_record(next(r for r in dataset.imgs.values() if r["case_id"] == case))
        true = layout.to_display(np.asanyarray(truth.dataobj)) == 1
        pred = predicted[case]
        both = pred.sum() + true.sum()
        expected = 1.0 if both == 0 else 2 * np.logical_and(pred, true).sum() / both
        assert scores["liver"]["dice"] == pytest.approx(expected, abs=1e-9)
    assert volumes["per_class"]["liver"]["n_cases"] == 2


def _predicted_volumes(model, dataset) -> dict:
    """Each case's predicted liver voxels: the model's thresholded slices (COCO results), stacked."""
    from cococxr.pipelines.engine.cards import input_spec
    from cococxr.pipelines.engine.evaluation import score_predictions
    from cococxr.pipelines.engine.segmenter import predict_probabilities
    from cococxr.pipelines.engine.timing import InferenceTimer

    spec = input_spec(model, None, classes=["liver"], input_size=16, channels=3, preprocessing=None, equalize=None)
    ids = list(dataset.imgs)
    evaluation = score_predictions(dataset, ["liver"],
                                   predict_probabilities(model, dataset, spec, ids, 8, InferenceTimer(), False, False))
    volumes: dict = {}
    for record in dataset.imgs.values():
        layout = SliceLayout.from_record(record)
        stack = volumes.setdefault(record["case_id"], np.zeros(layout.display_shape, bool))
        for result in evaluation.results:
            if result["image_id"] == record["id"]:
                stack[record["slice_index"]] |= coco_rle_decode(result["segmentation"], record["height"],
                                                                record["width"]).astype(bool)
    return volumes


def test_per_volume_scores_need_every_slice(two_volumes, capsys):
    from cococxr.cli import main
    from cococxr.models.segmentation import build_plain_unet

    dataset, tmp_path = two_volumes
    model = build_plain_unet((16, 16, 3), classes=1, filters=(4, 8))
    model.save(tmp_path / "m.keras")
    from cococxr.pipelines.segmentation.evaluate import evaluate_segmentation

    metrics = evaluate_segmentation(model, dataset, classes=["liver"], input_size=16, channels=3, progress=False,
                                    overlays=0)
    assert "--include-empty" in metrics["per_volume"]["skipped"]
    assert main(["evaluate", "segmentation", str(tmp_path / "m.keras"), "--coco", str(tmp_path / "out" / "coco.json"),
                 "--classes", "liver", "--input-size", "16", "--channels", "3", "--include-empty",
                 "--out", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    assert "per volume (2 volumes, 3-D): Dice" in printed and " mm" in printed
