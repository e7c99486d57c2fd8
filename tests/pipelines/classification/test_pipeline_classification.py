"""Classification pipeline: class specs, sidecar, training run folder, threshold, evaluate, predict, explain."""
from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cococxr.coco import STRATIFY_BY_LABELS, CocoDataset
from cococxr.errors import ConfigError
from cococxr.io import read_image
from cococxr.pipelines.classification.config import ClassificationConfig
from cococxr.pipelines.classification.labels import merge_labels, resolve_classes
from cococxr.config import add_config_arguments, config_from_args
from cococxr.pipelines.engine.cards import ClassifierSidecar, decide, read_sidecar, sidecar_path, write_sidecar
from helpers import SAMPLE

TINY = dict(model="cnn", model_options="n_blocks=2;base_filters=4;dense_units=8;batch_norm=false", input_size=64,
            epochs=1, steps_per_epoch=2, batch_size=4, progress=0, tensorboard=False, n_boot=50)


def _labels_coco(labels: dict[int, list[str]], masks: bool = False) -> CocoDataset:
    """A dict COCO whose image i has the label names ``labels[i]``."""
    names = sorted({n for ls in labels.values() for n in ls})
    cats = [{"id": k + 1, "name": n, "supercategory": "finding"} for k, n in enumerate(names)]
    cats.append({"id": 99, "name": "lung", "supercategory": "anatomy"})
    pairs = [(i, n) for i, ls in labels.items() for n in ls]
    anns = [{"id": k + 1, "image_id": i, "category_id": names.index(n) + 1, "iscrowd": 0, "area": 0}
            for k, (i, n) in enumerate(pairs)]
    images = [{"id": i, "file_name": f"{i}.png", "height": 8, "width": 8} for i in labels]
    return CocoDataset({"images": images, "annotations": anns, "categories": cats}, "/tmp", validate=False)


# ---------------------------------------------------------------- classes, config, sidecar (no model)
def test_class_specs_merge_labels_with_commas_globs_and_one_vs_rest():
    coco = _labels_coco({1: ["COVID-19"], 2: ["COVID-19, ARDS"], 3: ["ARDS"], 4: ["No Finding"], 5: ["SARS"]})
    assert resolve_classes("COVID=COVID-19,COVID-19, ARDS;other=*", coco) == {
        "COVID": ["COVID-19", "COVID-19, ARDS"], "other": ["ARDS", "No Finding", "SARS"]}
    assert resolve_classes("COVID=COVID-19*", coco, one_vs_rest=True) == {
        "COVID": ["COVID-19", "COVID-19, ARDS"], "not COVID": ["ARDS", "No Finding", "SARS"]}
    assert resolve_classes("COVID-19", coco, one_vs_rest=True)["not COVID-19"] == [
        "ARDS", "COVID-19, ARDS", "No Finding", "SARS"]
    assert list(resolve_classes("No Finding,SARS", coco)) == ["No Finding", "SARS"]
    for spec, message in (("COVID-19", "at least two"), ("A=Flu;B=*", r"unknown label\(s\) \['Flu'\]"),
                          ("A=SARS;B=SARS", "in two classes"), ("A=SARS;B=X*", "match no label")):
        with pytest.raises(ConfigError, match=message):
            resolve_classes(spec, coco)
    merged = merge_labels(coco, resolve_classes("COVID=COVID-19*;other=SARS", coco))
    assert {merged.image_labels(i)[0] if merged.image_labels(i) else None for i in merged.imgs} == {
        "COVID", "other", None}
    assert merged.cat_id("lung") == 99  # mask categories are kept


def test_config_file_and_flags_resolve_to_the_same_config(tmp_path):
    (tmp_path / "cfg.yaml").write_text("train: t.json\nval: v.json\nclasses: 'COVID=COVID-19*;other=*'\n"
                                       "model: mobilenetv2\nmask-with: unet.h5\ntune: sensitivity\n"
                                       "target_sensitivity: 0.95\nbalance: false\nequalize: none\n")

    def parse(argv):
        parser = argparse.ArgumentParser()
        add_config_arguments(parser, ClassificationConfig)
        return config_from_args(ClassificationConfig, parser.parse_args(argv))

    from_flags = parse(["--train", "t.json", "--val", "v.json", "--classes", "COVID=COVID-19*;other=*",
                        "--model", "mobilenetv2", "--mask-with", "unet.h5", "--tune", "sensitivity",
                        "--target-sensitivity", "0.95", "--no-balance", "--equalize", "none"])
    assert parse(["--config", str(tmp_path / "cfg.yaml")]) == from_flags
    assert from_flags.balance is False and from_flags.equalize is None and from_flags.mask_with == "unet.h5"
    with pytest.raises(ConfigError, match="model='vit' is not one of"):
        parse(["--train", "t", "--val", "v", "--classes", "a,b", "--model", "vit"])


def test_model_options_are_parsed_as_yaml_values():
    from cococxr.pipelines.classification.config import parse_model_options

    assert parse_model_options("batch_norm=false; base_filters=16;filters=[8, 16];pooling=max") == {
        "batch_norm": False, "base_filters": 16, "filters": [8, 16], "pooling": "max"}
    assert parse_model_options(None) == {}
    with pytest.raises(ConfigError, match="key=value"):
        parse_model_options("batch_norm")
    with pytest.raises(ConfigError, match="own flags"):
        parse_model_options("learning_rate=0.1")


def test_config_models_mirror_the_classifier_registry():
    from cococxr.models.classifiers import CLASSIFIERS
    from cococxr.pipelines.classification.config import SCRATCH_MODELS, TRANSFER_MODELS

    assert set(SCRATCH_MODELS + TRANSFER_MODELS) == set(CLASSIFIERS)


def test_sidecar_round_trip_and_decision_rule(tmp_path):
    sidecar = ClassifierSidecar(["COVID", "other", "normal"], "COVID=a;other=b;normal=c",
                                {"COVID": ["a"], "other": ["b"], "normal": ["c"]}, 64,
                                positive_class="COVID", threshold=0.2)
    path = write_sidecar(tmp_path / "model.h5", sidecar)
    assert path == sidecar_path(tmp_path / "model.h5") == tmp_path / "model.cococxr.json"
    assert read_sidecar(tmp_path / "model.h5") == sidecar
    probs = np.array([[0.25, 0.70, 0.05], [0.10, 0.30, 0.60], [0.50, 0.20, 0.30]])
    np.testing.assert_array_equal(decide(probs), [1, 2, 0])
    np.testing.assert_array_equal(decide(probs, 0, 0.2), [0, 2, 0])  # COVID at p >= 0.2, else the likelier rest
    data = json.loads(path.read_text())
    assert data["format"] == "cococxr-model/1" and data["task"] == "classifier"
    assert data["classes"] == sidecar.class_names
    assert data["input"] == {"input_size": [64, 64], "channels": 1, "equalize": "hist", "preprocessing": None}
    path.write_text(json.dumps({**data, "details": {**data["details"], "threshold": 1.5}}))
    with pytest.raises(ConfigError, match="within 0..1"):
        read_sidecar(tmp_path / "model.h5")
    with pytest.raises(ConfigError, match="model card that 'cococxr train classifier' writes"):
        read_sidecar(tmp_path / "other.h5")


def test_a_sidecar_written_by_an_earlier_version_still_loads(tmp_path):
    legacy = {"format": "cococxr-classifier/1", "class_names": ["COVID", "other"], "class_spec": "COVID=a;other=*",
              "groups": {"COVID": ["a"], "other": ["b"]}, "input_size": 96, "channels": 3, "equalize": "clahe",
              "mask_with": "coco", "mask_classes": ["lung"], "positive_class": "COVID", "threshold": 0.3,
              "tuning": {"mode": "f1"}}
    (tmp_path / "model.cococxr.json").write_text(json.dumps(legacy))
    assert read_sidecar(tmp_path / "model.h5") == ClassifierSidecar(
        ["COVID", "other"], "COVID=a;other=*", {"COVID": ["a"], "other": ["b"]}, 96, channels=3,
        equalize="clahe", mask_with="coco", positive_class="COVID", threshold=0.3, tuning={"mode": "f1"})


# ---------------------------------------------------------------- tiny real runs
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Sample converted with its findings as labels, split by patient: few No Finding (unbalanced)."""
    from cococxr.converters.mask_folders import convert_mask_folders

    folder = tmp_path_factory.mktemp("classification")
    shutil.copytree(SAMPLE / "images", folder / "images")  # a file's own image root stays inside its folder
    dataset, _ = convert_mask_folders(folder / "images", SAMPLE / "masks", folder / "all.json", class_name="lung",
                                      metadata=SAMPLE / "metadata.csv", keep="patientid:patient_id,view",
                                      label_column="finding", allow_missing_masks=True)
    parts = dataset.split({"train": 0.6, "val": 0.4}, group_key="patient_id", stratify_key=STRATIFY_BY_LABELS,
                          seed=0)
    paths = {}
    for name, n_covid in (("train", 6), ("val", 8)):
        part = parts[name]
        covid = [i for i in part.imgs if part.image_labels(i) == ["COVID-19"]][:n_covid]
        normal = [i for i in part.imgs if part.image_labels(i) == ["No Finding"]]
        assert normal, f"the {name} split has no No Finding image"
        paths[name] = folder / f"{name}.json"
        part.subset(covid + normal).write(paths[name])
    paths["folder"] = folder
    return paths


@pytest.fixture(scope="module")
def trained(data):
    from cococxr.pipelines.classification.train import train_classifier

    return train_classifier(train=str(data["train"]), val=str(data["val"]), classes="COVID-19", one_vs_rest=True,
                            out=str(data["folder"] / "run"), **TINY)


def test_train_two_steps_writes_every_run_artifact(trained):
    from cococxr.pipelines.engine.runs import read_history_csv

    run = Path(trained["run_dir"])
    for name in ("config.json", "model.h5", "model.cococxr.json", "history.csv", "learning_curves.png", "metrics.json",
                 "predictions.csv", "classification_report.txt", "confusion_matrix.png",
                 "confusion_matrix_tuned.png", "report.html"):
        assert (run / name).stat().st_size > 0, name
    sidecar = read_sidecar(trained["model"])
    assert sidecar.class_names == ["COVID-19", "not COVID-19"] and sidecar.positive_class == "COVID-19"
    assert sidecar.groups == {"COVID-19": ["COVID-19"], "not COVID-19": ["No Finding"]}
    assert 0.0 <= sidecar.threshold <= 1.0 and sidecar.tuning["mode"] == "f1"
    assert (sidecar.input_size, sidecar.mask_with, sidecar.equalize) == (64, "none", "hist")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_images"] == 10 and metrics["class_counts"] == {"COVID-19": 8, "not COVID-19": 2}
    assert metrics["tuned"]["threshold"] == sidecar.threshold and metrics["epochs"] == 1
    assert len(read_history_csv(run / "history.csv")["loss"]) == 1


def _copy_model(trained, folder):
    folder.mkdir()
    shutil.copy(trained["model"], folder / "model.h5")
    shutil.copy(sidecar_path(trained["model"]), sidecar_path(folder / "model.h5"))
    return folder / "model.h5"


def _set_sidecar(model, **changes):
    import dataclasses

    write_sidecar(model, dataclasses.replace(read_sidecar(model), **changes))


def test_predict_decides_with_the_sidecar_threshold(trained, tmp_path):
    from cococxr.cli import main

    model = _copy_model(trained, tmp_path / "m")
    images = [str(SAMPLE / "images" / n) for n in ("00870a9c.png", "00cfd1c1.png", "02b76460.png")]
    decisions = {}
    for threshold in (0.0, 1.0):
        _set_sidecar(model, threshold=threshold)
        out = tmp_path / f"pred-{threshold}.json"
        assert main(["predict", "classifier", str(model), *images, "--out", str(out)]) == 0
        result = json.loads(out.read_text())
        assert result["threshold"] == threshold and len(result["predictions"]) == 3
        decisions[threshold] = [row["predicted"] for row in result["predictions"]]
    assert decisions[0.0] == ["COVID-19"] * 3  # p >= 0 always
    assert all(p < 1.0 for row in result["predictions"] for p in [row["prob_COVID-19"]])
    assert decisions[1.0] == ["not COVID-19"] * 3


def test_evaluate_on_an_unbalanced_set_equals_sklearn(trained, data, tmp_path):
    from sklearn import metrics as skm

    from cococxr.cli import main

    assert main(["evaluate", "classifier", trained["model"], "--coco", str(data["val"]), "--out",
                 str(tmp_path / "ev"), "--n-boot", "20"]) == 0
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    with open(tmp_path / "ev" / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    names = result["default"]["class_names"]
    assert len(rows) == result["num_images"] == len(CocoDataset(data["val"]).imgs)  # every image once
    y = np.array([names.index(r["true"]) for r in rows])
    prob = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    assert sorted(np.bincount(y)) == [2, 8]  # unbalanced: nothing was resampled
    threshold = read_sidecar(trained["model"]).threshold
    y_bin, p_pos = (y == 0).astype(int), prob[:, 0]  # tuned: COVID-19 (positive) vs the rest
    for key, truth, pred, score in (("default", y, prob.argmax(1), prob[:, 1]),
                                    ("tuned", y_bin, (p_pos >= threshold).astype(int), p_pos)):
        m = result[key]
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
        assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(truth, pred))
        assert m["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(truth, pred), nan_ok=True)
        assert m["macro_f1"] == pytest.approx(skm.f1_score(truth, pred, average="macro", zero_division=0))
        assert m["weighted_f1"] == pytest.approx(skm.f1_score(truth, pred, average="weighted", zero_division=0))
        assert m["confusion_matrix"] == skm.confusion_matrix(truth, pred, labels=[0, 1]).tolist()
        assert m["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(truth, score))
        recall = skm.recall_score(truth, pred, labels=[0, 1], average=None, zero_division=0)
        assert [c["recall"] for c in m["per_class"].values()] == pytest.approx(recall)
    assert [r["predicted"] for r in rows] == [names[0] if p >= threshold else names[1] for p in p_pos]
    assert (tmp_path / "ev" / "confusion_matrix_tuned.png").stat().st_size > 0


def test_explain_writes_overlays_and_in_lung_energy_shares(trained, data, tmp_path):
    from cococxr.pipelines.classification.explain import explain_classifier

    result = explain_classifier(trained["model"], [str(data["val"])], tmp_path / "ex", mask_coco=str(data["val"]),
                                method="gradcam++", progress=False)
    coco = CocoDataset(data["val"])
    assert result["n_images"] == len(coco.imgs) == len(list((tmp_path / "ex" / "overlays").glob("*.png")))
    shares = [r["in_lung_energy"] for r in result["per_image"]]
    with_masks = [bool(coco.anns_for(r["image_id"], geometry=True)) for r in result["per_image"]]
    assert [s is not None for s in shares] == with_masks  # No Finding images have no hand-drawn mask
    assert all(0.0 <= s <= 1.0 for s in shares if s is not None)
    assert 0.0 <= result["mean_in_lung_energy"] <= 1.0 and result["layer"] == "block2_dropout"
    with open(tmp_path / "ex" / "energy.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(coco.imgs)


@pytest.fixture(scope="module")
def seg_model(data):
    """A 'U-Net' keeping the bright pixels: p(lung) = sigmoid(100 (x - 0.5)), with its run config."""
    from cococxr._tf import keras
    from cococxr.models.io import save_model

    folder = data["folder"] / "seg"
    inputs = keras.Input((32, 32, 1))
    layer = keras.layers.Conv2D(1, 1, activation="sigmoid", name="lung")
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.full((1, 1, 1, 1), 100.0, np.float32), np.array([-50.0], np.float32)])
    save_model(model, folder / "model.h5")
    (folder / "config.json").write_text(json.dumps({"classes": ["lung"], "input_size": 32, "channels": 1}))
    return folder / "model.h5"


def test_mask_with_coco_and_a_seg_model_zero_what_the_model_sees_outside_the_lungs(data, seg_model):
    from cococxr.masks import annotations_to_channels
    from cococxr.pipelines.classification.data import labelled_coco
    from cococxr.pipelines.engine.classifier import classifier_sequence, mask_source
    from cococxr.pipelines.engine.segmenter import LungMasker
    from cococxr.preprocess import resize_mask

    raw = CocoDataset(data["train"])
    sidecar = ClassifierSidecar(["COVID-19", "No Finding"], "COVID-19,No Finding",
                                {"COVID-19": ["COVID-19"], "No Finding": ["No Finding"]}, 64, mask_with="coco")
    coco = labelled_coco(raw, sidecar)
    masked = [i for i in coco.imgs if coco.anns_for(i, geometry=True)]
    seq = classifier_sequence(coco, sidecar, masker=mask_source("coco"), image_ids=masked, batch_size=len(masked))
    x, _ = seq[0]
    for image, image_id in zip(x, seq.batch_image_ids(0)):
        record = coco.imgs[image_id]
        lung = annotations_to_channels(coco.anns_for(image_id, geometry=True), record["height"], record["width"],
                                       [coco.cat_id("lung")]).max(axis=2)
        lung = resize_mask(lung, (64, 64)).astype(bool)
        assert not image[~lung].any() and image[lung].mean() > 0.2
    with pytest.raises(ConfigError, match="no \\['lung'\\] mask"):  # No Finding images have no drawn lungs
        classifier_sequence(coco, sidecar, masker="coco")
    masker = mask_source(str(seg_model), ["lung"])
    assert isinstance(masker, LungMasker)
    seq = classifier_sequence(coco, sidecar, masker=masker, batch_size=4)
    x = seq[0][0]
    decoded = [read_image(coco.image_path(i)) for i in seq.batch_image_ids(0)]
    kept = masker.mask_images(decoded, (64, 64))[..., None] > 0.5
    assert len(masker._cache) == 4  # the Sequence's masks were remembered, not predicted again
    np.testing.assert_array_equal(masker.mask_images(decoded, (64, 64))[..., None] > 0.5, kept)
    assert not x[~kept].any() and x[kept].any() and (~kept).any()


def _brightness_classifier(folder, mask_with: str):
    """A classifier with p(COVID-19) = sigmoid(10 * mean(image) - 5) and its sidecar."""
    from cococxr._tf import keras
    from cococxr.models.io import save_model

    inputs = keras.Input((64, 64, 1))
    dense = keras.layers.Dense(2, activation="softmax", name="probabilities")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    dense.set_weights([np.array([[10.0, 0.0]], np.float32), np.array([-5.0, 0.0], np.float32)])
    path = save_model(model, folder / "bright.h5")
    write_sidecar(path, ClassifierSidecar(["COVID-19", "not COVID-19"], "COVID-19=COVID-19;not COVID-19=*",
                                          {"COVID-19": ["COVID-19"], "not COVID-19": ["No Finding"]}, 64,
                                          mask_with=mask_with, positive_class="COVID-19", threshold=0.5))
    return path


def test_predict_with_a_u_net_masked_classifier_uses_its_seg_model(seg_model, tmp_path):
    from cococxr.pipelines.classification.predict import predict_classifier

    images = [str(SAMPLE / "images")]
    whole = predict_classifier(_brightness_classifier(tmp_path, "none"), images, progress=False)
    model = _brightness_classifier(tmp_path, str(seg_model))
    masked = predict_classifier(model, images, tmp_path / "p.csv", progress=False)
    assert len(masked) == len(whole) == len(list((SAMPLE / "images").glob("*.png")))
    change = np.abs([m["prob_COVID-19"] - w["prob_COVID-19"] for m, w in zip(masked, whole)])
    assert np.median(change) > 0.01  # the model saw darker, masked images
    with pytest.raises(ConfigError, match="not on U-Net masks"):
        predict_classifier(_brightness_classifier(tmp_path, "none"), images, seg_model=seg_model, progress=False)
