"""``cococxr evaluate maskrcnn``: COCO AP and Dice of a Mask R-CNN, scored like the U-Net.

The detector's instances at the image's original size become two things:

* **COCO results** for AP: every instance scoring at least ``score_threshold`` (0.05 by
  default, as detectron2 tests) gives a mask result (its mask probabilities > 0.5 via
  :func:`cococxr.metrics.masks_to_coco_results`, score = the detector's) and a box
  result (the box head's box). :func:`cococxr.metrics.coco_evaluate` scores them against
  the COCO file's masks (``segm``) and boxes (``bbox``): AP, AP50, AP75, per category.
* **Union masks** for Dice: per class, the union of the masks of the instances scoring
  at least ``union_score_threshold`` (0.5), scored by
  :func:`cococxr.pipelines.engine.evaluation.score_predictions` exactly as a U-Net's
  thresholded probabilities are (Dice, IoU, HD95 per image and class).

Only images with a mask of the model's classes are evaluated (as for the U-Net), and
only those classes' annotations are ground truth, so ``cococxr compare`` can put the
``metrics.json`` row written here beside U-Net rows (``segm_AP`` is instance AP here; there
it is the AP of the class masks, split into connected components when the ground truth
has instances, so both score against the same annotations).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from cococxr.coco import CocoDataset
from cococxr.errors import ConfigError
from cococxr.metrics import coco_evaluate, masks_to_coco_results
from cococxr.pipelines.engine.evaluation import (METRICS_FILE, OVERLAY_DIR, PER_IMAGE_FILE, Evaluation,
                                                 evaluation_image_ids, score_predictions, write_overlays,
                                                 write_per_image_csv)
from cococxr.pipelines.engine.evaluation import format_metrics as segmentation_summary
from cococxr.pipelines.engine.runs import write_json
from cococxr.pipelines.engine.timing import InferenceTimer
from cococxr.pipelines.maskrcnn.config import MODEL_FILE
from cococxr.pipelines.maskrcnn.detectron2 import Detectron2Predictor
from cococxr.pipelines.maskrcnn.labels import LabelMap
from cococxr.pipelines.maskrcnn.model import (count_parameters, load_torchvision_model, read_checkpoint,
                                              require_torch, resolve_device)

log = logging.getLogger(__name__)


class TorchvisionPredictor:
    """A torchvision Mask R-CNN as a function of one image.

    Calling it with a float32 ``(H, W, 3)`` image in 0..1 returns numpy arrays:
    ``boxes`` ``(N, 4)`` (x1, y1, x2, y2), ``labels`` ``(N,)`` (1..K), ``scores``
    ``(N,)`` and ``masks`` ``(N, H, W)`` probabilities, at the image's size.
    """

    backend = "torchvision"

    def __init__(self, model, label_map: LabelMap):
        self.model, self.label_map = model.eval(), label_map
        self.device = next(model.parameters()).device

    @property
    def params(self) -> int:
        """Number of model parameters."""
        return count_parameters(self.model)

    def __call__(self, image: np.ndarray) -> dict:
        import torch  # deferred: the optional baseline extra; require_torch checked it when the model was built

        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(self.device)
        with torch.inference_mode():
            out = self.model([tensor])[0]
        return {"boxes": out["boxes"].cpu().numpy(), "labels": out["labels"].cpu().numpy(),
                "scores": out["scores"].cpu().numpy(), "masks": out["masks"][:, 0].cpu().numpy()}


def load_predictor(run_or_checkpoint, device: str = "auto"):
    """``(predictor, checkpoint dict)`` from a run folder or its ``model.pt``."""
    require_torch()
    path = Path(run_or_checkpoint)
    payload = read_checkpoint(path / MODEL_FILE if path.is_dir() else path)
    if payload.get("backend") == "detectron2":
        return Detectron2Predictor.from_checkpoint(payload, device), payload
    model = load_torchvision_model(payload, resolve_device(device))
    return TorchvisionPredictor(model, LabelMap.from_dict(payload["label_map"])), payload


def predict_instances(predictor, coco, image_ids: Iterable, timer=None,
                      progress: bool = True) -> Iterator[tuple[int, dict]]:
    """Yield ``(image_id, instances)`` for each image (see :class:`TorchvisionPredictor`).

    ``timer`` (an :class:`~cococxr.pipelines.engine.timing.InferenceTimer`)
    accumulates model time; the first image is predicted once untimed to warm up.
    """
    from cococxr.pipelines.maskrcnn.data import read_rgb01  # deferred: the module imports torch at its top

    for image_id in tqdm(list(image_ids), desc="predicting", unit="image", disable=not progress):
        record = coco.imgs[image_id]
        image = read_rgb01(coco.image_path(image_id), int(record["height"]), int(record["width"]))
        if timer is not None and not timer.warmed_up:
            predictor(image)
            timer.warmed_up = True
        start = time.perf_counter()
        instances = predictor(image)
        if timer is not None:
            timer.seconds += time.perf_counter() - start
            timer.images += 1
        yield image_id, instances


def instance_results(image_id: int, instances: dict, label_map: LabelMap, *, score_threshold: float = 0.05,
                     union_score_threshold: float = 0.5, mask_threshold: float = 0.5):
    """COCO results and per-class union masks of one image's instances.

    Returns:
        ``(segm_results, bbox_results, union)``: result dicts (score >=
        ``score_threshold``) and a uint8 ``(H, W, K)`` union of the masks scoring at
        least ``union_score_threshold``, channel k for label k + 1.
    """
    masks = np.asarray(instances["masks"], dtype=np.float32)
    union = np.zeros((*masks.shape[1:], len(label_map)), np.uint8)
    segm, bbox = [], []
    for box, label, score, mask in zip(instances["boxes"], instances["labels"], instances["scores"], masks):
        if score < score_threshold:
            continue
        category_id = label_map.category_id(int(label))
        segm += masks_to_coco_results([image_id], [mask], [category_id], scores=[[float(score)]],
                                      threshold=mask_threshold)
        x1, y1, x2, y2 = (float(v) for v in box)
        bbox.append({"image_id": int(image_id), "category_id": category_id,
                     "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
        if score >= union_score_threshold:
            union[..., int(label) - 1] |= (mask > mask_threshold).astype(np.uint8)
    return segm, bbox, union


def _ground_truth(coco, image_ids: list, label_map: LabelMap) -> dict:
    wanted_images, wanted_cats = set(image_ids), set(label_map.category_ids)
    return {"images": [coco.imgs[i] for i in image_ids],
            "categories": [coco.cats[c] for c in label_map.category_ids],
            "annotations": [a for a in coco.anns.values() if a["image_id"] in wanted_images
                            and a["category_id"] in wanted_cats and a.get("segmentation") is not None]}


def score_instances(coco, label_map: LabelMap, predictions: Iterable[tuple[int, dict]], *,
                    score_threshold: float = 0.05, union_score_threshold: float = 0.5,
                    mask_threshold: float = 0.5):
    """Score ``(image_id, instances)`` pairs against ``coco`` (see the module docstring).

    The label map's classes are matched to ``coco``'s categories by name, so a training
    file that numbers its categories differently still scores correctly.

    Returns:
        A :class:`~cococxr.pipelines.engine.evaluation.Evaluation` whose ``metrics``
        add ``bbox_AP``/``bbox_AP50``/``bbox_AP75``, ``coco_bbox`` and per-class
        ``bbox_AP`` to the U-Net's keys, and whose ``results`` are the masks in the
        unions (for overlays).
    """
    # the classes by name, as the U-Net's: the COCO file may number its categories differently
    label_map = LabelMap(tuple(coco.cat_id(name) for name in label_map.names), label_map.names)
    segm, bbox, unions = [], [], []
    for image_id, instances in predictions:
        s, b, union = instance_results(image_id, instances, label_map, score_threshold=score_threshold,
                                       union_score_threshold=union_score_threshold,
                                       mask_threshold=mask_threshold)
        segm += s
        bbox += b
        unions.append((image_id, union))
    semantic = score_predictions(coco, list(label_map.names), unions)
    truth = _ground_truth(coco, [image_id for image_id, _ in unions], label_map)
    segm_stats, bbox_stats = coco_evaluate(truth, segm, "segm"), coco_evaluate(truth, bbox, "bbox")
    metrics = dict(semantic.metrics)
    metrics.update({
        "score_threshold": score_threshold, "union_score_threshold": union_score_threshold,
        "threshold": mask_threshold,
        "segm_AP": segm_stats["AP"], "segm_AP50": segm_stats["AP50"], "segm_AP75": segm_stats["AP75"],
        "bbox_AP": bbox_stats["AP"], "bbox_AP50": bbox_stats["AP50"], "bbox_AP75": bbox_stats["AP75"],
        "segm_results": "instances",  # the detector's own, not the union masks scored for Dice
        "coco_segm": {k: v for k, v in segm_stats.items() if k != "per_category"},
        "coco_bbox": {k: v for k, v in bbox_stats.items() if k != "per_category"},
        "detections": len(segm),
        "per_class": {name: {**values, "segm_AP": segm_stats["per_category"].get(name),
                             "bbox_AP": bbox_stats["per_category"].get(name)}
                      for name, values in semantic.metrics["per_class"].items()},
    })
    drawn = [r for r in segm if r["score"] >= union_score_threshold]
    return Evaluation(metrics, semantic.per_image, drawn)


def evaluate_predictor(predictor, coco, *, out=None, name: str | None = None, train_stats: dict | None = None,
                       score_threshold: float = 0.05, union_score_threshold: float = 0.5,
                       mask_threshold: float = 0.5, overlays: int = 4, include_empty: bool = False,
                       progress: bool = True) -> dict:
    """Predict and score every image of ``coco`` with a mask of the predictor's classes.

    Args:
        predictor: a :class:`TorchvisionPredictor` or a detectron2 predictor.
        coco: :class:`~cococxr.coco.CocoDataset` with the ground truth and images.
        out: folder for ``metrics.json``, ``per_image.csv`` and ``overlays/`` (None: none).
        name: the comparison row name (default ``maskrcnn-<backend>``).
        train_stats: training facts to add (``seconds_per_epoch``, ``iterations``...).
        score_threshold, union_score_threshold, mask_threshold: see the module docstring.
        overlays: number of best and of worst images drawn.
        include_empty: also evaluate images without any mask of the classes.
        progress: show a progress bar.

    Returns:
        The metrics (a ``cococxr compare`` row plus details).
    """
    names = list(predictor.label_map.names)
    image_ids = evaluation_image_ids(coco, names, include_empty)
    timer = InferenceTimer()
    evaluation = score_instances(coco, predictor.label_map,
                                 predict_instances(predictor, coco, image_ids, timer, progress),
                                 score_threshold=score_threshold, union_score_threshold=union_score_threshold,
                                 mask_threshold=mask_threshold)
    stats = dict(train_stats or {})
    metrics = {"name": name or f"maskrcnn-{predictor.backend}", "backend": predictor.backend,
               **evaluation.metrics, "params": predictor.params, "ms_per_image": timer.ms_per_image,
               "seconds_per_epoch": stats.pop("seconds_per_epoch", None),
               "epochs": round(stats.pop("epochs"), 2) if "epochs" in stats else None, **stats}
    if out is not None:
        out = Path(out)
        write_per_image_csv(evaluation.per_image, out / PER_IMAGE_FILE)
        write_overlays(coco, evaluation, names, out / OVERLAY_DIR, overlays)
        write_json(out / METRICS_FILE, metrics)
    return metrics


def evaluate_maskrcnn(run_or_checkpoint, coco, *, image_root=None, out=None, device: str = "auto",
                      score_threshold: float = 0.05, union_score_threshold: float = 0.5,
                      mask_threshold: float = 0.5, overlays: int = 4, include_empty: bool = False,
                      progress: bool = True) -> dict:
    """Evaluate a trained Mask R-CNN (run folder or ``model.pt``) on a COCO file.

    The row name and training facts (``seconds_per_epoch``...) come from the checkpoint.
    See :func:`evaluate_predictor` for the other arguments.
    """
    predictor, payload = load_predictor(run_or_checkpoint, device)
    if not isinstance(coco, CocoDataset) or image_root is not None:
        coco = CocoDataset(coco.dataset if isinstance(coco, CocoDataset) else coco, image_root)
    config = payload.get("config", {})
    name = config.get("name") or f"maskrcnn-{payload.get('backend', 'torchvision')}"
    return evaluate_predictor(predictor, coco, out=out, name=name, train_stats=payload.get("train_stats"),
                              score_threshold=score_threshold, union_score_threshold=union_score_threshold,
                              mask_threshold=mask_threshold, overlays=overlays, include_empty=include_empty,
                              progress=progress)


def format_metrics(metrics: dict) -> str:
    """The U-Net summary table plus the box AP line."""
    def fmt(value):
        return "n/a" if value is None else f"{value:.4f}"

    return (segmentation_summary(metrics) + f"\nCOCO bbox AP {fmt(metrics['bbox_AP'])}  "
            f"AP50 {fmt(metrics['bbox_AP50'])}  AP75 {fmt(metrics['bbox_AP75'])}  "
            f"({metrics['detections']} detections scoring >= {metrics['score_threshold']})")


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr evaluate maskrcnn`` (after :mod:`cococxr.pipelines.maskrcnn.commands` parsed it)."""
    if not 0.0 <= args.score_threshold <= args.union_score_threshold <= 1.0:
        raise ConfigError("thresholds must satisfy 0 <= --score-threshold <= --union-score-threshold <= 1")
    metrics = evaluate_maskrcnn(args.model, args.coco, image_root=args.image_root, out=args.out,
                                device=args.device, score_threshold=args.score_threshold,
                                union_score_threshold=args.union_score_threshold,
                                mask_threshold=args.mask_threshold, overlays=args.overlays,
                                include_empty=args.include_empty)
    print(format_metrics(metrics))
    print(f"-> {Path(args.out) / METRICS_FILE}")
    return 0


__all__ = ["TorchvisionPredictor", "load_predictor", "predict_instances", "instance_results",
           "score_instances", "evaluate_predictor", "evaluate_maskrcnn", "format_metrics", "run"]
