"""The Streamlit demo app (``cococxr app``): predict on one chest X-ray, browse a COCO file.

Pages (sidebar):

* **Predict**: upload a PNG, JPEG or DICOM chest X-ray, or pick an embedded sample. The
  segmentation model's lung mask is drawn over it; the classifier gives its class
  probabilities, the tuned threshold of its sidecar and the decision; Grad-CAM shows
  where it looked and how much of that was inside the lungs. The mask (PNG) and the
  result as COCO JSON can be downloaded.
* **Browse COCO**: a COCO file (path or uploaded JSON): its summary, and any image with
  its annotations drawn by category and its image-level labels.

Settings come from the environment (``cococxr app`` sets them; :mod:`cococxr.pipelines.app.settings`).
This module draws the pages; the analysis of an image is :mod:`cococxr.pipelines.app.analysis`,
the COCO files of the Browse page :mod:`cococxr.pipelines.app.coco_files`.

When Streamlit runs this file as ``__main__`` it imports itself as
``cococxr.pipelines.app.page`` and calls :func:`main`: classes, caches and the model lock
then live in one module object instead of being redefined at every rerun.
"""
from __future__ import annotations

import contextlib
import html
import logging
from pathlib import Path

import pandas as pd
import streamlit as st

from cococxr.errors import CococxrError
from cococxr.pipelines.app.analysis import (DISPLAY_SIZE, MASK_THRESHOLD, Analysis, analyze_upload, fit_display,
                                            load_models, sample_bytes, sample_images)
from cococxr.pipelines.app.coco_files import draw_annotations, load_coco_file, load_coco_upload
from cococxr.pipelines.app.settings import Settings, demo_layout, settings_from_env

log = logging.getLogger(__name__)

DEMO_COMMAND = "cococxr demo"
PAGES = ("Predict", "Browse COCO")
DISCLAIMER = "A demonstration of cococxr, not a medical device: do not use it for diagnosis."


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
            st.image(fit_display(result.gradcam, DISPLAY_SIZE // 2),
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
        st.image(fit_display(rgb), caption=f"{coco.imgs[image_id]['file_name']}: annotations by category")
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
