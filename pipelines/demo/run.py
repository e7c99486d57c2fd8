"""``cococxr demo``: the whole pipeline on the embedded sample (or your folders), in one report.

Nine stages, each announced with a ``[k/9]`` line and its elapsed seconds:

1. **convert** the image and mask folders plus the metadata CSV to one COCO file
   (lung masks, the ``finding`` column as image-level labels, the patient as ``patient_id``);
2. **split** it by patient into train/val/test (60/20/20, stratified by label, seeded);
3. **train segmentation**: a lung U-Net (the recipe ``configs/demo.yaml``);
4. **evaluate segmentation** on test: Dice, IoU, HD95, COCO mask AP, best/worst overlays;
5. **predict lungs** for every image (mask PNGs and COCO results);
6. **train classifier**: positive label vs the rest on the U-Net-masked images, with
   class-balanced batches and the threshold tuned on validation;
7. **evaluate classifier** on test;
8. **Grad-CAM** on the test images, with the share of heatmap energy inside the lungs;
9. **report**: ``report.html`` (self-contained) and ``metrics.json``.

Everything goes under ``--out`` (default ``cococxr-demo``); the two models go to
``<out>/models/`` (``segmentation.h5`` and ``classifier.h5``, each with its model card
``<stem>.cococxr.json``), where
``cococxr app`` looks for them by default. Every stage reuses the pipeline function of the
matching ``cococxr`` command (:mod:`cococxr.pipelines.demo.stages`; stage 9 is
:mod:`cococxr.pipelines.demo.report`); this module runs them in order.
"""
from __future__ import annotations

import shlex
import time
from pathlib import Path

from cococxr.config import load_config
from cococxr.pipelines.demo.config import DemoConfig, input_folders
from cococxr.pipelines.demo.recipe import recipe_for
from cococxr.pipelines.demo.report import METRICS_FILE, REPORT_FILE, report_stage
from cococxr.pipelines.demo.stages import (convert, devices, evaluate_lungs, evaluate_masked_classifier, gradcam,
                                           predict_lungs, split, train_lungs, train_masked_classifier)
from cococxr.pipelines.engine.layout import Layout

STAGES = ("convert", "split", "train segmentation", "evaluate segmentation", "predict lungs",
          "train classifier", "evaluate classifier", "grad-cam", "report")


class StageClock:
    """Prints ``[k/n] stage ...`` lines and records each stage's seconds."""

    def __init__(self, names=STAGES, start: float | None = None):
        self.names = list(names)
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter() if start is None else start

    def run(self, name: str, what: str, fn, *args, **kwargs):
        """Announce stage ``name``, run ``fn(*args, **kwargs)``, print and record its time."""
        number = self.names.index(name) + 1
        print(f"[{number}/{len(self.names)}] {name}: {what} ...", flush=True)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - start
        print(f"[{number}/{len(self.names)}] {name} done in {self.seconds[name]:.1f} s "
              f"(total {self.total:.1f} s)", flush=True)
        return result

    @property
    def total(self) -> float:
        """Seconds since the clock started."""
        return time.perf_counter() - self._start


def run_pipeline(config=None, *, started: float | None = None, **overrides) -> dict:
    """Run the nine stages and write the output folder.

    Args:
        config: a :class:`DemoConfig`, a dict, a YAML/JSON file path, or None.
        started: ``time.perf_counter()`` when the command started (before TensorFlow was
            imported): the ``startup`` timing counts from it; default: now.
        **overrides: config fields that win over ``config`` (e.g. ``out=..., quick=True``).

    Returns:
        ``{"out", "report", "metrics_file", "seg_model", "cls_model", "metrics"}`` (paths as strings).
    """
    cfg = load_config(DemoConfig, config, **overrides)
    recipe = recipe_for(cfg)
    layout = Layout(cfg.out)
    input_folders(cfg)  # a bad combination of options fails before any stage runs
    clock = StageClock(start=started)
    facts = {"devices": devices()}
    clock.seconds["startup"] = clock.total  # importing TensorFlow, listing its devices
    print(f"cococxr demo -> {layout.root}  (TensorFlow devices: {', '.join(facts['devices'])})", flush=True)
    facts["data"] = clock.run("convert", "image + mask folders and metadata -> COCO", convert, cfg, layout)
    facts["split"] = clock.run("split", "train/val/test by patient", split, layout, cfg.seed)
    results = {}
    results["seg_train"] = clock.run("train segmentation", f"{recipe.seg_arch} at {recipe.seg_size} px, "
                                     f"epochs {recipe.seg_epochs}", train_lungs, layout, recipe, cfg.seed)
    results["seg_test"] = clock.run("evaluate segmentation", "test images", evaluate_lungs, layout)
    clock.run("predict lungs", "every image", predict_lungs, layout)
    results["cls_train"] = clock.run("train classifier", f"{recipe.cls_model} on U-Net-masked images",
                                     train_masked_classifier, layout, recipe, cfg)
    results["cls_test"] = clock.run("evaluate classifier", "test images", evaluate_masked_classifier,
                                    layout, recipe, cfg.seed)
    results["gradcam"] = clock.run("grad-cam", "test images", gradcam, layout)
    metrics = clock.run("report", "report.html and metrics.json", report_stage, layout, cfg, recipe, facts,
                        results, clock)
    return {"out": str(layout.root), "report": str(layout.root / REPORT_FILE),
            "metrics_file": str(layout.root / METRICS_FILE), "seg_model": str(layout.seg_model),
            "cls_model": str(layout.cls_model), "metrics": metrics}


def summary_lines(result: dict) -> list[str]:
    """What the command prints at the end: headline numbers, the report and the app command."""
    m = result["metrics"]
    seg, cls, cam = m["segmentation"], m["classification"], m["gradcam"]

    def fmt(value, spec=".3f"):
        return "n/a" if value is None else format(value, spec)

    return [
        f"segmentation (test, {seg['num_images']} images): Dice {fmt(seg['dice'])}  IoU {fmt(seg['iou'])}  "
        f"HD95 {fmt(seg['hausdorff_95'], '.1f')} px  AP {fmt(seg['segm_AP'])}",
        f"classifier (test, {cls['num_images']} images, {cls['decision']}): accuracy {fmt(cls['accuracy'])}  "
        f"balanced accuracy {fmt(cls['balanced_accuracy'])}  AUC {fmt(cls['roc_auc'])}",
        f"Grad-CAM energy inside the lungs: {fmt(cam['mean_in_lung_energy'], '.1%')}",
        f"total {m['timings']['total']:.0f} s",
        f"report: {Path(result['report']).resolve()}",
        "try the models in the app:",
        f"  cococxr app --seg-model {shlex.quote(result['seg_model'])} --cls-model {shlex.quote(result['cls_model'])}",
    ]


def main(config: DemoConfig, started: float | None = None) -> int:
    """Run the demo with a resolved config and print the summary (``cococxr demo``)."""
    result = run_pipeline(config, started=started)
    print("\n".join(summary_lines(result)))
    return 0


__all__ = ["STAGES", "StageClock", "run_pipeline", "summary_lines", "main"]
