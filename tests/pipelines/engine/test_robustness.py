"""Lung post-processing, Dice per group and the QC of predicted lungs (no TensorFlow)."""
from __future__ import annotations

import numpy as np

from cococxr.pipelines.engine.robustness import (group_dice, lung_qc, postprocess_lungs,
                                                 postprocess_probabilities)


def two_lungs(size: int = 100) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[20:80, 10:40] = True
    mask[20:80, 60:90] = True
    return mask


def test_postprocess_keeps_two_largest_and_fills_holes():
    mask = two_lungs()
    noisy = mask.copy()
    noisy[2:5, 2:5] = True          # a blob in the corner
    noisy[40:45, 20:25] = False     # a hole in the right lung
    cleaned = postprocess_lungs(noisy)
    np.testing.assert_array_equal(cleaned, mask)
    prob = noisy[..., None].astype(np.float32) * 0.9
    out = postprocess_probabilities(prob, 0.5)
    np.testing.assert_array_equal(out[..., 0] > 0.5, mask)
    assert out.shape == prob.shape and np.all(out[mask] <= 0.9)


def test_qc_flags_one_blob_and_unbalanced_lungs():
    assert lung_qc(two_lungs())["reasons"] == []
    blob = np.zeros((100, 100), bool)
    blob[15:85, 10:90] = True
    reasons = lung_qc(blob)["reasons"]
    assert any("1 lung component" in r for r in reasons) and not any("area" in r for r in reasons)
    one_side = two_lungs()
    one_side[:, 50:] = False
    check = lung_qc(one_side)
    assert check["balance"] == 0.0 and any("balance 0.00" in r for r in check["reasons"])
    assert any("area" in r for r in lung_qc(np.zeros((100, 100), bool))["reasons"])


def test_group_dice_uses_the_keys_records_carry():
    records = {1: {"view": "PA", "finding": "COVID-19"}, 2: {"view": "AP"}, 3: {"view": "PA"}}
    rows = [{"image_id": 1, "dice": 0.9}, {"image_id": 2, "dice": 0.8}, {"image_id": 3, "dice": 0.7}]
    groups = group_dice(rows, records)
    assert groups["view"] == {"AP": {"images": 1, "dice": 0.8}, "PA": {"images": 2, "dice": 0.8}}
    assert groups["finding"] == {"COVID-19": {"images": 1, "dice": 0.9}} and "source" not in groups
