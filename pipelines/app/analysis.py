"""The app's analysis of one chest X-ray: lung masks, class probabilities and decision, Grad-CAM.

Inputs reuse the pipelines' own code paths (:func:`~cococxr.pipelines.engine.segmenter.predict_probabilities`,
:func:`~cococxr.pipelines.engine.classifier.classifier_sequence`,
:func:`~cococxr.pipelines.engine.classifier.prediction_rows`), so the app feeds the models
what training fed them. Uploads go through :func:`cococxr.uploads.save_upload` into a
private temporary folder that is deleted as soon as the image is analysed. Models and
analyses are cached by Streamlit (per file version, per upload content).
"""
from __future__ import annotations

import contextlib
import csv
import json
import shutil
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import streamlit as st

from cococxr.coco import CocoBuilder
from cococxr.errors import ConfigError
from cococxr.explain import grad_cam, in_mask_energy_share, overlay_heatmap
from cococxr.io import read_image
from cococxr.masks import mask_to_annotations
from cococxr.pipelines.app.settings import Settings
from cococxr.pipelines.engine.classifier import (MASK_MODES, Predictions, classifier_sequence, load_classifier,
                                                 prediction_rows)
from cococxr.pipelines.engine.segmenter import LungMasker, predict_probabilities
from cococxr.preprocess import resize_mask
from cococxr.reports import encode_png, overlay_masks
from cococxr.uploads import save_upload

MASK_THRESHOLD = 0.5
DISPLAY_SIZE = 512
LUNG_OUTLINE = (0, 255, 0)
_INFERENCE = threading.Lock()  # Grad-CAM patches layers while it runs: one inference at a time


@dataclass
class Models:
    """The loaded models: a lung masker (segmentation) and a classifier with its sidecar, each optional."""

    masker: object | None = None
    classifier: object | None = None
    sidecar: object | None = None
    seg_path: str | None = None
    cls_path: str | None = None

    def classifier_masker(self):
        """The ``mask_with`` the classifier's Sequence needs (None, ``"coco"`` or the lung masker)."""
        mode = self.sidecar.mask_with
        if mode == "none":
            return None
        if self.masker is None:
            raise ConfigError(f"the classifier was trained on lung-masked images (mask_with={mode!r}): "
                              f"give the segmentation model (cococxr app --seg-model MODEL)")
        return "coco" if mode == "coco" else self.masker


def _stamp(path: Path | None) -> tuple | None:
    """Cache key of a model file: path and modification time."""
    return None if path is None else (str(path.resolve()), path.stat().st_mtime_ns)


@st.cache_resource(show_spinner="Loading the models...")
def _load_models(seg_key: tuple | None, cls_key: tuple | None) -> Models:
    models = Models(seg_path=seg_key[0] if seg_key else None, cls_path=cls_key[0] if cls_key else None)
    if models.cls_path is not None:
        models.classifier, models.sidecar = load_classifier(models.cls_path)
        recorded = models.sidecar.mask_with
        if models.seg_path is None and recorded not in MASK_MODES and Path(recorded).is_file():
            models.seg_path = recorded  # the U-Net the classifier was trained with
    if models.seg_path is not None:
        models.masker = LungMasker(models.seg_path, models.sidecar.mask_classes if models.sidecar else ("lung",))
    return models


def load_models(settings: Settings) -> Models:
    """Load (once per file version) the models of ``settings``.

    Raises:
        ConfigError: a model file is missing or unusable.
    """
    for path in (settings.seg_model, settings.cls_model):
        if path is not None and not path.is_file():
            raise ConfigError(f"model file {path} does not exist")
    return _load_models(_stamp(settings.seg_model), _stamp(settings.cls_model))


@dataclass
class Analysis:
    """Everything the Predict page shows about one image.

    Attributes:
        file_name: the stored (sanitised) name of the image.
        overlay: RGB uint8, the image with the predicted masks (None without a segmentation model).
        classes: the segmentation model's classes (one colour each in ``overlay``).
        lung_fraction: share of the image inside the lung mask.
        probabilities: class name -> probability (None without a classifier).
        positive_class, threshold: the sidecar's tuned decision rule (threshold None: most probable).
        predicted: the decision; ``most_probable``: the arg-max class.
        gradcam: RGB uint8 Grad-CAM of the decided class over what the classifier saw.
        in_lung_energy: share of the Grad-CAM energy inside the lungs (None: no mask or no energy).
        mask_png: the lung mask as a 0/255 PNG.
        coco_json: the result as a COCO dataset (image, mask annotations, predicted label).
    """

    file_name: str
    overlay: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    lung_fraction: float | None = None
    probabilities: dict[str, float] | None = None
    positive_class: str | None = None
    threshold: float | None = None
    predicted: str | None = None
    most_probable: str | None = None
    gradcam: np.ndarray | None = None
    in_lung_energy: float | None = None
    mask_png: bytes | None = None
    coco_json: bytes = b""


def fit_display(rgb: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """Shrink an RGB image so that its longer side is at most ``size`` (area interpolation)."""
    scale = size / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _segment(masker, coco, image_id: int) -> np.ndarray:
    """Binary masks ``(H, W, K)`` at the image's size, predicted as ``predict segmentation`` does."""
    _, probs = next(predict_probabilities(masker.model, coco, masker.spec, [image_id], batch_size=1,
                                          progress=False))
    return (probs > MASK_THRESHOLD).astype(np.uint8)


def classify(models: Models, coco, image_id: int) -> tuple[np.ndarray, dict]:
    """What the classifier saw ``(S, S, C)`` and its ``prediction_rows`` row."""
    sequence = classifier_sequence(coco, models.sidecar, masker=models.classifier_masker(), subset="predict",
                                   batch_size=1, image_ids=[image_id])
    x = sequence[0]
    probs = np.asarray(models.classifier.predict_on_batch(x), np.float32)
    row = prediction_rows(Predictions([image_id], [coco.imgs[image_id]["file_name"]], probs), models.sidecar)[0]
    return x[0], row


def _explain(model, seen: np.ndarray, class_index: int,
             lung: np.ndarray | None) -> tuple[np.ndarray, float | None]:
    """Grad-CAM overlay of ``class_index`` (lung outline in green) and its in-lung energy share."""
    heatmap = grad_cam(model, seen[np.newaxis], class_index=[class_index])[0]
    rgb = overlay_heatmap(seen, heatmap)
    if lung is None or not lung.any():
        return rgb, None
    small = resize_mask(lung, heatmap.shape)
    share = in_mask_energy_share(heatmap, small)
    return overlay_masks(rgb, small, colors=[LUNG_OUTLINE], contour_only=True), None if np.isnan(share) else share


def _add_segmentation(result: Analysis, image: np.ndarray, masker, builder, image_id: int, root: Path,
                      cat_ids: list[int]) -> np.ndarray:
    """Predict the masks into ``result`` and (as RLE annotations) into ``builder``; return the lung mask."""
    masks = _segment(masker, builder.build(root, validate=False), image_id)
    for k, cat_id in enumerate(cat_ids):
        for ann in mask_to_annotations(masks[..., k], cat_id, image_id):
            builder.add_annotation(image_id, cat_id, ann["segmentation"])
    lung = masks[..., masker.channels].max(axis=2)
    result.classes = list(masker.spec.classes)
    result.overlay = fit_display(overlay_masks(image, masks))
    result.lung_fraction = float(lung.mean())
    result.mask_png = encode_png(lung * 255)
    return lung


def _add_classification(result: Analysis, models: Models, coco, image_id: int, lung: np.ndarray | None) -> int:
    """Classify and explain into ``result``; return the index of the decided class."""
    seen, row = classify(models, coco, image_id)
    sidecar = models.sidecar
    result.probabilities = {name: row[f"prob_{name}"] for name in sidecar.class_names}
    result.positive_class, result.threshold = sidecar.positive_class, sidecar.threshold
    result.predicted, result.most_probable = row["predicted"], row["most_probable"]
    decided = sidecar.class_names.index(result.predicted)
    result.gradcam, result.in_lung_energy = _explain(models.classifier, seen, decided, lung)
    return decided


def _coco_bytes(dataset: dict, models: Models, result: Analysis) -> bytes:
    """The result's COCO JSON; ``info`` names the models and holds the probabilities and threshold."""
    info = {"description": "cococxr app prediction", "segmentation_model": models.seg_path,
            "classifier": models.cls_path, "probabilities": result.probabilities,
            "positive_class": result.positive_class, "threshold": result.threshold}
    return json.dumps({"info": info, **dataset}, indent=2).encode()


def analyze_image(path: Path, models: Models) -> Analysis:
    """Segment, classify and explain one image file.

    Raises:
        CococxrError: unreadable image, or models that cannot be applied to it.
    """
    image = read_image(path)
    builder = CocoBuilder()
    seg_names = models.masker.spec.classes if models.masker else []
    cls_names = models.sidecar.class_names if models.sidecar else []
    seg_cats = [builder.add_category(name, "anatomy") for name in seg_names]
    cls_cats = [builder.add_category(name, "finding") for name in cls_names]
    image_id = builder.add_image(path.name, *image.shape[:2])
    result, lung = Analysis(file_name=path.name), None
    if models.masker is not None:
        lung = _add_segmentation(result, image, models.masker, builder, image_id, path.parent, seg_cats)
    if models.classifier is not None:
        decided = _add_classification(result, models, builder.build(path.parent, validate=False), image_id, lung)
        builder.add_label(image_id, cls_cats[decided])
        builder.annotations[-1]["score"] = result.probabilities[result.predicted]
    result.coco_json = _coco_bytes(builder.build(validate=True).dataset, models, result)
    return result


@contextlib.contextmanager
def stored_upload(data: bytes, name: str, max_bytes: int):
    """Check and store an upload (:func:`cococxr.uploads.save_upload`); delete its folder afterwards."""
    path = save_upload(data, name, max_bytes)
    try:
        yield path
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


@st.cache_data(max_entries=8, show_spinner="Segmenting, classifying and explaining...")
def _cached_analysis(data: bytes, name: str, max_bytes: int, seg_key: tuple | None,
                     cls_key: tuple | None) -> Analysis:
    models = _load_models(seg_key, cls_key)
    with stored_upload(data, name, max_bytes) as path, _INFERENCE:
        return analyze_image(path, models)


def analyze_upload(data: bytes, name: str, settings: Settings) -> Analysis:
    """Analyse uploaded bytes with the models of ``settings`` (cached per content and models).

    Raises:
        CococxrError: oversized or non-image upload, unreadable image, unusable models.
    """
    load_models(settings)
    return _cached_analysis(data, name, settings.max_upload_bytes, _stamp(settings.seg_model),
                            _stamp(settings.cls_model))


def sample_images() -> dict[str, str]:
    """The embedded sample's image names, each with its finding from ``metadata.csv`` ("" if none)."""
    root = resources.files("cococxr.sample")
    with (root / "metadata.csv").open(encoding="utf-8", newline="") as fh:
        findings = {row["filename"]: row["finding"] for row in csv.DictReader(fh)}
    names = sorted(p.name for p in (root / "images").iterdir() if p.name.lower().endswith(".png"))
    return {name: findings.get(name, "") for name in names}


def sample_bytes(name: str) -> bytes:
    """The bytes of an embedded sample image."""
    return (resources.files("cococxr.sample") / "images" / name).read_bytes()


__all__ = ["MASK_THRESHOLD", "DISPLAY_SIZE", "Models", "load_models", "Analysis", "fit_display", "classify", "analyze_image",
           "stored_upload", "analyze_upload", "sample_images", "sample_bytes"]
