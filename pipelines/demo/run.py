"""``cococxr demo``: the whole pipeline on the embedded sample (or your folders), in one report.

Nine stages, each announced with a ``[k/9]`` line and its elapsed seconds:

1. **convert** the image and mask folders plus the metadata CSV to one COCO file
   (lung masks, the ``finding`` column as image-level labels, the patient as ``patient_id``);
2. **split** it by patient into train/val/test (60/20/20, stratified by label, seeded);
3. **train segmentation**: a lung U-Net (:data:`DEFAULT_RECIPE`);
4. **evaluate segmentation** on test: Dice, IoU, HD95, COCO mask AP, best/worst overlays;
5. **predict lungs** for every image (mask PNGs and COCO results);
6. **train classifier**: positive label vs the rest on the U-Net-masked images, with
   class-balanced batches and the threshold tuned on validation;
7. **evaluate classifier** on test;
8. **Grad-CAM** on the test images, with the share of heatmap energy inside the lungs;
9. **report**: ``report.html`` (self-contained) and ``metrics.json``.

Everything goes under ``--out`` (default ``cococxr-demo``); the two models go to
``<out>/models/`` (``segmentation.h5`` with the ``config.json`` its input settings are read
from, ``classifier.h5`` with its ``classifier.cococxr.json`` sidecar), where
``cococxr app`` looks for them by default. Every stage reuses the pipeline function of the
matching ``cococxr`` command; this module only chooses the recipe and wires them together.
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import shutil
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from cococxr.errors import ConfigError
from cococxr.config import add_config_arguments, config_from_args, config_to_dict, load_config, option

SAMPLE_PACKAGE = "cococxr.sample"
MASK_CLASS = "lung"
SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}
STAGES = ("convert", "split", "train segmentation", "evaluate segmentation", "predict lungs",
          "train classifier", "evaluate classifier", "grad-cam", "report")
REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
GRID_TILES = 8


@dataclass
class DemoConfig:
    """Settings of ``cococxr demo`` (flags and config-file keys)."""

    out: str = option("cococxr-demo", "output folder (models in OUT/models, where 'cococxr app' looks)",
                      metavar="DIR")
    images: str | None = option(None, "your image folder (default: the embedded sample)", metavar="DIR")
    masks: str | None = option(None, "your lung mask folder, masks named like the images", metavar="DIR")
    metadata: str | None = option(None, "your metadata CSV (one row per image)", metavar="CSV")
    metadata_key: str = option("filename", "metadata column naming the image file", metavar="COLUMN")
    label_column: str = option("finding", "metadata column with the image-level label", metavar="COLUMN")
    patient_column: str = option("patientid", "metadata column with the patient id (the split keeps "
                                              "each patient in one part)", metavar="COLUMN")
    mask_suffix: str | None = option(None, "mask stem = image stem + SUFFIX (e.g. _mask)", metavar="SUFFIX")
    positive_label: str = option("COVID-19", "label the classifier tells from every other label",
                                 metavar="LABEL")
    quick: bool = option(False, "smoke test: 64x64 inputs, one epoch of two steps per model")
    epochs_seg: int | None = option(None, "segmentation epochs (default: the recipe's)", metavar="N")
    epochs_cls: int | None = option(None, "classifier epochs (default: the recipe's)", metavar="N")
    seed: int = option(0, "seed of the split, weights, sampling and augmentation")


@dataclass(frozen=True)
class Recipe:
    """The training settings the demo passes to the segmentation and classifier pipelines."""

    seg_arch: str = "plain_unet"
    seg_filters: tuple[int, ...] = (16, 32, 64, 128, 128)
    seg_size: int = 128
    seg_epochs: int = 40
    seg_batch: int = 4
    seg_lr: float = 1e-3
    seg_steps: int | None = None
    seg_seconds: float | None = 360.0
    # the small CNN of the classification study (docs/results.md): with Keras' BatchNorm
    # momentum, a classifier this short-trained predicts one class for every image
    cls_model: str = "cnn"
    cls_model_options: str = "base_filters=16;dense_units=64"
    cls_bn_momentum: float = 0.9
    cls_size: int = 128
    cls_epochs: int = 15
    cls_batch: int = 16
    cls_steps: int | None = None
    cls_seconds: float | None = 120.0
    n_boot: int = 1000


DEFAULT_RECIPE = Recipe()
QUICK_RECIPE = Recipe(seg_filters=(8, 16, 32, 64, 64), seg_size=64, seg_epochs=1, seg_steps=2, seg_seconds=None,
                      cls_size=64, cls_epochs=1, cls_batch=4, cls_steps=2, cls_seconds=None, n_boot=50)


def recipe_for(cfg: DemoConfig) -> Recipe:
    """The recipe of a config: default or quick, with the epoch overrides applied."""
    recipe = QUICK_RECIPE if cfg.quick else DEFAULT_RECIPE
    return dataclasses.replace(recipe, seg_epochs=cfg.epochs_seg or recipe.seg_epochs,
                               cls_epochs=cfg.epochs_cls or recipe.cls_epochs)


class Layout:
    """Where each stage writes, under the output folder ``root``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.data = self.root / "data"
        self.seg_run = self.root / "segmentation"
        self.seg_test = self.seg_run / "test"
        self.lungs = self.root / "predicted_lungs"
        self.cls_run = self.root / "classifier"
        self.cls_test = self.cls_run / "test"
        self.gradcam = self.root / "gradcam"
        self.models = self.root / "models"
        self.seg_model = self.models / "segmentation.h5"
        self.cls_model = self.models / "classifier.h5"

    def split_file(self, part: str) -> Path:
        """The COCO file of one split part (``all`` for the whole dataset)."""
        return self.data / f"{part}.json"


class StageClock:
    """Prints ``[k/n] stage ...`` lines and records each stage's seconds."""

    def __init__(self, names=STAGES):
        self.names = list(names)
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

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


def sample_folders() -> tuple[Path, Path, Path]:
    """``(images, masks, metadata.csv)`` of the embedded sample."""
    root = Path(str(files(SAMPLE_PACKAGE)))
    return root / "images", root / "masks", root / "metadata.csv"


def input_folders(cfg: DemoConfig) -> tuple[Path, Path, Path]:
    """The user's ``(images, masks, metadata)`` when all three are given, else the sample's."""
    given = {"images": cfg.images, "masks": cfg.masks, "metadata": cfg.metadata}
    if not any(given.values()):
        return sample_folders()
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise ConfigError(f"your own data needs --images, --masks and --metadata together; "
                          f"missing: {', '.join('--' + m for m in missing)}")
    return Path(cfg.images), Path(cfg.masks), Path(cfg.metadata)


def devices() -> list[str]:
    """The TensorFlow devices, e.g. ``["CPU:0", "GPU:0"]`` (TensorFlow uses a GPU when one is present)."""
    from cococxr._tf import tf

    return [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}" for d in tf.config.list_physical_devices()]


# ---------------------------------------------------------------- stages 1-2: data
def convert(cfg: DemoConfig, layout: Layout) -> dict:
    """Stage 1: folders + metadata -> ``data/all.json``; returns the dataset summary."""
    from cococxr.converters.mask_folders import convert_mask_folders
    from cococxr.pipelines.classification.labels import label_categories

    images, masks, metadata = input_folders(cfg)
    layout.data.mkdir(parents=True, exist_ok=True)
    dataset, _ = convert_mask_folders(
        images, masks, layout.split_file("all"), class_name=MASK_CLASS, mask_suffix=cfg.mask_suffix or "",
        allow_missing_masks=True, metadata=metadata, metadata_key=cfg.metadata_key,
        keep=f"{cfg.patient_column}:patient_id,{cfg.label_column}", label_column=cfg.label_column)
    labels = label_categories(dataset)
    if cfg.positive_label not in labels or len(labels) < 2:
        raise ConfigError(f"{metadata}: column {cfg.label_column!r} must hold the positive label "
                          f"{cfg.positive_label!r} and at least one other label; it holds {labels} "
                          f"(see --positive-label, --label-column)")
    return {"source": "the embedded sample" if cfg.images is None else str(images),
            "images": len(dataset.imgs), "with_masks": len(dataset.img_ids(cat_names=[MASK_CLASS])),
            "patients": len({img.get("patient_id") for img in dataset.imgs.values()}),
            "labels": {name: len(dataset.img_ids(cat_names=[name])) for name in labels}}


def split(layout: Layout, seed: int) -> dict:
    """Stage 2: split ``all.json`` by patient, stratified by label; returns the part sizes."""
    from cococxr.coco import STRATIFY_BY_LABELS, CocoDataset

    parts = CocoDataset(layout.split_file("all")).split(SPLIT, "patient_id", STRATIFY_BY_LABELS, seed=seed)
    sizes = {}
    for name, part in parts.items():
        part.write(layout.split_file(name))
        sizes[name] = {"images": len(part.imgs), "with_masks": len(part.img_ids(cat_names=[MASK_CLASS])),
                       "labels": {cat["name"]: len(part.img_ids(cat_names=[cat["name"]]))
                                  for cat in part.cats.values() if cat.get("supercategory") == "finding"}}
        if not sizes[name]["with_masks"]:
            raise ConfigError(f"the {name} part has no image with a lung mask; the data is too small to "
                              f"split 60/20/20 by patient (try another --seed or more images)")
    return sizes


# ---------------------------------------------------------------- stages 3-5: segmentation
def train_lungs(layout: Layout, recipe: Recipe, seed: int) -> dict:
    """Stage 3: train the lung U-Net, then publish it (and its config.json) in ``models/``."""
    from cococxr.pipelines.segmentation.train import CONFIG_FILE, train_segmentation

    result = train_segmentation(
        train=str(layout.split_file("train")), val=str(layout.split_file("val")), classes=[MASK_CLASS],
        arch=recipe.seg_arch, filters=list(recipe.seg_filters), input_size=recipe.seg_size, augment="light",
        loss="bce_dice", optimizer="adam", lr=recipe.seg_lr, epochs=recipe.seg_epochs,
        batch_size=recipe.seg_batch, steps_per_epoch=recipe.seg_steps, max_train_seconds=recipe.seg_seconds,
        seed=seed, out=str(layout.seg_run), tensorboard=False, overlays=4)
    layout.models.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result["model"], layout.seg_model)
    shutil.copyfile(layout.seg_run / CONFIG_FILE, layout.models / CONFIG_FILE)
    return result["metrics"]


def evaluate_lungs(layout: Layout) -> dict:
    """Stage 4: Dice, IoU, HD95 and AP of the published U-Net on the test images."""
    from cococxr.pipelines.segmentation.evaluate import evaluate_segmentation

    return evaluate_segmentation(layout.seg_model, str(layout.split_file("test")), out=layout.seg_test,
                                 overlays=4)


def predict_lungs(layout: Layout) -> dict:
    """Stage 5: lung mask PNGs and COCO results for every image."""
    from cococxr.pipelines.segmentation.predict import predict_segmentation

    return predict_segmentation(layout.seg_model, [str(layout.split_file("all"))], layout.lungs,
                                coco_out=layout.lungs / "lungs.json")


# ---------------------------------------------------------------- stages 6-8: classification
def train_masked_classifier(layout: Layout, recipe: Recipe, cfg: DemoConfig) -> dict:
    """Stage 6: positive label vs the rest on U-Net-masked images; publish it with its sidecar."""
    from cococxr.pipelines.classification.train import train_classifier
    from cococxr.pipelines.classification.thresholds import write_sidecar

    positive = cfg.positive_label
    result = train_classifier(
        train=str(layout.split_file("train")), val=str(layout.split_file("val")),
        classes=f"{positive}={positive};other=*", positive_class=positive, model=recipe.cls_model,
        model_options=recipe.cls_model_options, bn_momentum=recipe.cls_bn_momentum,
        mask_with=str(layout.seg_model.resolve()), mask_classes=[MASK_CLASS], input_size=recipe.cls_size,
        balance=True, augment="light", epochs=recipe.cls_epochs, batch_size=recipe.cls_batch,
        steps_per_epoch=recipe.cls_steps, max_train_seconds=recipe.cls_seconds, tune="f1",
        n_boot=recipe.n_boot, seed=cfg.seed, out=str(layout.cls_run), tensorboard=False)
    shutil.copyfile(result["model"], layout.cls_model)
    write_sidecar(layout.cls_model, result["sidecar"])
    return result["metrics"]


def evaluate_masked_classifier(layout: Layout, recipe: Recipe, seed: int) -> dict:
    """Stage 7: the published classifier on the test images."""
    from cococxr.pipelines.classification.evaluate import evaluate_classifier

    return evaluate_classifier(layout.cls_model, str(layout.split_file("test")), layout.cls_test,
                               n_boot=recipe.n_boot, seed=seed)


def gradcam(layout: Layout) -> dict:
    """Stage 8: Grad-CAM overlays of the test images and their in-lung energy share."""
    from cococxr.pipelines.classification.explain import explain_classifier

    return explain_classifier(layout.cls_model, [str(layout.split_file("test"))], layout.gradcam)


# ---------------------------------------------------------------- stage 9: report
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
    import cv2

    from cococxr.io import read_image
    from cococxr.reports import encode_png, image_grid

    images = [read_image(p) for p in paths]
    if not images:
        return None
    height, width = images[0].shape[:2]
    first = cv2.resize(images[0], (tile, round(height * tile / width)), interpolation=cv2.INTER_LINEAR)
    return encode_png(image_grid([first, *images[1:]], columns=min(columns, len(images))))


def _unmasked_lungs_png(layout: Layout) -> bytes | None:
    """Predicted lungs (filled) over the images that have no hand-drawn mask."""
    from cococxr.coco import CocoDataset
    from cococxr.io import read_image, read_mask
    from cococxr.reports import encode_png, image_grid, overlay_masks

    coco = CocoDataset(layout.split_file("all"))
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
    from cococxr.pipelines.segmentation.train import CURVES_FILE
    from cococxr.pipelines.segmentation.evaluate import OVERLAY_DIR

    seg, recipe = metrics["segmentation"], metrics["recipe"]
    report.heading("1. Lung segmentation")
    report.paragraph(f"{recipe['seg_arch']} (filters {recipe['seg_filters']}) trained from scratch at "
                     f"{recipe['seg_size']} px, {seg['epochs']} epoch(s) (bce+Dice, Adam, light augmentation; kept "
                     f"at its best validation Dice). Test images: prediction filled red, hand-drawn mask outlined "
                     f"green.")
    report.table({k: seg[k] for k in ("num_images", "dice", "iou", "hausdorff_95", "segm_AP", "segm_AP50",
                                       "segm_AP75", "val_dice", "ms_per_image")})
    _add_image(report, _file(layout.seg_run / CURVES_FILE), "learning curves (train and validation)")
    _add_image(report, _file(layout.seg_test / OVERLAY_DIR / "best.png"), "best test images (Dice)")
    _add_image(report, _file(layout.seg_test / OVERLAY_DIR / "worst.png"), "worst test images (Dice)")
    _add_image(report, _unmasked_lungs_png(layout), "predicted lungs of the images without a hand-drawn mask")


def _classification_section(report, layout: Layout, metrics: dict, evaluation: dict) -> None:
    from cococxr.pipelines.classification.train import CURVES_FILE
    from cococxr.pipelines.classification.evaluate import add_report_sections

    cls, positive = metrics["classification"], metrics["classification"]["positive_class"]
    report.heading("2. Classification of the lung-masked images")
    report.paragraph(f"{metrics['recipe']['cls_model']} from scratch on the images masked by the U-Net above, "
                     f"{positive} vs other, class-balanced batches, threshold tuned for F1 on validation. With "
                     f"{_counts(cls['class_counts'])} test images these numbers show that the pipeline runs end to "
                     f"end; they say little about how well {positive} can be told apart.")
    report.table({k: cls[k] for k in ("decision", "threshold", "accuracy", "balanced_accuracy", "sensitivity",
                                       "precision", "macro_f1", "roc_auc")})
    add_report_sections(report, layout.cls_test, evaluation)
    _add_image(report, _file(layout.cls_run / CURVES_FILE), "classifier learning curves")


def _gradcam_section(report, layout: Layout, metrics: dict, explained: dict) -> None:
    from cococxr.pipelines.classification.explain import OVERLAY_DIR

    cam = metrics["gradcam"]
    report.heading("3. Grad-CAM: where the classifier looked")
    report.paragraph(f"{cam['method']} at layer {cam['layer']}, lungs from the {cam['mask_source']} (green "
                     f"outline). Mean share of heatmap energy inside the lungs: "
                     f"{_percent(cam['mean_in_lung_energy'])}; the lungs cover {_percent(cam['mean_lung_fraction'])} "
                     f"of the image on average, which is what an evenly spread heatmap would score. Well above that, "
                     f"the classifier looked at the lungs; below it, at what surrounds them.")
    overlays = [layout.gradcam / OVERLAY_DIR / Path(row["file_name"]).with_suffix(".png")
                for row in explained["per_image"][:GRID_TILES]]
    _add_image(report, _image_grid_png(overlays), "Grad-CAM over what the classifier saw")


def write_report(layout: Layout, metrics: dict, results: dict) -> Path:
    """Stage 9 (page): ``report.html``, every plot embedded."""
    from cococxr.reports import HtmlReport

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


def report_stage(layout: Layout, cfg: DemoConfig, recipe: Recipe, facts: dict, results: dict,
                 clock: StageClock) -> dict:
    """Stage 9: ``metrics.json`` (timings of stages 1-8 and of this one) and ``report.html``."""
    from cococxr.pipelines.engine.runs import write_json

    start = time.perf_counter()
    metrics = demo_metrics(cfg, recipe, facts, results, clock.seconds)
    write_report(layout, metrics, results)
    metrics["timings"] = timings_table({**clock.seconds, "report": time.perf_counter() - start})
    write_json(layout.root / METRICS_FILE, metrics)
    return metrics


# ---------------------------------------------------------------- the whole run
def run_pipeline(config=None, **overrides) -> dict:
    """Run the nine stages and write the output folder.

    Args:
        config: a :class:`DemoConfig`, a dict, a YAML/JSON file path, or None.
        **overrides: config fields that win over ``config`` (e.g. ``out=..., quick=True``).

    Returns:
        ``{"out", "report", "metrics_file", "seg_model", "cls_model", "metrics"}`` (paths as strings).
    """
    cfg = load_config(DemoConfig, config, **overrides)
    recipe = recipe_for(cfg)
    layout = Layout(cfg.out)
    input_folders(cfg)  # a bad combination of options fails before TensorFlow loads
    clock = StageClock()
    facts = {"devices": devices()}
    clock.seconds["startup"] = clock.total  # importing TensorFlow
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


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr demo`` (the :class:`DemoConfig` schema)."""
    add_config_arguments(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr demo``."""
    result = run_pipeline(config_from_args(DemoConfig, args))
    print("\n".join(summary_lines(result)))
    return 0


__all__ = ["DemoConfig", "Recipe", "DEFAULT_RECIPE", "QUICK_RECIPE", "run_pipeline", "recipe_for", "summary_lines"]
