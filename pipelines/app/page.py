"""The Streamlit demo app (``cococxr app``): predict on one chest X-ray, browse a COCO file.

Pages (sidebar):

* **Predict**: upload a PNG, JPEG or DICOM chest X-ray, or pick an embedded sample. The
  segmentation model's lung mask is drawn over it; the classifier gives its class
  probabilities, the tuned threshold of its sidecar and the decision; Grad-CAM shows
  where it looked and how much of that was inside the lungs. The mask (PNG) and the
  result as COCO JSON can be downloaded.
* **Browse COCO**: a COCO file (path or uploaded JSON): its summary, and any image with
  its annotations drawn by category and its image-level labels.

Settings come from the environment (``cococxr app`` sets them): ``COCOCXR_APP_SEG_MODEL``,
``COCOCXR_APP_CLS_MODEL`` (default: the models ``cococxr demo`` writes,
``./cococxr-demo/models/segmentation.h5`` and ``classifier.h5``) and ``COCOCXR_APP_MAX_UPLOAD_MB``. Uploads go through
:func:`cococxr.uploads.save_upload` into a private temporary folder that is deleted as
soon as the image is analysed. Inputs reuse the pipelines' own code paths
(``predict_probabilities``, ``classifier_sequence``, ``prediction_rows``), so the app
feeds the models what training fed them.

When Streamlit runs this file as ``__main__`` it imports itself as
``cococxr.pipelines.app.page`` and calls :func:`main`: classes, caches and the model lock
then live in one module object instead of being redefined at every rerun.
"""
from __future__ import annotations

import contextlib
import csv
import html
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import streamlit as st

from cococxr.errors import CococxrError, ConfigError
from cococxr.pipelines.app.launcher import ENV_CLS_MODEL, ENV_MAX_UPLOAD_MB, ENV_SEG_MODEL
from cococxr.uploads import MAX_UPLOAD_BYTES, save_upload

log = logging.getLogger(__name__)

DEMO_COMMAND = "cococxr demo"
MASK_THRESHOLD = 0.5
DISPLAY_SIZE = 512
LUNG_OUTLINE = (0, 255, 0)
PAGES = ("Predict", "Browse COCO")
DISCLAIMER = "A demonstration of cococxr, not a medical device: do not use it for diagnosis."
_INFERENCE = threading.Lock()  # Grad-CAM patches layers while it runs: one inference at a time


# ---------------------------------------------------------------- settings and models
@dataclass(frozen=True)
class Settings:
    """What the app runs with: model files (None: absent) and the upload limit."""

    seg_model: Path | None
    cls_model: Path | None
    max_upload_bytes: int = MAX_UPLOAD_BYTES

    @property
    def max_upload_mb(self) -> float:
        """The upload limit in MB."""
        return self.max_upload_bytes / 1024 / 1024


def demo_layout():
    """Where ``cococxr demo`` writes with its default ``--out`` (relative to the working folder)."""
    from cococxr.pipelines.demo.run import DemoConfig, Layout

    return Layout(DemoConfig().out)


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def settings_from_env(environ=os.environ) -> Settings:
    """Read the settings from the environment; unset models default to the demo's."""
    seg, cls = environ.get(ENV_SEG_MODEL), environ.get(ENV_CLS_MODEL)
    megabytes = float(environ.get(ENV_MAX_UPLOAD_MB) or MAX_UPLOAD_BYTES / 1024 / 1024)
    layout = demo_layout()
    return Settings(seg_model=Path(seg) if seg else _existing(layout.seg_model),
                    cls_model=Path(cls) if cls else _existing(layout.cls_model),
                    max_upload_bytes=int(megabytes * 1024 * 1024))


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
    from cococxr.pipelines.classification.data import MASK_MODES, LungMasker, load_classifier

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


# ---------------------------------------------------------------- one image
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


def _fit_display(rgb: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """Shrink an RGB image so that its longer side is at most ``size`` (area interpolation)."""
    import cv2

    scale = size / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _segment(masker, coco, image_id: int) -> np.ndarray:
    """Binary masks ``(H, W, K)`` at the image's size, predicted as ``predict segmentation`` does."""
    from cococxr.pipelines.segmentation.model import predict_probabilities

    _, probs = next(predict_probabilities(masker.model, coco, masker.spec, [image_id], batch_size=1,
                                          progress=False))
    return (probs > MASK_THRESHOLD).astype(np.uint8)


def _classify(models: Models, coco, image_id: int) -> tuple[np.ndarray, dict]:
    """What the classifier saw ``(S, S, C)`` and its ``prediction_rows`` row."""
    from cococxr.pipelines.classification.data import Predictions, classifier_sequence
    from cococxr.pipelines.classification.predict import prediction_rows

    sequence = classifier_sequence(coco, models.sidecar, masker=models.classifier_masker(), subset="predict",
                                   batch_size=1, image_ids=[image_id])
    x = sequence[0]
    probs = np.asarray(models.classifier.predict_on_batch(x), np.float32)
    row = prediction_rows(Predictions([image_id], [coco.imgs[image_id]["file_name"]], probs), models.sidecar)[0]
    return x[0], row


def _explain(model, seen: np.ndarray, class_index: int,
             lung: np.ndarray | None) -> tuple[np.ndarray, float | None]:
    """Grad-CAM overlay of ``class_index`` (lung outline in green) and its in-lung energy share."""
    from cococxr.explain import grad_cam, in_mask_energy_share, overlay_heatmap
    from cococxr.preprocess import resize_mask
    from cococxr.reports import overlay_masks

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
    from cococxr.masks import mask_to_annotations
    from cococxr.reports import encode_png, overlay_masks

    masks = _segment(masker, builder.build(root, validate=False), image_id)
    for k, cat_id in enumerate(cat_ids):
        for ann in mask_to_annotations(masks[..., k], cat_id, image_id):
            builder.add_annotation(image_id, cat_id, ann["segmentation"])
    lung = masks[..., masker.channels].max(axis=2)
    result.classes = list(masker.spec.classes)
    result.overlay = _fit_display(overlay_masks(image, masks))
    result.lung_fraction = float(lung.mean())
    result.mask_png = encode_png(lung * 255)
    return lung


def _add_classification(result: Analysis, models: Models, coco, image_id: int, lung: np.ndarray | None) -> int:
    """Classify and explain into ``result``; return the index of the decided class."""
    seen, row = _classify(models, coco, image_id)
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
    from cococxr.coco import CocoBuilder
    from cococxr.io import read_image

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


# ---------------------------------------------------------------- COCO files
@st.cache_resource(max_entries=4, show_spinner="Reading the COCO file...")
def _coco_from_file(path: str, mtime_ns: int, image_root: str | None):
    from cococxr.coco import CocoDataset

    return CocoDataset(path, image_root)


@st.cache_resource(max_entries=4, show_spinner="Reading the COCO file...")
def _coco_from_bytes(data: bytes, name: str, image_root: str | None):
    from cococxr.coco import CocoDataset
    from cococxr.errors import CocoFormatError

    try:
        dataset = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CocoFormatError(f"upload {name!r}: not valid JSON ({exc})") from exc
    return CocoDataset(dataset, image_root)


def load_coco_file(path: str, image_root: str | None = None):
    """Load (once per file version) a COCO file typed as a path.

    Raises:
        ConfigError: no such file; CocoFormatError: invalid COCO.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{file}: no such file")
    return _coco_from_file(str(file.resolve()), file.stat().st_mtime_ns, image_root)


def load_coco_upload(data: bytes, name: str, max_bytes: int, image_root: str | None = None):
    """Load an uploaded COCO JSON (kept in memory, never written).

    Raises:
        ConfigError: larger than ``max_bytes``; CocoFormatError: not JSON or invalid COCO.
    """
    if len(data) > max_bytes:
        raise ConfigError(f"upload {name!r} is {len(data):,} bytes; the limit is {max_bytes:,} bytes "
                          f"({max_bytes / 1024 / 1024:g} MB): type the file's path instead")
    return _coco_from_bytes(data, name, image_root)


def draw_annotations(coco, image_id: int) -> tuple[np.ndarray, list[tuple[str, tuple, int]]]:
    """The image with its geometry annotations filled by category, and the legend.

    Returns:
        ``(rgb, [(category name, RGB colour, annotation count), ...])``.

    Raises:
        CococxrError: the image cannot be read or does not match its record.
    """
    from cococxr.io import read_image
    from cococxr.masks import annotations_to_channels
    from cococxr.reports import PALETTE, overlay_masks

    record = coco.imgs[image_id]
    anns = coco.anns_for(image_id, geometry=True)
    cat_ids = sorted({a["category_id"] for a in anns})
    image = read_image(coco.image_path(image_id))
    height, width = int(record["height"]), int(record["width"])
    if image.shape[:2] != (height, width):
        raise ConfigError(f"image {image_id}: {record['file_name']} is {image.shape[0]}x{image.shape[1]} pixels "
                          f"but its record says {height}x{width}")
    masks = annotations_to_channels(anns, height, width, cat_ids) if cat_ids else np.zeros((height, width, 0))
    colours = [PALETTE[k % len(PALETTE)] for k in range(len(cat_ids))]
    legend = [(coco.cats[c]["name"], colours[k], sum(a["category_id"] == c for a in anns))
              for k, c in enumerate(cat_ids)]
    return overlay_masks(image, masks, colors=colours or PALETTE), legend


# ---------------------------------------------------------------- pages
@contextlib.contextmanager
def page_errors():
    """Show a cococxr error (or, logged, any other) as a message in the page, never a traceback."""
    try:
        yield
    except CococxrError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - the page shows a message; the log keeps the traceback
        log.exception("cococxr app: unexpected error")
        st.error(f"Unexpected error ({type(exc).__name__}): {exc}")


def _describe_models(settings: Settings) -> None:
    names = [f"{what}: `{path}`" for what, path in (("segmentation", settings.seg_model),
                                                    ("classifier", settings.cls_model)) if path]
    st.caption("Models: " + "; ".join(names))


def _pick_image(settings: Settings) -> tuple[bytes, str] | None:
    """The chosen image's bytes and name: an upload or an embedded sample."""
    source = st.radio("Image", ("Upload", "Embedded sample"), horizontal=True)
    if source == "Upload":
        upload = st.file_uploader(f"Chest X-ray: PNG, JPEG or DICOM, at most {settings.max_upload_mb:g} MB",
                                  key="xray")
        return None if upload is None else (upload.getvalue(), upload.name)
    samples = sample_images()
    name = st.selectbox("Sample image", list(samples),
                        format_func=lambda n: f"{n} ({samples[n]})" if samples[n] else n)
    return sample_bytes(name), name


def _decision_rule(result: Analysis) -> str:
    if result.threshold is None:
        return "the most probable class (no tuned threshold)"
    return (f"{result.positive_class} when its probability is at least {result.threshold:.4f} (threshold tuned "
            f"on validation), otherwise the most probable other class")


def _show_classification(result: Analysis) -> None:
    import pandas as pd

    st.subheader("Classification")
    columns = st.columns(3)
    columns[0].metric("Decision", result.predicted)
    threshold = "none" if result.threshold is None else f"{result.threshold:.4f}"
    columns[1].metric(f"Threshold ({result.positive_class or 'most probable'})", threshold)
    share = "n/a" if result.in_lung_energy is None else f"{result.in_lung_energy:.1%}"
    columns[2].metric("Grad-CAM energy in the lungs", share,
                      help="Share of the heatmap inside the predicted lung mask; compare it with the share of "
                           "the image the lungs cover (a heatmap spread evenly would score that).")
    st.table(pd.DataFrame({"class": list(result.probabilities),
                           "probability": [f"{p:.4f}" for p in result.probabilities.values()]}), hide_index=True)
    st.caption(f"Decision rule: {_decision_rule(result)}.")


def _show_images(result: Analysis) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("Lung mask")
        if result.overlay is None:
            st.info("No segmentation model: no mask.")
        else:
            st.image(result.overlay, caption=f"predicted {', '.join(result.classes)} (probability > "
                                             f"{MASK_THRESHOLD}); the lungs cover {result.lung_fraction:.1%} "
                                             f"of the image")
    with right:
        st.subheader("Grad-CAM")
        if result.gradcam is None:
            st.info("No classifier: no heatmap.")
        else:
            st.image(_fit_display(result.gradcam, DISPLAY_SIZE // 2),
                     caption=f"heatmap of '{result.predicted}' over what the classifier saw; lung outline in green")


def _show_downloads(result: Analysis) -> None:
    stem = Path(result.file_name).stem
    left, right = st.columns(2)
    if result.mask_png is not None:
        left.download_button("Download the lung mask (PNG)", result.mask_png, f"{stem}_lungs.png", "image/png",
                             on_click="ignore")
    right.download_button("Download the result (COCO JSON)", result.coco_json, f"{stem}.coco.json",
                          "application/json", on_click="ignore")


def predict_page(settings: Settings) -> None:
    """The Predict page: one chest X-ray through segmentation, classification and Grad-CAM."""
    st.title("Chest X-ray: lungs, class and Grad-CAM")
    st.caption(DISCLAIMER)
    if settings.seg_model is None and settings.cls_model is None:
        st.warning(f"No models found. Train the demo models with `{DEMO_COMMAND}` (they are written to "
                   f"`{demo_layout().models}/`), or start the app with "
                   f"`cococxr app --seg-model MODEL --cls-model MODEL`. The Browse COCO page works without models.")
        return
    _describe_models(settings)
    with page_errors():
        picked = _pick_image(settings)
        load_models(settings)  # on the first visit, while an image is being chosen
        if picked is None:
            return
        result = analyze_upload(*picked, settings)
        _show_images(result)
        if result.probabilities is not None:
            _show_classification(result)
        _show_downloads(result)


def _pick_coco(settings: Settings):
    """The COCO file chosen on the Browse page (uploaded JSON first), or None."""
    demo_coco = demo_layout().split_file("all")
    path = st.text_input("COCO JSON file (a path on the machine running the app)",
                         value=str(demo_coco) if demo_coco.is_file() else "")
    upload = st.file_uploader(f"... or upload a COCO JSON file (at most {settings.max_upload_mb:g} MB)",
                              type=["json"], key="coco")
    root = st.text_input("Image folder (default: the file's info.image_root, else its folder)") or None
    if upload is not None:
        return load_coco_upload(upload.getvalue(), upload.name, settings.max_upload_bytes, root)
    return load_coco_file(path, root) if path else None


def _show_summary(coco) -> None:
    summary = coco.summary()
    st.subheader("Summary")
    columns = st.columns(4)
    for column, key in zip(columns, ("images", "annotations", "categories", "empty_images")):
        column.metric(key.replace("_", " "), summary[key])
    missing = summary["missing_image_files"]
    if missing:
        st.warning(f"{len(missing)} image file(s) not found under {coco.image_root}")
    with st.expander("Full summary (CocoDataset.summary())"):
        st.json(summary)


def _legend_html(legend: list[tuple[str, tuple, int]]) -> str:
    items = [f'<span style="display:inline-block;width:0.8em;height:0.8em;background:rgb{tuple(colour)}"></span>'
             f" {html.escape(str(name))} ({count})" for name, colour, count in legend]
    return "<br>".join(items) or "no geometry annotations"


def _show_image(coco) -> None:
    st.subheader("Image")
    query = st.text_input("Filter images by file name").lower()
    ids = [i for i, r in coco.imgs.items() if query in str(r.get("file_name", "")).lower()]
    if not ids:
        st.info("No image matches.")
        return
    image_id = st.selectbox(f"Image ({len(ids)})", ids, format_func=lambda i: f"{i}: {coco.imgs[i]['file_name']}")
    left, right = st.columns([3, 2])
    with right:
        labels = coco.image_labels(image_id)
        st.markdown("**Image-level labels:** " + (", ".join(map(str, labels)) if labels else "none"))
        st.json(coco.imgs[image_id], expanded=False)
    with left, page_errors():
        rgb, legend = draw_annotations(coco, image_id)
        st.image(_fit_display(rgb), caption=f"{coco.imgs[image_id]['file_name']}: annotations by category")
        with right:
            st.markdown("**Categories** (annotations)<br>" + _legend_html(legend), unsafe_allow_html=True)


def browse_page(settings: Settings) -> None:
    """The Browse COCO page: a COCO file's summary and its images with their annotations."""
    st.title("Browse a COCO file")
    with page_errors():
        coco = _pick_coco(settings)
        if coco is None:
            st.info("Type the path of a COCO JSON file or upload one.")
            return
        _show_summary(coco)
        _show_image(coco)


def main() -> None:
    """Render the app (Streamlit runs this at every interaction)."""
    st.set_page_config(page_title="cococxr", layout="wide")
    settings = settings_from_env()
    page = st.sidebar.radio("Page", PAGES)
    st.sidebar.caption(f"Uploads: at most {settings.max_upload_mb:g} MB, deleted once analysed.")
    st.sidebar.caption(DISCLAIMER)
    (predict_page if page == PAGES[0] else browse_page)(settings)


if __name__ == "__main__":
    from cococxr.pipelines.app.page import main as _main  # the installed module: one set of classes and caches

    _main()
