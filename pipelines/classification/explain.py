"""``cococxr explain``: Grad-CAM heatmaps of a classifier and the share of their energy in the lungs.

Each image is fed as the classifier's sidecar describes (what the model saw, masked or
not), a Grad-CAM or Grad-CAM++ heatmap of the predicted (or chosen) class is computed at
a chosen layer or the last convolutional feature map (:mod:`cococxr.explain`), and the
share of the heatmap's energy inside the lung mask is measured
(:func:`cococxr.explain.in_mask_energy_share`). A classifier that looks at text burned
into the film, borders or devices has a low share; compare it with ``lung_fraction``,
the share of the image the lungs cover (what a heatmap spread evenly would score).

Lung masks, in this order: ``masks_dir`` (mask images named like the images),
``mask_coco`` (lung annotations of a COCO file, matched by file name), ``seg_model``
(predicted, > 0.5); by default the classifier's own masking (its U-Net, or the lung
masks of a COCO input). Without any, heatmaps are drawn and shares left empty.

Writes to ``out``: ``overlays/<image>.png`` (heatmap over what the model saw, lung
outline in green, caption), ``energy.csv`` (one row per image) and ``energy.json``
(the summary and the rows).
"""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from cococxr.atomic import atomic_open
from cococxr.coco import CocoDataset
from cococxr.errors import ConfigError
from cococxr.explain import grad_cam, grad_cam_plus_plus, in_mask_energy_share, last_conv_layer, overlay_heatmap
from cococxr.io import read_image, read_mask
from cococxr.masks import annotations_to_channels
from cococxr.paths import safe_join
from cococxr.pipelines.classification.config import GRADCAM_METHODS
from cococxr.pipelines.classification.data import input_coco
from cococxr.pipelines.engine.classifier import classifier_sequence, load_classifier, mask_source
from cococxr.pipelines.engine.images import list_images
from cococxr.pipelines.engine.runs import write_json
from cococxr.pipelines.engine.segmenter import LungMasker
from cococxr.preprocess import resize_mask
from cococxr.reports import overlay_masks, write_png_rgb

log = logging.getLogger(__name__)
OVERLAY_DIR = "overlays"
CSV_FILE = "energy.csv"
JSON_FILE = "energy.json"


def _folder_masks(folder: Path, coco, size: int):
    """Lung masks from a folder of mask images named like the images (any image suffix)."""
    by_stem = {p.stem: p for p in list_images(folder, recursive=True)}

    def masks(image_ids, batch):
        out = []
        for image_id in image_ids:
            path = by_stem.get(Path(str(coco.imgs[image_id]["file_name"])).stem)
            if path is None:
                out.append(None)
                continue
            mask = read_mask(path)
            mask = (mask.max(axis=2) if mask.ndim == 3 else mask) > 0
            out.append(resize_mask(mask.astype(np.uint8), (size, size)))
        return out

    return masks


def _coco_masks(mask_coco, coco, mask_classes, size: int):
    """Lung masks from a COCO file's annotations, matched by file name (then by base name)."""
    cat_ids = [i for i, cat in mask_coco.cats.items() if cat["name"] in set(mask_classes)]
    if not cat_ids:
        raise ConfigError(f"{mask_coco.source} has no mask category among {list(mask_classes)}")
    by_name = {}
    for image_id, record in mask_coco.imgs.items():
        by_name.setdefault(str(record["file_name"]), image_id)
        by_name.setdefault(Path(str(record["file_name"])).name, image_id)

    def masks(image_ids, batch):
        out = []
        for image_id in image_ids:
            name = str(coco.imgs[image_id]["file_name"])
            match = by_name.get(name, by_name.get(Path(name).name))
            anns = [] if match is None else mask_coco.anns_for(match, cat_ids, geometry=True)
            if not anns:
                out.append(None)
                continue
            record = mask_coco.imgs[match]
            out.append(annotations_to_channels(anns, int(record["height"]), int(record["width"]), cat_ids,
                                               size=(size, size)).max(axis=2))
        return out

    return masks


def _model_masks(masker, coco, size: int):
    """Lung masks predicted by a :class:`~cococxr.pipelines.engine.segmenter.LungMasker`.

    The masker reads each decoded image, as the classifier's Sequence gives it (so the
    outline is the mask the classifier was shown).
    """
    def masks(image_ids, batch):
        images = [read_image(coco.image_path(image_id)) for image_id in image_ids]
        return list((masker.mask_images(images, (size, size)) > 0.5).astype(np.uint8))

    return masks


def lung_source(sidecar, coco, *, masks_dir=None, mask_coco=None, seg_model=None, model_masker=None):
    """``(name, masks(image_ids, unmasked batch) -> [mask or None])`` or ``(None, None)``."""
    given = [s for s in (masks_dir, mask_coco, seg_model) if s is not None]
    if len(given) > 1:
        raise ConfigError("give at most one lung mask source: --masks, --coco or --seg-model")
    size = sidecar.input_size
    if masks_dir is not None:
        return f"masks folder {masks_dir}", _folder_masks(Path(masks_dir), coco, size)
    if mask_coco is not None:
        return f"COCO file {mask_coco}", _coco_masks(CocoDataset(mask_coco, validate=False), coco,
                                                     sidecar.mask_classes, size)
    if seg_model is not None:
        return f"segmentation model {seg_model}", _model_masks(LungMasker(seg_model, sidecar.mask_classes), coco, size)
    if isinstance(model_masker, LungMasker):
        return f"segmentation model {sidecar.mask_with}", _model_masks(model_masker, coco, size)
    if sidecar.mask_with == "coco":
        return f"COCO file {coco.source}", _coco_masks(coco, coco, sidecar.mask_classes, size)
    return None, None


def _overlay(image, heatmap, mask, caption: str, alpha: float) -> np.ndarray:
    rgb = overlay_heatmap(image, heatmap, alpha)
    if mask is not None:
        rgb = overlay_masks(rgb, mask, colors=[(0, 255, 0)], contour_only=True)
    cv2.putText(rgb, caption, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return rgb


def _summary(rows: list[dict]) -> dict:
    shares = np.array([np.nan if r["in_lung_energy"] is None else r["in_lung_energy"] for r in rows], float)
    fractions = np.array([np.nan if r["lung_fraction"] is None else r["lung_fraction"] for r in rows], float)
    measured = ~np.isnan(shares)
    return {"n_images": len(rows), "n_measured": int(measured.sum()),
            "mean_in_lung_energy": float(shares[measured].mean()) if measured.any() else None,
            "median_in_lung_energy": float(np.median(shares[measured])) if measured.any() else None,
            "mean_lung_fraction": float(fractions[measured].mean()) if measured.any() else None}


def explain_classifier(model_path, inputs: list, out, *, method: str = "gradcam", layer: str | None = None,
                       class_name: str | None = None, masks_dir=None, mask_coco=None, seg_model=None,
                       image_root=None, recursive: bool = False, batch_size: int = 8, alpha: float = 0.4,
                       progress: bool = True) -> dict:
    """Grad-CAM a classifier on images and measure the heatmap energy inside the lungs.

    Args:
        model_path: the classifier file, its sidecar beside it.
        inputs: image files and folders, or one COCO JSON path.
        out: output folder (see the module docstring).
        method: ``"gradcam"`` or ``"gradcam++"``.
        layer: layer to explain (nested models searched); None: the last convolutional one.
        class_name: class to explain; None: each image's most probable class.
        masks_dir, mask_coco, seg_model: the lung mask source (at most one; see the module docstring).
        image_root: image folder of a COCO input.
        recursive: search folders recursively.
        batch_size: images per batch.
        alpha: heatmap opacity in the overlays.
        progress: show a progress bar.

    Returns:
        ``energy.json``'s content: the summary (``mean_in_lung_energy``, ...) and ``per_image`` rows.
    """
    if method not in GRADCAM_METHODS:
        raise ConfigError(f"method must be one of {GRADCAM_METHODS}, got {method!r}")
    model, sidecar = load_classifier(model_path)
    if class_name is not None and class_name not in sidecar.class_names:
        raise ConfigError(f"class {class_name!r} is not one of {sidecar.class_names}")
    coco = input_coco(inputs if isinstance(inputs, (list, tuple)) else [inputs], image_root, recursive)
    model_masker = mask_source(sidecar.mask_with, sidecar.mask_classes)
    seen = classifier_sequence(coco, sidecar, masker=model_masker, subset="predict", batch_size=batch_size)
    plain = seen if model_masker is None else classifier_sequence(coco, sidecar, subset="predict",
                                                                  batch_size=batch_size)
    source, lungs = lung_source(sidecar, coco, masks_dir=masks_dir, mask_coco=mask_coco, seg_model=seg_model,
                                model_masker=model_masker)
    if lungs is None:
        log.warning("no lung masks (give --masks, --coco or --seg-model): in-lung energy is not measured")
    layer = layer or last_conv_layer(model).name
    heatmaps_of = grad_cam if method == "gradcam" else grad_cam_plus_plus
    out = Path(out)
    rows = []
    for index in tqdm(range(len(seen)), desc="explaining", unit="batch", disable=not progress):
        x, ids = seen[index], seen.batch_image_ids(index)
        probs = np.asarray(model.predict_on_batch(x))
        explained = (np.full(len(x), sidecar.class_names.index(class_name)) if class_name is not None
                     else probs.argmax(axis=1))
        heatmaps = heatmaps_of(model, x, class_index=explained, layer_name=layer)
        masks = lungs(ids, plain[index]) if lungs is not None else [None] * len(x)
        for k, image_id in enumerate(ids):
            mask = masks[k] if masks[k] is not None and masks[k].any() else None
            share = None if mask is None else in_mask_energy_share(heatmaps[k], mask)
            share = None if share is None or np.isnan(share) else float(share)
            file_name = str(coco.imgs[image_id]["file_name"])
            name = sidecar.class_names[explained[k]]
            caption = f"{name} {probs[k, explained[k]]:.2f}" + ("" if share is None else f" | lungs {share:.0%}")
            write_png_rgb(safe_join(out / OVERLAY_DIR, str(Path(file_name).with_suffix(".png")), "overlay name"),
                          _overlay(x[k], heatmaps[k], mask, caption, alpha))
            rows.append({"image_id": image_id, "file_name": file_name,
                         "predicted": sidecar.class_names[int(probs[k].argmax())], "explained_class": name,
                         "probability": float(probs[k, explained[k]]), "in_lung_energy": share,
                         "lung_fraction": None if mask is None else float(mask.astype(bool).mean())})
    summary = {"model": str(model_path), "method": method, "layer": layer, "mask_source": source,
               "classifier_mask_with": sidecar.mask_with, **_summary(rows)}
    _write_csv(out / CSV_FILE, rows)
    result = {**summary, "per_image": rows}
    write_json(out / JSON_FILE, result)
    return result


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr explain`` (after :mod:`cococxr.pipelines.classification.commands` parsed it)."""
    result = explain_classifier(args.model, args.images, args.out, method=args.method, layer=args.layer,
                                class_name=args.class_name, masks_dir=args.masks_dir, mask_coco=args.mask_coco,
                                seg_model=args.seg_model, image_root=args.image_root, recursive=args.recursive,
                                batch_size=args.batch_size, alpha=args.alpha)
    share, fraction = result["mean_in_lung_energy"], result["mean_lung_fraction"]
    print(f"{result['n_images']} image(s), layer {result['layer']}, {result['method']}")
    if share is not None:
        print(f"heatmap energy inside the lungs: mean {share:.1%} over {result['n_measured']} image(s) "
              f"(the lungs cover {fraction:.1%} of the image on average)")
    print(f"-> {Path(args.out) / CSV_FILE}, {Path(args.out) / JSON_FILE}, {Path(args.out) / OVERLAY_DIR}/")
    return 0


__all__ = ["OVERLAY_DIR", "CSV_FILE", "JSON_FILE", "explain_classifier", "lung_source", "run"]
