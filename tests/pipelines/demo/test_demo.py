"""``cococxr demo``: the whole pipeline on the embedded sample and on a user's folders (quick recipe)."""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from cococxr.errors import ConfigError
from cococxr.pipelines.demo.config import DemoConfig, input_folders
from cococxr.pipelines.demo.recipe import DEFAULT_RECIPE, QUICK_RECIPE, recipe_for
from cococxr.pipelines.demo.run import STAGES, run_pipeline, summary_lines
from cococxr.pipelines.demo.stages import convert
from cococxr.pipelines.engine.layout import Layout
from helpers import SAMPLE

UNIT_KEYS = {"segmentation": ("dice", "iou", "segm_AP", "segm_AP50", "segm_AP75", "val_dice"),
             "classification": ("accuracy", "balanced_accuracy", "macro_f1", "threshold"),
             "gradcam": ("mean_in_lung_energy", "mean_lung_fraction")}
# None is a legitimate value here: one class absent from the test images (AUC), or an
# untrained U-Net that finds no lungs in the quick run (energy share).
MAYBE_NONE = {"roc_auc", "sensitivity", "precision", "mean_in_lung_energy", "median_in_lung_energy",
              "mean_lung_fraction", "threshold"}


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """One quick demo run on the embedded sample, shared by the checks below."""
    out = tmp_path_factory.mktemp("demo") / "cococxr-demo"
    return run_pipeline(out=str(out), quick=True, seed=0)


def _check_unit_interval(metrics: dict) -> None:
    for section, keys in UNIT_KEYS.items():
        for key in keys:
            value = metrics[section][key]
            if value is None and key in MAYBE_NONE:
                continue
            assert 0.0 <= value <= 1.0, (section, key, value)


def test_quick_demo_writes_report_metrics_and_models(quick_demo, capsys):
    out = Path(quick_demo["out"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(quick_demo["metrics"]))
    assert {"data", "devices", "recipe", "segmentation", "classification", "gradcam", "timings"} <= set(metrics)
    assert metrics["data"]["images"] == 56 and metrics["data"]["with_masks"] == 51
    assert metrics["data"]["labels"] == {"COVID-19": 51, "No Finding": 5}
    split = metrics["data"]["split"]
    assert sum(part["images"] for part in split.values()) == 56 and list(split) == ["train", "val", "test"]
    assert metrics["devices"] and metrics["devices"][0].startswith("CPU")
    assert metrics["recipe"]["seg_size"] == QUICK_RECIPE.seg_size
    _check_unit_interval(metrics)
    assert metrics["segmentation"]["hausdorff_95"] >= 0 and metrics["segmentation"]["num_images"] > 0
    assert metrics["classification"]["positive_class"] == "COVID-19"
    assert sum(map(sum, metrics["classification"]["confusion_matrix"])) == metrics["classification"]["num_images"]
    assert metrics["gradcam"]["n_images"] == split["test"]["images"]
    timings = metrics["timings"]
    assert set(STAGES) <= set(timings) and all(v >= 0 for v in timings.values())
    assert timings["train segmentation"] > 0 and timings["train classifier"] > 0
    assert timings["total"] >= sum(timings[s] for s in STAGES) - 0.1


def test_quick_demo_report_embeds_every_picture(quick_demo):
    page = Path(quick_demo["report"]).read_text()
    images = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]*)"', page)
    for caption in ("learning curves", "best test images", "worst test images", "predicted lungs",
                    "confusion matrix", "classifier learning curves", "Grad-CAM"):
        assert any(caption in alt for alt in images), (caption, images)
    assert "src=\"http" not in page and "src='http" not in page  # self-contained


def test_quick_demo_models_load_where_the_app_looks(quick_demo):
    from cococxr.models.io import load_model
    from cococxr.pipelines.engine.cards import read_sidecar

    layout = Layout(quick_demo["out"])
    assert quick_demo["seg_model"] == str(layout.seg_model) and quick_demo["cls_model"] == str(layout.cls_model)
    seg = load_model(layout.seg_model, compile=False)
    assert seg.input_shape[1:3] == (QUICK_RECIPE.seg_size, QUICK_RECIPE.seg_size)
    card = json.loads((layout.models / "segmentation.cococxr.json").read_text())
    assert card["task"] == "segmentation" and card["classes"] == ["lung"]
    assert card["input"]["input_size"] == [QUICK_RECIPE.seg_size] * 2
    assert not (layout.models / "config.json").exists()  # each model has its own card: models share the folder
    cls = load_model(layout.cls_model, compile=False)
    sidecar = read_sidecar(layout.cls_model)
    assert cls.output_shape[-1] == len(sidecar.class_names) == 2
    assert Path(sidecar.mask_with) == layout.seg_model.resolve()
    assert sidecar.positive_class == "COVID-19"
    assert len(list((layout.root / "predicted_lungs").glob("*.png"))) == 56
    lines = summary_lines(quick_demo)
    assert f"  cococxr app --seg-model {layout.seg_model} --cls-model {layout.cls_model}" in lines
    assert any(line.startswith("report: ") and line.endswith("report.html") for line in lines)


def _copy_subset(dst: Path) -> tuple[Path, Path, Path, int]:
    """A user-style copy: every 'No Finding' image plus one COVID-19 image per new patient up to 11 patients,
    masks named ``<stem>_mask.png``, the CSV's columns renamed ``image``, ``patient``, ``diagnosis``."""
    rows = list(csv.DictReader((SAMPLE / "metadata.csv").open(newline="")))
    patients, chosen = set(), []
    for row in rows:
        if row["finding"] != "COVID-19" or (len(patients) < 11 and row["patientid"] not in patients):
            chosen.append(row)
            patients.add(row["patientid"])
    images, masks = dst / "imgs", dst / "lungs"
    images.mkdir(parents=True)
    masks.mkdir()
    for row in chosen:
        shutil.copy(SAMPLE / "images" / row["filename"], images)
        if (SAMPLE / "masks" / row["filename"]).is_file():
            shutil.copy(SAMPLE / "masks" / row["filename"], masks / row["filename"].replace(".png", "_mask.png"))
    table = dst / "table.csv"
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "patient", "diagnosis"])
        writer.writerows([r["filename"], r["patientid"], r["finding"]] for r in chosen)
    return images, masks, table, len(chosen)


def test_demo_runs_on_a_users_folders(tmp_path, capsys):
    images, masks, table, n = _copy_subset(tmp_path / "mine")
    result = run_pipeline(out=str(tmp_path / "out"), quick=True, images=str(images), masks=str(masks),
                          metadata=str(table), metadata_key="image", label_column="diagnosis",
                          patient_column="patient", mask_suffix="_mask", seed=1)
    printed = capsys.readouterr().out
    assert [f"[{k}/9] {name}" in printed for k, name in enumerate(STAGES, 1)] == [True] * 9
    data = result["metrics"]["data"]
    assert data["images"] == n and data["labels"]["No Finding"] == 5 and data["source"] == str(images)
    assert Path(result["report"]).is_file() and Path(result["cls_model"]).is_file()
    _check_unit_interval(result["metrics"])


def test_own_data_options_are_checked_before_any_training(tmp_path):
    with pytest.raises(ConfigError, match="--masks, --metadata"):
        input_folders(DemoConfig(images=str(tmp_path)))
    assert input_folders(DemoConfig()) == (SAMPLE / "images", SAMPLE / "masks", SAMPLE / "metadata.csv")
    with pytest.raises(ConfigError, match=r"positive label 'Flu'.*\['COVID-19', 'No Finding'\]"):
        convert(DemoConfig(positive_label="Flu"), Layout(tmp_path))
    assert recipe_for(DemoConfig(epochs_seg=3)).seg_epochs == 3
    assert recipe_for(DemoConfig()) == DEFAULT_RECIPE
