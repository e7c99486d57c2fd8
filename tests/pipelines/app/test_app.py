"""The Streamlit demo app: analysis logic, the launcher, and both pages through AppTest."""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")

from streamlit.testing.v1 import AppTest  # noqa: E402

from cococxr.errors import ConfigError, ImageReadError  # noqa: E402
from cococxr.pipelines.app import launcher as app_launcher  # noqa: E402
from helpers import APP_IMAGE, REPO, build_tiny_models, sample_coco  # noqa: E402

APP = REPO / "pipelines" / "app" / "page.py"
BAD = REPO / "tests" / "reliability" / "bad_inputs"
TIMEOUT = 300  # the first AppTest run imports TensorFlow


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_models(tmp_path_factory.mktemp("app-models"))


@pytest.fixture
def settings(tiny_models):
    from cococxr.pipelines.app.settings import Settings

    return Settings(*tiny_models)


@pytest.fixture
def app_env(monkeypatch, tiny_models, tmp_path):
    """The environment ``cococxr app`` sets, with the tiny models; uploads stored under tmp_path."""
    monkeypatch.setenv(app_launcher.ENV_SEG_MODEL, str(tiny_models[0]))
    monkeypatch.setenv(app_launcher.ENV_CLS_MODEL, str(tiny_models[1]))
    monkeypatch.setenv(app_launcher.ENV_MAX_UPLOAD_MB, "1")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def uploads_left(folder: Path) -> list[Path]:
    """The upload folders (``cococxr-upload-*``) still under ``folder``."""
    return list(folder.glob("cococxr-upload-*"))


def run_app(timeout: float = TIMEOUT) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    return at.run()


def texts(at: AppTest) -> str:
    """Every markdown, caption, error, warning and info text of the page, joined."""
    kinds = ("markdown", "caption", "error", "warning", "info")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


# ---------------------------------------------------------------- settings and launcher
def test_settings_default_to_the_demo_models(tmp_path, monkeypatch):
    from cococxr.pipelines.app.settings import settings_from_env

    monkeypatch.chdir(tmp_path)
    assert settings_from_env({}).seg_model is None
    models = tmp_path / "cococxr-demo" / "models"  # where `cococxr demo` publishes them
    models.mkdir(parents=True)
    (models / "segmentation.h5").touch()
    (models / "classifier.h5").touch()
    settings = settings_from_env({app_launcher.ENV_MAX_UPLOAD_MB: "2.5"})
    assert settings.seg_model.resolve() == models / "segmentation.h5"
    assert settings.cls_model.resolve() == models / "classifier.h5"
    assert settings.max_upload_bytes == int(2.5 * 1024 * 1024)
    explicit = settings_from_env({app_launcher.ENV_SEG_MODEL: "/m/seg.h5"})
    assert explicit.seg_model == Path("/m/seg.h5") and explicit.max_upload_mb == 20


def test_launcher_passes_options_to_streamlit_and_the_app(tiny_models):
    from cococxr.cli import build_parser

    args = build_parser().parse_args(["app", "--seg-model", str(tiny_models[0]), "--port", "8765",
                                      "--max-upload-mb", "5"])
    argv = app_launcher.streamlit_arguments(args)
    assert argv[:2] == ["run", str(app_launcher.APP_SCRIPT)] and app_launcher.APP_SCRIPT == APP
    pairs = dict(zip(argv[2::2], argv[3::2]))
    assert pairs == {"--server.port": "8765", "--server.address": "127.0.0.1", "--server.headless": "true",
                     "--browser.gatherUsageStats": "false", "--server.fileWatcherType": "none",
                     "--client.toolbarMode": "viewer",
                     "--server.maxUploadSize": "10"}
    env = app_launcher.app_environment(args)
    assert env == {app_launcher.ENV_MAX_UPLOAD_MB: "5", app_launcher.ENV_SEG_MODEL: str(tiny_models[0].resolve())}


@pytest.mark.parametrize("argv, message", [
    (["--seg-model", "missing.h5"], "missing.h5 does not exist"),
    (["--max-upload-mb", "0"], "--max-upload-mb"),
    (["--port", "70000"], "--port"),
])
def test_launcher_refuses_bad_options(argv, message, capsys):
    from cococxr.cli import main

    assert main(["app", *argv]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- analysis
def test_analysis_of_a_sample(settings, tmp_path, monkeypatch):
    import cv2
    from pycocotools import mask as mask_utils

    from cococxr.coco import CocoDataset
    from cococxr.pipelines.app.analysis import analyze_upload, sample_bytes, sample_images

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert sample_images()[APP_IMAGE] == "COVID-19"
    result = analyze_upload(sample_bytes(APP_IMAGE), APP_IMAGE, settings)
    assert uploads_left(tmp_path) == []  # the upload's private folder is gone
    assert set(result.probabilities) == {"COVID-19", "No Finding"}
    assert sum(result.probabilities.values()) == pytest.approx(1, abs=1e-5)
    assert result.threshold == 0.42 and result.positive_class == "COVID-19"
    expected = "COVID-19" if result.probabilities["COVID-19"] >= 0.42 else "No Finding"
    assert result.predicted == expected
    assert result.overlay.shape == (256, 256, 3) and result.gradcam.shape == (32, 32, 3)
    mask = cv2.imdecode(np.frombuffer(result.mask_png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (256, 256) and set(np.unique(mask)) <= {0, 255}
    assert result.lung_fraction == pytest.approx((mask > 0).mean())
    assert result.in_lung_energy is None or 0 <= result.in_lung_energy <= 1

    coco = CocoDataset(json.loads(result.coco_json))
    assert coco.dataset["info"]["threshold"] == 0.42
    assert [img["file_name"] for img in coco.imgs.values()] == [APP_IMAGE]
    assert coco.image_labels(1) == [result.predicted]
    lungs = coco.anns_for(1, coco.cat_ids("lung"), geometry=True)
    if mask.any():
        assert np.array_equal(mask_utils.decode(lungs[0]["segmentation"]), (mask > 0).astype(np.uint8))
    coco.to_pycocotools()


def test_analysis_of_a_dicom(settings):
    from cococxr.pipelines.app.analysis import analyze_upload

    result = analyze_upload((BAD / "dicom" / "valid 8x8 ü.dcm").read_bytes(), "scan", settings)
    assert result.file_name == "scan.dcm" and result.overlay.shape == (8, 8, 3)


@pytest.mark.parametrize("path, error, message", [
    (BAD / "uploads" / "notes.png", ImageReadError, "not a PNG, JPEG or DICOM"),
    (BAD / "dicom" / "truncated.dcm", ImageReadError, "truncated.dcm"),
    (REPO / "cococxr" / "sample" / "images" / APP_IMAGE, ConfigError, "the limit is 1,024 bytes"),
])
def test_bad_uploads_raise_cococxr_errors(settings, tmp_path, monkeypatch, path, error, message):
    from dataclasses import replace

    from cococxr.pipelines.app.analysis import analyze_upload

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(error, match=message.replace(".", r"\.")):
        analyze_upload(path.read_bytes(), path.name, replace(settings, max_upload_bytes=1024))
    assert uploads_left(tmp_path) == []


@pytest.mark.parametrize("mask_with", ["coco", "/moved/away/segmentation.h5"])
def test_masked_classifier_without_its_segmentation_model(tiny_models, tmp_path, mask_with):
    import shutil

    from cococxr.pipelines.app.analysis import analyze_upload, sample_bytes
    from cococxr.pipelines.app.settings import Settings
    from cococxr.pipelines.engine.cards import read_sidecar, write_sidecar

    cls = Path(shutil.copy(tiny_models[1], tmp_path / "cls.h5"))
    sidecar = read_sidecar(tiny_models[1])
    sidecar.mask_with = mask_with
    write_sidecar(cls, sidecar)
    with pytest.raises(ConfigError, match="--seg-model"):
        analyze_upload(sample_bytes(APP_IMAGE), APP_IMAGE, Settings(None, cls))
    masked = analyze_upload(sample_bytes(APP_IMAGE), APP_IMAGE, Settings(tiny_models[0], cls))
    assert masked.predicted in {"COVID-19", "No Finding"}


def test_draw_annotations_gives_a_legend(tmp_path):
    from cococxr.pipelines.app.coco_files import draw_annotations, load_coco_file

    coco = load_coco_file(str(sample_coco(tmp_path)))
    rgb, legend = draw_annotations(coco, 1)
    assert rgb.shape == (256, 256, 3)
    assert [(name, count) for name, _, count in legend] == [("lung", 1)]


# ---------------------------------------------------------------- pages (AppTest)
def test_predict_page_with_a_sample(app_env):
    at = run_app()
    next(r for r in at.radio if r.label == "Image").set_value("Embedded sample").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Threshold (COVID-19)"] == "0.4200"
    assert metrics["Decision"] in {"COVID-19", "No Finding"}
    assert len(at.table) == 1
    captions = [c for image in at.get("image") for c in image.captions]
    assert any("predicted lung" in c for c in captions) and any("heatmap of" in c for c in captions)


@pytest.mark.parametrize("name, data, message", [
    ("notes.png", b"just some text, renamed .png", "not a PNG, JPEG or DICOM"),
    ("broken.dcm", (BAD / "dicom" / "truncated.dcm").read_bytes(), "broken.dcm"),
    ("big.png", b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024), "the limit is 1,048,576 bytes (1 MB)"),
])
def test_predict_page_reports_bad_uploads(app_env, name, data, message):
    at = run_app()
    at.file_uploader(key="xray").set_value((name, data, "image/png")).run()
    assert not at.exception
    assert [e.value for e in at.error] and message in at.error[0].value
    assert uploads_left(app_env) == []


def test_predict_page_without_models_says_what_to_run(monkeypatch, tmp_path):
    for name in (app_launcher.ENV_SEG_MODEL, app_launcher.ENV_CLS_MODEL):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    at = run_app(timeout=60)
    assert not at.exception
    assert "`cococxr demo`" in at.warning[0].value and "cococxr-demo/models" in at.warning[0].value
    at.sidebar.radio[0].set_value("Browse COCO").run()
    assert at.title[0].value == "Browse a COCO file"


def test_browse_page_shows_summary_annotations_and_labels(app_env):
    coco = sample_coco(app_env)
    at = run_app(timeout=60)
    at.sidebar.radio[0].set_value("Browse COCO").run()
    at.text_input[0].input(str(coco)).run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["images"] == "2" and metrics["annotations"] == "4"
    assert "**Image-level labels:** COVID-19" in texts(at)
    assert "lung (1)" in texts(at)
    at.selectbox[0].set_value(2).run()
    assert "02b76460.png" in at.get("image")[0].captions[0]


@pytest.mark.parametrize("upload, message", [
    (("bad.json", b"{not json", "application/json"), "not valid JSON"),
    (("empty.json", b"{}", "application/json"), "images"),
    (("big.json", b" " * (2 * 1024 * 1024), "application/json"), "type the file's path instead"),
])
def test_browse_page_reports_bad_coco_files(app_env, upload, message):
    at = run_app(timeout=60)
    at.sidebar.radio[0].set_value("Browse COCO").run()
    at.file_uploader(key="coco").set_value(upload).run()
    assert not at.exception and message in at.error[0].value


def test_browse_page_reports_a_missing_file(app_env):
    at = run_app(timeout=60)
    at.sidebar.radio[0].set_value("Browse COCO").run()
    at.text_input[0].input(str(app_env / "nope.json")).run()
    assert "nope.json: no such file" in at.error[0].value


def test_parser_help_does_not_import_streamlit():
    import subprocess
    import sys

    code = "import sys; from cococxr.cli import build_parser; build_parser(); print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_app_environment_resolves_model_paths(tiny_models, monkeypatch):
    monkeypatch.chdir(tiny_models[0].parent)
    args = argparse.Namespace(seg_model="model.h5", cls_model=None, port=8501, host="127.0.0.1", max_upload_mb=20)
    assert app_launcher.app_environment(args)[app_launcher.ENV_SEG_MODEL] == str(tiny_models[0].resolve())
