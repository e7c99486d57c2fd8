"""Per-volume evaluation: 3-D Dice and HD95 in mm from the recorded spacing."""
from __future__ import annotations

import numpy as np
import pytest

from cococxr.coco import CocoDataset
from cococxr.converters.nifti import convert_nifti
from cococxr.errors import ConversionError
from cococxr.metrics import dice, hausdorff_95
from cococxr.volumes.metrics import evaluate_volumes, volume_dice, volume_hd95

from helpers import las_affine, save_nifti, synthetic_case


def test_volume_metrics_use_the_voxel_size():
    true = np.zeros((10, 12, 12), bool)
    true[3:6, 4:8, 4:8] = True
    shifted = np.roll(true, 1, axis=0)  # one slice further
    assert volume_hd95(shifted, true, spacing=(2.5, 0.8, 0.8)) == pytest.approx(2.5)
    assert volume_hd95(np.roll(true, 1, axis=2), true, spacing=(2.5, 0.8, 0.8)) == pytest.approx(0.8)
    assert volume_dice(shifted, true) == pytest.approx(2 * 32 / 96) == dice(shifted, true)
    assert volume_hd95(shifted, true, (2.5, 0.8, 0.8)) == hausdorff_95(shifted, true, (2.5, 0.8, 0.8))
    assert volume_hd95(np.zeros_like(true), np.zeros_like(true), 1.0) == 0.0


def _convert(tmp_path, name, labels):
    image, _ = synthetic_case()
    save_nifti(tmp_path / name / "ct.nii.gz", image, las_affine())
    save_nifti(tmp_path / name / "ct_seg.nii.gz", labels, las_affine())
    (tmp_path / "map.json").write_text('{"1": "liver", "2": "spleen", "5": "kidney"}')
    dataset, _ = convert_nifti(tmp_path / name / "ct.nii.gz", tmp_path / name / "ct_seg.nii.gz",
                               out=tmp_path / name / "c.json", out_images=tmp_path / name / "images",
                               label_map=str(tmp_path / "map.json"))
    return dataset


def test_evaluate_volumes_scores_cases_in_3d_mm(tmp_path):
    _, labels = synthetic_case()
    truth = _convert(tmp_path, "truth", labels)
    perfect = evaluate_volumes(truth, truth)
    assert perfect["mean"] == {"dice": 1.0, "hd95_mm": 0.0}
    moved = np.zeros_like(labels)
    moved[:, :, 1:] = labels[:, :, :-1]  # every structure one slice (2.5 mm) up
    pred = _convert(tmp_path, "pred", moved)
    scores = evaluate_volumes(truth, pred, classes=["liver", "spleen"])
    assert scores["per_case"]["ct"]["liver"]["hd95_mm"] == pytest.approx(2.5)
    liver = labels == 1
    assert scores["per_class"]["liver"]["dice"] == pytest.approx(dice(moved == 1, liver))
    assert scores["per_class"]["spleen"]["n_cases"] == 1
    results = [{k: a[k] for k in ("image_id", "category_id", "segmentation")} for a in pred.anns.values()]
    by_results = evaluate_volumes(truth, results, classes=["liver", "spleen"])
    assert by_results["per_class"] == scores["per_class"]


def test_evaluate_volumes_names_what_does_not_match(tmp_path):
    _, labels = synthetic_case()
    truth = _convert(tmp_path, "truth", labels)
    empty = CocoDataset({"images": [], "categories": [], "annotations": []}, validate=False)
    with pytest.raises(ConversionError, match=r"predictions have no category \['liver', 'spleen', 'kidney'\]"):
        evaluate_volumes(truth, empty)
    with pytest.raises(ConversionError, match=r"image id\(s\) \[999\]"):
        evaluate_volumes(truth, [{"image_id": 999, "category_id": 1, "segmentation": {}}])
