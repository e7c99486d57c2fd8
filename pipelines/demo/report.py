"""Stage 9 of ``cococxr demo``: ``metrics.json`` and the self-contained ``report.html``."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import cv2

from cococxr.coco import CocoDataset
from cococxr.config import config_to_dict
from cococxr.io import read_image, read_mask
from cococxr.pipelines.classification.config import CURVES_FILE as CLS_CURVES_FILE
from cococxr.pipelines.classification.evaluate import add_report_sections
from cococxr.pipelines.classification.explain import OVERLAY_DIR as GRADCAM_OVERLAY_DIR
from cococxr.pipelines.demo.config import DemoConfig
from cococxr.pipelines.demo.recipe import Recipe
from cococxr.pipelines.demo.stages import MASK_CLASS, image_root
from cococxr.pipelines.engine.evaluation import OVERLAY_DIR as SEG_OVERLAY_DIR
from cococxr.pipelines.engine.layout import Layout
from cococxr.pipelines.engine.runs import write_json
from cococxr.pipelines.segmentation.config import CURVES_FILE as SEG_CURVES_FILE
from cococxr.reports import HtmlReport, encode_png, image_grid, overlay_masks

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
GRID_TILES = 8


def classification_summary(metrics: dict) -> dict:
    """The headline numbers of a classifier evaluation: at the tuned threshold when there is one."""
    decision = "tuned threshold" if metrics.get("tuned") else "most probable class"
    report = metrics["tuned"] or metrics["default"]
    positive = report["per_class"].get(metrics["positive_class"], {})
    return {"decision": decision, "positive_class": metrics["positive_class"],
            "threshold": metrics["threshold"], "num_images": metrics["num_images"],
            "class_counts": metrics["class_counts"], "accuracy": report["accuracy"],
            "balanced_accuracy": report["balanced_accuracy"], "macro_f1": report["macro_f1"],
            "cohen_kappa": report["cohen_kappa"], "sensitivity": positive.get("recall"),
            "precision": positive.get("precision"), "roc_auc": report["roc_auc"]["value"],
            "roc_auc_ci": [report["roc_auc"]["ci_low"], report["roc_auc"]["ci_high"]],
            "confusion_matrix": report["confusion_matrix"], "class_names": report["class_names"],
            "most_probable_class": {k: metrics["default"][k] for k in ("accuracy", "balanced_accuracy")}}


def demo_metrics(cfg: DemoConfig, recipe: Recipe, facts: dict, results: dict, seconds: dict) -> dict:
    """The content of ``metrics.json``."""
    seg_test, seg_train = results["seg_test"], results["seg_train"]
    explained = results["gradcam"]
    return {
        "data": {**facts["data"], "split": facts["split"]},
        "devices": facts["devices"],
        "recipe": dataclasses.asdict(recipe),
        "segmentation": {
            "evaluated_on": "test", "num_images": seg_test["num_images"],
            **{k: seg_test[k] for k in ("dice", "iou", "hausdorff_95", "segm_AP", "segm_AP50", "segm_AP75")},
            "val_dice": seg_train["dice"], "epochs": seg_train["epochs"], "best_epoch": seg_train["best_epoch"],
            "stopped_by_budget": seg_train["stopped_by_budget"], "ms_per_image": seg_test["ms_per_image"],
            "params": seg_test["params"]},
        "classification": {
            "evaluated_on": "test", **classification_summary(results["cls_test"]),
            "epochs": results["cls_train"]["epochs"], "stopped_by_budget": results["cls_train"]["stopped_by_budget"],
            "params": results["cls_train"]["params"]},
        "gradcam": {k: explained[k] for k in ("method", "layer", "mask_source", "n_images", "n_measured",
                                               "mean_in_lung_energy", "median_in_lung_energy",
                                               "mean_lung_fraction")},
        "timings": timings_table(seconds),
        "config": config_to_dict(cfg),
    }


def timings_table(seconds: dict) -> dict:
    """Seconds per stage, rounded, and their ``total``."""
    return {**{name: round(value, 2) for name, value in seconds.items()}, "total": round(sum(seconds.values()), 2)}


def _image_grid_png(paths: list[Path], columns: int = 4, tile: int = 256) -> bytes | None:
    """One PNG tiling the images at ``paths``, each scaled to ``tile`` pixels wide (None when there are none)."""
    images = [read_image(p) for p in paths]
    if not images:
        return None
    height, width = images[0].shape[:2]
    first = cv2.resize(images[0], (tile, round(height * tile / width)), interpolation=cv2.INTER_LINEAR)
    return encode_png(image_grid([first, *images[1:]], columns=min(columns, len(images))))


def _unmasked_lungs_png(layout: Layout) -> bytes | None:
    """Predicted lungs (filled) over the images that have no hand-drawn mask."""
    coco = CocoDataset(layout.split_file("all"), image_root(layout))
    masked = set(coco.img_ids(cat_names=[MASK_CLASS]))
    tiles = []
    for image_id in [i for i in coco.imgs if i not in masked][:GRID_TILES]:
        name = Path(str(coco.imgs[image_id]["file_name"])).with_suffix(".png")
        tiles.append(overlay_masks(read_image(coco.image_path(image_id)), read_mask(layout.lungs / name),
                                   alpha=0.35))
    return encode_png(image_grid(tiles, columns=4)) if tiles else None


def _add_image(report, png: bytes | None, caption: str) -> None:
    if png is not None:
        report.image(png, caption)


def _counts(counts: dict) -> str:
    """``{"a": 1, "b": 2}`` -> ``"a 1, b 2"``."""
    return ", ".join(f"{name} {n}" for name, n in counts.items())


def _data_section(report, metrics: dict) -> None:
    data = metrics["data"]
    parts = _counts({name: part["images"] for name, part in data["split"].items()})
    report.paragraph(f"{data['images']} chest X-rays of {data['patients']} patients from {data['source']} "
                     f"({data['with_masks']} with a hand-drawn lung mask; labels: {_counts(data['labels'])}), "
                     f"split by patient into {parts} images. TensorFlow devices: {', '.join(metrics['devices'])}. "
                     f"The metrics are measured on the test images, which no model trained on (val_ ones on "
                     f"validation).")
    report.heading("Timings (seconds)")
    report.table(metrics["timings"])


def _segmentation_section(report, layout: Layout, metrics: dict) -> None:
    seg, recipe = metrics["segmentation"], metrics["recipe"]
    report.heading("1. Lung segmentation")
    report.paragraph(f"{recipe['seg_arch']} (filters {tuple(recipe['seg_filters'])}) trained from scratch at "
                     f"{recipe['seg_size']} px, {seg['epochs']} epoch(s) (bce+Dice, Adam, light augmentation; kept "
                     f"at its best validation Dice). Test images: prediction filled red, hand-drawn mask outlined "
                     f"green.")
    report.table({k: seg[k] for k in ("num_images", "dice", "iou", "hausdorff_95", "segm_AP", "segm_AP50",
                                       "segm_AP75", "val_dice", "ms_per_image")})
    _add_image(report, _file(layout.seg_run / SEG_CURVES_FILE), "learning curves (train and validation)")
    _add_image(report, _file(layout.seg_test / SEG_OVERLAY_DIR / "best.png"), "best test images (Dice)")
    _add_image(report, _file(layout.seg_test / SEG_OVERLAY_DIR / "worst.png"), "worst test images (Dice)")
    _add_image(report, _unmasked_lungs_png(layout), "predicted lungs of the images without a hand-drawn mask")


def _classification_section(report, layout: Layout, metrics: dict, evaluation: dict) -> None:
    cls, positive = metrics["classification"], metrics["classification"]["positive_class"]
    report.heading("2. Classification of the lung-masked images")
    report.paragraph(f"{metrics['recipe']['cls_model']} from scratch on the images masked by the U-Net above, "
                     f"{positive} vs other, class-balanced batches, threshold tuned for F1 on validation. With "
                     f"{_counts(cls['class_counts'])} test images these numbers show that the pipeline runs end to "
                     f"end; they say little about how well {positive} can be told apart.")
    report.table({k: cls[k] for k in ("decision", "threshold", "accuracy", "balanced_accuracy", "sensitivity",
                                       "precision", "macro_f1", "roc_auc")})
    add_report_sections(report, layout.cls_test, evaluation)
    _add_image(report, _file(layout.cls_run / CLS_CURVES_FILE), "classifier learning curves")


def _gradcam_section(report, layout: Layout, metrics: dict, explained: dict) -> None:
    cam = metrics["gradcam"]
    report.heading("3. Grad-CAM: where the classifier looked")
    report.paragraph(f"{cam['method']} at layer {cam['layer']}, lungs from the {cam['mask_source']} (green "
                     f"outline). Mean share of heatmap energy inside the lungs: "
                     f"{_percent(cam['mean_in_lung_energy'])}; the lungs cover {_percent(cam['mean_lung_fraction'])} "
                     f"of the image on average, which is what an evenly spread heatmap would score. Well above that, "
                     f"the classifier looked at the lungs; below it, at what surrounds them.")
    overlays = [layout.gradcam / GRADCAM_OVERLAY_DIR / Path(row["file_name"]).with_suffix(".png")
                for row in explained["per_image"][:GRID_TILES]]
    _add_image(report, _image_grid_png(overlays), "Grad-CAM over what the classifier saw")


def write_report(layout: Layout, metrics: dict, results: dict) -> Path:
    """Stage 9 (page): ``report.html``, every plot embedded."""
    report = HtmlReport(f"cococxr demo: lungs, then {metrics['classification']['positive_class']} on the lungs alone")
    _data_section(report, metrics)
    _segmentation_section(report, layout, metrics)
    _classification_section(report, layout, metrics, results["cls_test"])
    _gradcam_section(report, layout, metrics, results["gradcam"])
    if metrics["config"]["images"] is None:
        report.paragraph("Sample images: COVID-19 image data collection (Cohen et al.), lung masks by V7 Labs; "
                         "each under the licence in cococxr/sample/metadata.csv, see cococxr/sample/ATTRIBUTION.md. "
                         "Not for clinical use.")
    report.heading("Settings")
    report.json_block({"recipe": metrics["recipe"], "config": metrics["config"]})
    return report.write(layout.root / REPORT_FILE)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _file(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def report_stage(layout: Layout, cfg: DemoConfig, recipe: Recipe, facts: dict, results: dict, clock) -> dict:
    """Stage 9: ``metrics.json`` (timings of stages 1-8 and of this one) and ``report.html``."""
    start = time.perf_counter()
    metrics = demo_metrics(cfg, recipe, facts, results, clock.seconds)
    write_report(layout, metrics, results)
    metrics["timings"] = timings_table({**clock.seconds, "report": time.perf_counter() - start})
    write_json(layout.root / METRICS_FILE, metrics)
    return metrics


__all__ = ["REPORT_FILE", "METRICS_FILE", "classification_summary", "demo_metrics", "timings_table",
           "write_report", "report_stage"]
