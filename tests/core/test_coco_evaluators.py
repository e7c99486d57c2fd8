"""COCO AP through faster-coco-eval and through pycocotools: the same numbers, either way.

pycocotools is the reference; faster-coco-eval (C++) is used when installed. Both score
the same ground truth and results here, synthetic and real (V7 Labs' hand-drawn lungs
against lungVAE's predicted lungs on the same films).
"""
from __future__ import annotations

import numpy as np
import pytest

from cococxr.coco import CocoBuilder
from cococxr.errors import CocoFormatError, ConfigError
from cococxr.masks import mask_to_annotations
from cococxr.metrics import COCO_STAT_NAMES, coco_evaluate, resolve_evaluator
from cococxr.rle import coco_rle_encode
from helpers import shared

pytest.importorskip("faster_coco_eval")


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key == "evaluator":
            continue
        if key == "per_category":
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                assert a[key][name] == pytest.approx(b[key][name], abs=1e-6), name
        else:
            assert (a[key] is None) == (b[key] is None), key
            assert a[key] == pytest.approx(b[key], abs=1e-6), key


def _both(gt, results, iou_type="segm") -> tuple[dict, dict]:
    fast = coco_evaluate(gt, results, iou_type, evaluator="faster-coco-eval")
    slow = coco_evaluate(gt, results, iou_type, evaluator="pycocotools")
    assert fast["evaluator"] == "faster-coco-eval" and slow["evaluator"] == "pycocotools"
    return fast, slow


def _blob(rng, shape) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    y, x = rng.integers(0, shape[0] - 8), rng.integers(0, shape[1] - 8)
    h, w = rng.integers(4, shape[0] - y + 1), rng.integers(4, shape[1] - x + 1)
    mask[y:y + h, x:x + w] = 1
    return mask


def _synthetic(seed: int):
    """Three categories over 12 images of mixed size: small, medium and large instances,
    predictions shifted, missed, doubled and false, with distinct scores."""
    rng = np.random.default_rng(seed)
    builder = CocoBuilder()
    cats = [builder.add_category(name, "anatomy") for name in ("lung", "heart", "nodule")]
    results = []
    for n in range(12):
        shape = (int(rng.integers(40, 140)), int(rng.integers(40, 140)))
        image_id = builder.add_image(f"{n}.png", *shape)
        for cat in cats:
            for _ in range(int(rng.integers(0, 3))):
                truth = _blob(rng, shape)
                builder.add_annotation(image_id, cat, coco_rle_encode(truth))
                kind = rng.integers(0, 4)
                if kind == 0:  # missed
                    continue
                pred = np.roll(truth, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), (0, 1))
                for copy in range(1 + (kind == 3)):  # a duplicate detection, a lower score
                    results.append({"image_id": image_id, "category_id": cat, "segmentation": coco_rle_encode(pred),
                                    "score": float(rng.uniform(0.05, 1.0)) / (1 + copy)})
            if rng.random() < 0.3:  # a false positive
                results.append({"image_id": image_id, "category_id": cat,
                                "segmentation": coco_rle_encode(_blob(rng, shape)), "score": float(rng.random())})
    return builder.build("."), results


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_both_evaluators_give_the_same_ap_on_synthetic_files(seed, iou_type):
    gt, results = _synthetic(seed)
    before = [dict(r, segmentation=dict(r["segmentation"])) for r in results]
    fast, slow = _both(gt, results, iou_type)
    assert results == before  # the caller's results are not touched by either evaluator
    _same(fast, slow)
    assert 0 < slow["AP"] < 1  # a real mix of hits and misses, not a trivial score


def _plain_pycocotools(gt, results, iou_type="segm") -> list[float]:
    """The 12 statistics of pycocotools used the usual way: loadRes, then COCOeval."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt.to_pycocotools().dataset
        coco_gt.createIndex()
        scorer = COCOeval(coco_gt, coco_gt.loadRes([dict(r) for r in results]), iou_type)
        scorer.evaluate()
        scorer.accumulate()
        scorer.summarize()
    return [None if v == -1 else float(v) for v in scorer.stats]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("with_boxes", [False, True])
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_both_evaluators_match_pycocotools_loadres(seed, with_boxes, iou_type):
    """coco_evaluate loads mask results itself (one C call for all areas, boxes only for
    bbox IoU); with either evaluator it must score exactly as pycocotools' own loadRes +
    COCOeval."""
    from pycocotools import mask as mask_utils

    gt, results = _synthetic(seed)
    if with_boxes:  # results that bring boxes take loadRes's box branch (area = box area)
        results = [dict(r, bbox=[float(v) for v in mask_utils.toBbox(r["segmentation"])]) for r in results]
    reference = _plain_pycocotools(gt, results, iou_type)
    for evaluator in ("pycocotools", "faster-coco-eval"):
        stats = coco_evaluate(gt, results, iou_type, evaluator=evaluator)
        for name, value in zip(COCO_STAT_NAMES, reference):
            assert (stats[name] is None) == (value is None), (evaluator, name)
            assert stats[name] == pytest.approx(value, abs=1e-6), (evaluator, name)


@pytest.mark.parametrize("collecting", [True, False])
def test_the_garbage_collector_state_is_restored(collecting):
    """Evaluation pauses the cyclic collector; afterwards, error or not, it is as before."""
    import gc

    gt, results = _synthetic(0)
    was = gc.isenabled()
    try:
        gc.enable() if collecting else gc.disable()
        coco_evaluate(gt, results)
        assert gc.isenabled() is collecting
        with pytest.raises(CocoFormatError, match="not in the ground truth"):
            coco_evaluate(gt, [dict(results[0], image_id=10**6)])
        assert gc.isenabled() is collecting
    finally:
        gc.enable() if was else gc.disable()


def test_empty_results_and_unmatched_images_score_alike():
    gt, results = _synthetic(5)
    _same(*_both(gt, []))
    one_image = [r for r in results if r["image_id"] == results[0]["image_id"]]
    _same(*_both(gt, one_image))


def test_both_evaluators_agree_on_real_lungs_drawn_and_predicted():
    """V7 Labs' hand-drawn lung masks as truth, lungVAE's predicted masks as results (one
    annotation / result per connected component, results scored by size so that no two tie)."""
    from cococxr.io import read_mask

    root = shared("cxr-lungs")
    drawn, predicted = root / "masks", root / "masks_lungvae"
    builder = CocoBuilder()
    lung = builder.add_category("lung", "anatomy")
    results = []
    for path in sorted(predicted.glob("*.png")):
        if not (drawn / path.name).is_file():
            continue
        truth, pred = read_mask(drawn / path.name) > 0, read_mask(path) > 0
        truth = truth[..., 0] if truth.ndim == 3 else truth
        pred = pred[..., 0] if pred.ndim == 3 else pred
        if truth.shape != pred.shape:
            continue
        image_id = builder.add_image(path.name, *truth.shape)
        for ann in mask_to_annotations(truth.astype(np.uint8), lung, image_id, instances=True):
            builder.add_annotation(image_id, lung, ann["segmentation"])
        for ann in mask_to_annotations(pred.astype(np.uint8), lung, image_id, instances=True):
            results.append({"image_id": image_id, "category_id": lung, "segmentation": ann["segmentation"],
                            "score": 1.0 - 1.0 / (1.0 + ann["area"])})
    assert len(builder.images) >= 50 and len(results) >= 50
    fast, slow = _both(builder.build(root / "images"), results)
    _same(fast, slow)
    assert slow["AP50"] > 0.5


def test_choosing_the_evaluator(monkeypatch):
    assert resolve_evaluator() == "faster-coco-eval"  # installed here: the default
    assert resolve_evaluator("pycocotools") == "pycocotools"
    monkeypatch.setenv("COCOCXR_COCO_EVALUATOR", "pycocotools")
    assert resolve_evaluator() == "pycocotools"
    with pytest.raises(ConfigError, match="choose one of"):
        resolve_evaluator("detectron2")
    from cococxr.metrics import coco_eval

    monkeypatch.setattr(coco_eval, "FasterCOCO", None)  # as where faster-coco-eval is not installed
    monkeypatch.delenv("COCOCXR_COCO_EVALUATOR")
    assert resolve_evaluator() == "pycocotools"  # not installed: the fallback
    with pytest.raises(ConfigError, match="pip install faster-coco-eval"):
        resolve_evaluator("faster-coco-eval")


def _awkward(seed: int):
    """Ground truth in every segmentation form (two-part polygons, list-count RLE, crowds) and
    results with polygons, tied scores and more than 100 detections on one image."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    images = [{"id": n + 1, "file_name": f"{n}.png", "height": 60 + 10 * n, "width": 80} for n in range(6)]
    anns, results = [], []
    for img in images:
        shape = (img["height"], img["width"])
        for k in range(4):
            truth = _blob(rng, shape)
            rle = coco_rle_encode(truth)
            y, x, h, w = rng.integers(2, 20), rng.integers(2, 30), rng.integers(8, 30), rng.integers(8, 40)
            segm = [
                {"size": rle["size"], "counts": [int(c) for c in _list_counts(truth)]},  # uncompressed RLE
                [[float(x), float(y), float(x + w), float(y), float(x + w), float(y + h), float(x), float(y + h)],
                 [float(x), float(y + h + 2), float(x + 6), float(y + h + 2), float(x + 6), float(y + h + 9)]],
                rle,
                rle,
            ][k]
            if k == 1:  # the polygon's own pixels are the truth its detection is shifted from
                truth = mask_utils.decode(_as_rle(segm, shape))
            crowd = int(k == 3)
            area = float(mask_utils.area(_as_rle(segm, shape)))
            anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": 1 + k % 2, "segmentation": segm,
                         "area": area, "bbox": [float(v) for v in mask_utils.toBbox(_as_rle(segm, shape))],
                         "iscrowd": crowd})
            pred = np.roll(truth, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), (0, 1))
            if crowd:  # a small detection inside the crowd region: ignored, not a false positive
                ys, xs = np.nonzero(truth)
                pred = np.zeros_like(truth)
                pred[ys.min():ys.min() + 3, xs.min():xs.min() + 3] = 1
            results.append({"image_id": img["id"], "category_id": 1 + k % 2, "segmentation": coco_rle_encode(pred),
                            "score": 0.5})  # ties: the order of the results decides
        if img["id"] == 2:  # 120 detections on one image: only the best 100 count
            for n in range(120):
                results.append({"image_id": 2, "category_id": 1, "score": float(rng.uniform(0, 0.4)),
                                "segmentation": coco_rle_encode(_blob(rng, shape))})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "lung", "supercategory": "anatomy"},
                         {"id": 2, "name": "heart", "supercategory": "anatomy"}]}
    return gt, results


def _list_counts(mask: np.ndarray) -> list[int]:
    flat = np.asfortranarray(mask).reshape(-1, order="F")
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], edges])).tolist()


def _as_rle(segm, shape):
    from pycocotools import mask as mask_utils

    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, *shape))
    return mask_utils.frPyObjects(segm, *shape) if isinstance(segm["counts"], list) else segm


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("polygon_results", [False, True])
def test_mask_ious_match_pycocotools_on_polygons_crowds_ties_and_crowded_images(seed, polygon_results):
    """faster-coco-eval here scores on pycocotools' mask IoUs (cococxr.metrics.faster_eval):
    every segmentation form, crowds, tied scores and the 100-detection cut must score as
    pycocotools' own loadRes + COCOeval does."""
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, results = _awkward(seed)
    if polygon_results:  # each result's box as a polygon (loadRes needs the box too), converted for IoU
        from pycocotools import mask as mask_utils

        boxes = [[float(v) for v in mask_utils.toBbox(r["segmentation"])] for r in results]
        results = [dict(r, segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]], bbox=[x, y, w, h])
                   for r, (x, y, w, h) in zip(results, boxes)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        scorer = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "segm")
        scorer.evaluate()
        scorer.accumulate()
        scorer.summarize()
    reference = [None if v == -1 else float(v) for v in scorer.stats]
    assert 0 < reference[0] < 1
    before = copy.deepcopy((gt, results))
    for evaluator in ("faster-coco-eval", "pycocotools"):
        stats = coco_evaluate(gt, results, "segm", evaluator=evaluator)
        for name, value in zip(COCO_STAT_NAMES, reference):
            assert (stats[name] is None) == (value is None), (evaluator, name)
            assert stats[name] == pytest.approx(value, abs=1e-6), (evaluator, name)
    assert (gt, results) == before  # neither evaluator rewrites the caller's data
