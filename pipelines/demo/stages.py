"""Stages 1-8 of ``cococxr demo``: each calls the pipeline function of the matching ``cococxr`` command.

This module only chooses the recipe's settings and where each stage writes
(:class:`~cococxr.pipelines.engine.layout.Layout`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from cococxr._tf import tf
from cococxr.coco import STRATIFY_BY_LABELS, CocoDataset
from cococxr.converters.mask_folders import convert_mask_folders
from cococxr.errors import ConfigError
from cococxr.pipelines.classification.evaluate import evaluate_classifier
from cococxr.pipelines.classification.explain import explain_classifier
from cococxr.pipelines.classification.labels import label_categories
from cococxr.pipelines.classification.train import train_classifier
from cococxr.pipelines.demo.config import DemoConfig, input_folders
from cococxr.pipelines.demo.recipe import Recipe
from cococxr.pipelines.engine.cards import card_path, write_sidecar
from cococxr.pipelines.engine.layout import Layout
from cococxr.pipelines.segmentation.evaluate import evaluate_segmentation
from cococxr.pipelines.segmentation.predict import predict_segmentation
from cococxr.pipelines.segmentation.train import train_segmentation

MASK_CLASS = "lung"
SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


def devices() -> list[str]:
    """The TensorFlow devices, e.g. ``["CPU:0", "GPU:0"]`` (TensorFlow uses a GPU when one is present)."""
    return [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}" for d in tf.config.list_physical_devices()]


# ---------------------------------------------------------------- stages 1-2: data
def convert(cfg: DemoConfig, layout: Layout) -> dict:
    """Stage 1: folders + metadata -> ``data/all.json``; returns the dataset summary."""
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


def image_root(layout: Layout) -> Path:
    """The images folder the demo's own ``all.json`` names (outside the run folder: a COCO file's
    own root is only trusted inside its folder, so the demo passes the root it wrote explicitly)."""
    path = layout.split_file("all")
    info = json.loads(path.read_text(encoding="utf-8")).get("info") or {}
    return (path.parent / info.get("image_root", ".")).resolve()


def split(layout: Layout, seed: int) -> dict:
    """Stage 2: split ``all.json`` by patient, stratified by label; returns the part sizes."""
    parts = CocoDataset(layout.split_file("all"), image_root(layout)).split(SPLIT, "patient_id", STRATIFY_BY_LABELS, seed=seed)
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
    """Stage 3: train the lung U-Net, then publish it (and its model card) in ``models/``."""
    result = train_segmentation(
        train=str(layout.split_file("train")), val=str(layout.split_file("val")), classes=[MASK_CLASS],
        arch=recipe.seg_arch, filters=list(recipe.seg_filters), input_size=recipe.seg_size, augment="light",
        equalize=None, loss="bce_dice", optimizer="adam", lr=recipe.seg_lr, epochs=recipe.seg_epochs,
        batch_size=recipe.seg_batch, steps_per_epoch=recipe.seg_steps, max_train_seconds=recipe.seg_seconds,
        seed=seed, out=str(layout.seg_run), tensorboard=False, overlays=4, image_root=str(image_root(layout)))
    layout.models.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result["model"], layout.seg_model)
    shutil.copyfile(card_path(result["model"]), card_path(layout.seg_model))
    return result["metrics"]


def evaluate_lungs(layout: Layout) -> dict:
    """Stage 4: Dice, IoU, HD95 and AP of the published U-Net on the test images."""
    return evaluate_segmentation(layout.seg_model, str(layout.split_file("test")), out=layout.seg_test,
                                 overlays=4, image_root=image_root(layout))


def predict_lungs(layout: Layout) -> dict:
    """Stage 5: lung mask PNGs and COCO results for every image."""
    return predict_segmentation(layout.seg_model, [str(layout.split_file("all"))], layout.lungs,
                                coco_out=layout.lungs / "lungs.json", image_root=image_root(layout))


# ---------------------------------------------------------------- stages 6-8: classification
def train_masked_classifier(layout: Layout, recipe: Recipe, cfg: DemoConfig) -> dict:
    """Stage 6: positive label vs the rest on U-Net-masked images; publish it with its sidecar."""
    positive = cfg.positive_label
    result = train_classifier(
        train=str(layout.split_file("train")), val=str(layout.split_file("val")),
        classes=f"{positive}={positive};other=*", positive_class=positive, model=recipe.cls_model,
        model_options=recipe.cls_model_options, bn_momentum=recipe.cls_bn_momentum,
        mask_with=str(layout.seg_model.resolve()), mask_classes=[MASK_CLASS], input_size=recipe.cls_size,
        balance=True, augment="light", epochs=recipe.cls_epochs, batch_size=recipe.cls_batch,
        steps_per_epoch=recipe.cls_steps, max_train_seconds=recipe.cls_seconds, tune="f1",
        n_boot=recipe.n_boot, seed=cfg.seed, out=str(layout.cls_run), tensorboard=False,
        image_root=str(image_root(layout)))
    shutil.copyfile(result["model"], layout.cls_model)
    write_sidecar(layout.cls_model, result["sidecar"])
    return result["metrics"]


def evaluate_masked_classifier(layout: Layout, recipe: Recipe, seed: int) -> dict:
    """Stage 7: the published classifier on the test images."""
    return evaluate_classifier(layout.cls_model, str(layout.split_file("test")), layout.cls_test,
                               n_boot=recipe.n_boot, seed=seed, image_root=image_root(layout))


def gradcam(layout: Layout) -> dict:
    """Stage 8: Grad-CAM overlays of the test images and their in-lung energy share."""
    return explain_classifier(layout.cls_model, [str(layout.split_file("test"))], layout.gradcam,
                              image_root=image_root(layout))


__all__ = ["MASK_CLASS", "SPLIT", "devices", "convert", "split", "train_lungs", "evaluate_lungs", "predict_lungs",
           "train_masked_classifier", "evaluate_masked_classifier", "gradcam"]
