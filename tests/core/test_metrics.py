"""cococxr.metrics against hand-computed values, scipy, scikit-learn and pycocotools."""
from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy.spatial.distance import cdist, directed_hausdorff
from sklearn import metrics as skm

from cococxr import metrics as M
from cococxr.errors import CocoFormatError, ConfigError


# ----------------------------------------------------------------- overlap
def test_dice_and_iou_hand_computed():
    true = np.zeros((4, 4), np.uint8)
    true[0:2, 0:3] = 1  # 6 pixels
    pred = np.zeros((4, 4), np.uint8)
    pred[0:2, 0:2] = 1  # 4 pixels, all inside
    assert M.dice(pred, true) == pytest.approx(8 / 10)
    assert M.iou(pred, true) == pytest.approx(4 / 6)


def test_empty_conventions():
    empty = np.zeros((3, 3), bool)
    full = np.ones((3, 3), bool)
    assert M.dice(empty, empty) == 1.0 and M.iou(empty, empty) == 1.0
    assert M.dice(full, empty) == 0.0 and M.iou(empty, full) == 0.0
    assert M.hausdorff_95(empty, empty) == 0.0
    assert M.hausdorff_95(full, empty) == pytest.approx(math.hypot(3, 3))
    assert M.hausdorff_distance(empty, full, spacing=(2, 1)) == pytest.approx(math.hypot(6, 3))


def test_probabilities_are_thresholded():
    assert M.dice(np.array([0.2, 0.7]), np.array([0, 1])) == 1.0
    assert M.dice(np.array([0.2, 0.7]), np.array([0, 1]), threshold=0.8) == 0.0


def test_per_image_per_class_and_means():
    true = np.zeros((2, 2, 2, 2), np.uint8)
    pred = np.zeros_like(true)
    true[0, 0, :, 0] = 1
    pred[0, :, :, 0] = 1          # image 0 class 0: dice 2*2/(4+2) = 2/3
    true[1, :, :, 0] = pred[1, :, :, 0] = 1  # image 1 class 0: 1.0
    pred[0, 0, 0, 1] = 1          # image 0 class 1: pred vs empty = 0; image 1: empty-empty = 1
    scores = M.overlap_per_image(pred, true, "dice")
    np.testing.assert_allclose(scores, [[2 / 3, 0.0], [1.0, 1.0]])
    assert M.mean_dice(pred, true) == pytest.approx(((2 / 3 + 1) / 2 + (0 + 1) / 2) / 2)
    np.testing.assert_allclose(M.overlap_per_image(pred, true, "iou"), [[0.5, 0.0], [1.0, 1.0]])
    assert M.mean_iou(pred[..., 0], true[..., 0]) == pytest.approx(0.75)


def test_segmentation_report_keys_and_values():
    true = np.zeros((1, 8, 8, 2), np.uint8)
    true[0, 2:5, 2:5, 0] = 1
    report = M.segmentation_report(true, true, ["lung", "heart"])
    assert report["per_class"]["lung"] == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "n_images": 1}
    assert report["per_class"]["heart"]["dice"] == 1.0  # empty vs empty
    assert report["mean"] == {"dice": 1.0, "iou": 1.0, "hd95": 0.0}
    with pytest.raises(ConfigError):
        M.segmentation_report(true, true, ["lung"])


# ----------------------------------------------------------------- distances
def test_hausdorff_single_points_with_spacing():
    a = np.zeros((6, 6), bool)
    b = np.zeros((6, 6), bool)
    a[0, 0] = b[3, 4] = True
    assert M.hausdorff_95(a, b) == pytest.approx(5.0)
    assert M.hausdorff_distance(a, b) == pytest.approx(5.0)
    assert M.hausdorff_95(a, b, spacing=(2, 1)) == pytest.approx(math.sqrt(36 + 16))


def _surface_points(mask):
    from scipy import ndimage

    return np.argwhere(mask & ~ndimage.binary_erosion(mask))


def test_hausdorff_95_matches_brute_force_surface_distances():
    rng = np.random.default_rng(3)
    a = np.zeros((20, 24), bool)
    b = np.zeros((20, 24), bool)
    a[3:12, 4:15] = True
    b[6:17, 8:20] = True
    b[rng.integers(0, 20, 5), rng.integers(0, 24, 5)] = True
    sa, sb = _surface_points(a), _surface_points(b)
    d = cdist(sa, sb)
    expected = np.percentile(np.concatenate([d.min(axis=1), d.min(axis=0)]), 95)
    assert M.hausdorff_95(a, b) == pytest.approx(expected)
    pa, pb = np.argwhere(a), np.argwhere(b)
    exact = max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])
    assert M.hausdorff_distance(a, b) == pytest.approx(exact)


# ----------------------------------------------------------------- UW-Madison
def _uw_case():
    true = np.zeros((2, 4, 4, 2), np.uint8)
    pred = np.zeros_like(true)
    true[0, 1, 1, 0] = pred[0, 1, 1, 0] = 1
    pred[1, 2, 2, 0] = 1  # false positive on slice 1; class 1 empty everywhere
    return pred, true


def test_uw_madison_volume_score_hand_computed():
    pred, true = _uw_case()
    part = M.uw_madison_volume_score(pred, true)
    # Dice per (slice, class): 1, 1 (empty-empty), 0, 1 -> 0.75.
    assert part["dice"] == pytest.approx(0.75)
    # class 0: farthest predicted voxel (1,2,2) to (0,1,1) = sqrt(3); diagonal sqrt(4+16+16)=6.
    hd = (math.sqrt(3) / 6 + 0.0) / 2
    assert part["hausdorff"] == pytest.approx(hd)
    assert part["score"] == pytest.approx(0.4 * 0.75 + 0.6 * (1 - hd))


def test_uw_madison_score_over_volumes():
    pred, true = _uw_case()
    perfect = np.zeros((4, 4, 4, 2), np.uint8)
    perfect[1:3, 1:3, 1:3, 1] = 1
    out = M.uw_madison_score([(pred, true), (perfect, perfect)])
    dice = (0.75 * 2 + 1.0 * 4) / 6  # per slice-class image over all volumes
    hd = ((math.sqrt(3) / 6 + 0.0) / 2 + 0.0) / 2  # mean over volumes of class means
    assert out["dice"] == pytest.approx(dice) and out["hausdorff"] == pytest.approx(hd)
    assert out["score"] == pytest.approx(0.4 * dice + 0.6 * (1 - hd))
    assert out["n_volumes"] == 2
    empty = np.zeros((2, 3, 3), np.uint8)
    assert M.uw_madison_score([(empty, empty)])["score"] == 1.0


# ----------------------------------------------------------------- COCO
H = W = 64


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()}


@pytest.fixture
def gt_masks():
    masks = []
    for i in range(3):
        m = np.zeros((H, W), np.uint8)
        m[10 + i:40, 5:30] = 1  # 25 columns wide
        masks.append(m)
    return masks


@pytest.fixture
def gt(gt_masks):
    return {
        "images": [{"id": i + 1, "height": H, "width": W, "file_name": f"{i}.png"}
                   for i in range(3)],
        "categories": [{"id": 1, "name": "lung", "supercategory": "anatomy"},
                       {"id": 2, "name": "COVID", "supercategory": "finding"}],
        "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1,
                         "segmentation": _rle(m), "iscrowd": 0}
                        for i, m in enumerate(gt_masks)]
        + [{"id": 9, "image_id": 1, "category_id": 2, "iscrowd": 0, "area": 0}],  # a label
    }


def test_masks_to_coco_results_round_trip(gt_masks):
    probs = [np.dstack([m * 0.9, np.zeros_like(m, float)]) for m in gt_masks]
    results = M.masks_to_coco_results([1, 2, 3], probs, [1, 2])
    assert len(results) == 3  # empty channel 2 left out
    for r, m in zip(results, gt_masks):
        assert isinstance(r["segmentation"]["counts"], str)
        assert r["category_id"] == 1 and r["score"] == pytest.approx(0.9)
        np.testing.assert_array_equal(mask_utils.decode(r["segmentation"]), m)
    given = M.masks_to_coco_results([1], [gt_masks[0]], [1], scores=[[0.25]])
    assert given[0]["score"] == 0.25


def test_masks_to_coco_results_per_component():
    """instances=True: a result per 8-connected piece, each scored by its own mean probability."""
    probs = np.zeros((20, 30), np.float32)
    probs[2:6, 2:8] = 0.9
    probs[10:18, 15:25] = 0.7
    probs[6, 8] = 0.6  # touches the first piece diagonally: the same 8-connected component
    parts = M.masks_to_coco_results([4], [probs], [2], instances=True)
    assert [p["score"] for p in parts] == pytest.approx([(24 * 0.9 + 0.6) / 25, 0.7])
    assert [int(mask_utils.area(p["segmentation"])) for p in parts] == [25, 80]
    whole = M.masks_to_coco_results([4], [probs], [2])
    assert len(whole) == 1 and whole[0]["score"] == pytest.approx((24 * 0.9 + 0.6 + 80 * 0.7) / 105)
    union = np.any([mask_utils.decode(p["segmentation"]) for p in parts], axis=0)
    np.testing.assert_array_equal(union, mask_utils.decode(whole[0]["segmentation"]))
    assert all(p["image_id"] == 4 and p["category_id"] == 2 for p in parts)
    binary = M.masks_to_coco_results([4], [(probs > 0).astype(np.uint8)], [2], instances=True)
    assert [p["score"] for p in binary] == [1.0, 1.0]
    given = M.masks_to_coco_results([4], [probs], [2], scores=[[0.3]], instances=True)
    assert [p["score"] for p in given] == [0.3, 0.3]


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_coco_ap_perfect_is_one(gt, gt_masks, iou_type):
    results = M.masks_to_coco_results([1, 2, 3], gt_masks, [1])
    out = M.coco_evaluate(gt, results, iou_type)
    assert out["AP"] == 1.0 and out["AP50"] == 1.0 and out["AR100"] == 1.0
    assert out["per_category"] == {"lung": 1.0}  # the label-only COVID category is excluded
    assert out["APl"] is None  # no large ground truth


def test_coco_ap_empty_is_zero(gt):
    out = M.coco_evaluate(gt, [])
    assert out["AP"] == 0.0 and out["AR100"] == 0.0 and out["per_category"] == {"lung": 0.0}


def test_coco_ap_shifted_in_between(gt, gt_masks):
    shifted = [np.roll(m, 6, axis=1) for m in gt_masks]  # IoU 19/31 = 0.61
    out = M.coco_evaluate(COCO_from(gt), M.masks_to_coco_results([1, 2, 3], shifted, [1]))
    assert out["AP50"] == 1.0 and out["AP75"] == 0.0
    assert out["AP"] == pytest.approx(0.3)  # IoU thresholds 0.50, 0.55, 0.60 of ten


def COCO_from(dataset):  # noqa: N802 - reads like the class it builds
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def test_coco_evaluate_rejects_unknown_images(gt, gt_masks):
    results = M.masks_to_coco_results([99], [gt_masks[0]], [1])
    with pytest.raises(CocoFormatError, match="99"):
        M.coco_evaluate(gt, results)


# ----------------------------------------------------------------- classification
def test_classification_report_matches_sklearn_multiclass():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    prob = rng.dirichlet([1, 1, 1], 60)
    prob[np.arange(60), y] += 0.5
    prob /= prob.sum(axis=1, keepdims=True)
    rep = M.classification_report_dict(y, prob, ["a", "b", "c"], n_boot=50, seed=1)
    pred = prob.argmax(axis=1)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert rep["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert rep["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred))
    assert rep["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert rep["weighted_f1"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    p, r, f, s = skm.precision_recall_fscore_support(y, pred)
    assert rep["per_class"]["b"] == pytest.approx(
        {"precision": p[1], "recall": r[1], "f1": f[1], "support": s[1],
         "auc": skm.roc_auc_score(y == 1, prob[:, 1])})
    auc = rep["roc_auc"]
    assert auc["value"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr"))
    assert auc["ci_low"] <= auc["value"] <= auc["ci_high"]
    assert rep["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    again = M.classification_report_dict(y, prob, ["a", "b", "c"], n_boot=50, seed=1)
    assert again["roc_auc"] == auc  # seeded bootstrap


def test_classification_report_binary_threshold():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.45, 0.4, 0.8, 0.6, 0.7])
    rep = M.classification_report_dict(y, p, ["neg", "pos"], threshold=0.4, n_boot=0)
    pred = (p >= 0.4).astype(int)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert rep["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert rep["roc_auc"] == {"value": pytest.approx(skm.roc_auc_score(y, p)),
                              "ci_low": None, "ci_high": None}
    with pytest.raises(ConfigError):
        M.classification_report_dict([0, 1, 2], np.eye(3), ["a", "b", "c"], threshold=0.5)


SCORES = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
LABELS = [1, 1, 0, 1, 0, 0, 1, 0]


def test_tune_threshold_f1_hand_made():
    # F1 by threshold: .9 .4, .8 .667, .7 .571, .6 .75, .5 .667, .4 .6, .3 .727, .2 .667
    threshold, stats = M.tune_threshold(LABELS, SCORES, "f1")
    assert threshold == 0.6
    assert stats["f1"] == pytest.approx(0.75)
    assert (stats["tp"], stats["fp"], stats["fn"], stats["tn"]) == (3, 1, 1, 3)
    pred = (np.array(SCORES) >= threshold).astype(int)
    assert stats["f1"] == pytest.approx(skm.f1_score(LABELS, pred))


def test_tune_threshold_sensitivity_hand_made():
    threshold, stats = M.tune_threshold(LABELS, SCORES, "sensitivity", target=0.95)
    assert threshold == 0.3 and stats["sensitivity"] == 1.0
    assert stats["specificity"] == pytest.approx(0.25)
    threshold, stats = M.tune_threshold(LABELS, SCORES, "sensitivity", target=0.75)
    assert threshold == 0.6 and stats["specificity"] == pytest.approx(0.75)


def test_tune_threshold_ties_and_errors():
    threshold, stats = M.tune_threshold([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1], "f1")
    assert threshold == 0.5 and (stats["tp"], stats["fp"]) == (2, 1)  # ties move together
    assert stats["f1"] == pytest.approx(0.8)
    with pytest.raises(ConfigError):
        M.tune_threshold([0, 0], [0.1, 0.2])
