"""``cococxr doctor``: every check on synthetic data, the CLI, and true findings on the real data."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from cococxr.cli import main
from cococxr.coco import CocoDataset
from cococxr.doctor import FIXES, diagnose
from cococxr.io import read_image, read_mask
from helpers import shared

GRAY = np.arange(64, dtype=np.uint8).reshape(8, 8)


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".png", array)[1].tobytes())


def _poly(ann_id: int, image_id: int, polygon=(1, 1, 6, 1, 6, 6, 1, 6), category_id: int = 1) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": [list(polygon)],
            "area": 25, "bbox": [1.0, 1.0, 5.0, 5.0], "iscrowd": 0}


def _image(image_id: int, name: str, **extra) -> dict:
    return {"id": image_id, "file_name": name, "height": 8, "width": 8, **extra}


@pytest.fixture
def broken(tmp_path) -> Path:
    """A dataset with one instance of (nearly) every problem the doctor looks for."""
    root = tmp_path / "images"
    _png(root / "a.png", GRAY)
    _png(root / "b copy.png", GRAY)  # same pixels as a.png
    (root / "c.png").write_bytes(cv2.imencode(".png", GRAY)[1].tobytes()[:40])  # truncated
    _png(root / "d.png", np.zeros((8, 10), np.uint8))  # record says 8x8
    _png(root / "f.png", GRAY[::-1].copy())
    _png(root / "g.png", GRAY.T.copy())
    data = {
        "info": {"image_root": "images"},
        "images": [_image(1, "a.png", patient_id="p1"), _image(2, "b copy.png", patient_id="p2"),
                   _image(3, "c.png"), _image(4, "d.png"), _image(5, "e_missing.png"),
                   _image(6, "f.png", view="L"), _image(7, "g.png", mask_resized_from=[4, 4])],
        "categories": [{"id": 0, "name": "lung", "supercategory": "anatomy"},
                       {"id": 2, "name": "heart", "supercategory": "anatomy"},
                       {"id": 3, "name": "COVID-19", "supercategory": "finding"}],
        "annotations": [
            _poly(10, 1, category_id=0), _poly(11, 2, category_id=0), _poly(12, 3, category_id=0),
            _poly(13, 4, category_id=0), _poly(14, 5, category_id=0), _poly(17, 7, category_id=0),
            {"id": 15, "image_id": 1, "category_id": 0, "segmentation": {"size": [4, 16], "counts": [64]},
             "area": 0, "bbox": [0.0, 0.0, 0.0, 0.0], "iscrowd": 0},
            _poly(16, 2, polygon=(30, 30, 40, 30, 40, 40), category_id=0),
            {"id": 20, "image_id": 6, "category_id": 99, "iscrowd": 0, "area": 0},
            {"id": 21, "image_id": 1, "category_id": 0, "iscrowd": 0, "area": 0},
            {"id": 22, "image_id": 2, "category_id": 3, "iscrowd": 0, "area": 0},
        ],
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _by_code(report) -> dict:
    return {f.code: f for f in report.findings}


EXPECTED = {  # code: (severity, count, image ids concerned)
    "rle_size_mismatch": ("error", 1, [1]),
    "label_without_category": ("error", 1, [6]),
    "missing_files": ("error", 1, [5]),
    "unreadable_image": ("error", 1, [3]),
    "image_size_mismatch": ("error", 1, [4]),
    "category_id_zero": ("warning", 1, []),
    "empty_mask": ("warning", 1, [2]),
    "images_without_masks": ("warning", 1, [6]),
    "duplicate_images": ("warning", 1, [1, 2]),
    "masks_resized": ("info", 1, [7]),
    "label_category_not_finding": ("info", 1, [1]),
    "unused_category": ("info", 1, []),
}


def test_every_check_finds_its_problem(broken):
    report = diagnose(broken)
    found = _by_code(report)
    assert set(EXPECTED) <= set(found), f"missing: {set(EXPECTED) - set(found)}"
    for code, (severity, count, image_ids) in EXPECTED.items():
        finding = found[code]
        assert (finding.severity, finding.count, finding.image_ids) == (severity, count, image_ids), code
        assert finding.fix and finding.examples, code
    assert found["missing_files"].examples[0]["file_name"] == "e_missing.png"
    assert "c.png" in found["unreadable_image"].examples[0]["detail"]
    assert "8x10" in found["image_size_mismatch"].examples[0]["detail"]
    assert "'b copy.png'" in found["duplicate_images"].examples[0]["detail"]
    assert found["rle_size_mismatch"].examples[0]["path"] == "annotations[6].segmentation.size"
    assert found["label_without_category"].examples[0]["ann_id"] == 20
    assert "'heart'" in found["unused_category"].title
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


def test_every_code_has_a_fix():
    report_codes = set(EXPECTED) | {"patient_leakage", "no_patient_id", "same_file_in_splits",
                                    "same_pixels_in_splits", "unreadable_file"}
    assert report_codes <= set(FIXES)
    assert all(fix and "\n" not in fix for fix in FIXES.values())


def test_no_images_skips_file_checks(broken):
    codes = {f.code for f in diagnose(broken, check_files=False).findings}
    assert not codes & {"missing_files", "unreadable_image", "image_size_mismatch", "duplicate_images"}
    assert "rle_size_mismatch" in codes


def test_cli_markdown_json_and_exit_codes(broken, tmp_path, capsys):
    assert main(["doctor", str(broken), "--out", str(tmp_path / "report.md")]) == 1
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert text.startswith("# cococxr doctor report") and f"| error | missing_files | 1 | {broken} |" in text
    assert "**Fix:** pass --image-root" in text and "e_missing.png" in text
    assert main(["doctor", str(broken), "--out", str(tmp_path / "report.json"), "--no-images"]) == 1
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["summary"]["error"] == 2 and report["datasets"][0]["files_checked"] is False
    capsys.readouterr()
    assert main(["doctor", str(broken), "--format", "json", "--no-images"]) == 1
    assert json.loads(capsys.readouterr().out)["summary"]["error"] == 2


def test_clean_dataset_exits_zero(tmp_path, capsys):
    _png(tmp_path / "a.png", GRAY)
    data = {"images": [_image(1, "a.png")], "categories": [{"id": 1, "name": "lung", "supercategory": "anatomy"}],
            "annotations": [_poly(1, 1)]}
    (tmp_path / "ok.json").write_text(json.dumps(data))
    assert main(["doctor", str(tmp_path / "ok.json")]) == 0
    assert "No problem found." in capsys.readouterr().out


@pytest.mark.parametrize("text, code", [
    ('{"images": [', "unreadable_file"), ("[1, 2]", "bad_top_level"), ("", "unreadable_file"),
    ('{"images": [{"file_name": "a.png", "height": 8, "width": 8}], "categories": []}', "bad_id"),
])
def test_unloadable_files_are_reported_not_raised(tmp_path, text, code):
    path = tmp_path / "bad.json"
    path.write_text(text)
    report = diagnose(path)
    assert report.count("error") >= 1 and code in report.codes("error")
    assert main(["doctor", str(path), "--out", str(tmp_path / "r.md")]) == 1


def _split_files(tmp_path: Path) -> tuple[Path, Path]:
    """train/val over one image folder, leaking patient p1, file shared.png and a.png's pixels."""
    for name, array in (("a.png", GRAY), ("a_again.png", GRAY), ("b.png", GRAY.T.copy()),
                        ("shared.png", GRAY[::-1].copy()), ("c.png", GRAY[:, ::-1].copy())):
        _png(tmp_path / name, array)
    cats = [{"id": 1, "name": "lung", "supercategory": "anatomy"}]
    train = {"images": [_image(1, "a.png", patient_id="p1"), _image(2, "shared.png", patient_id="p2")],
             "categories": cats, "annotations": [_poly(1, 1), _poly(2, 2)]}
    val = {"images": [_image(1, "b.png", patient_id="p1"), _image(2, "shared.png", patient_id="p3"),
                      _image(3, "a_again.png", patient_id="p4"), _image(4, "c.png")],
           "categories": cats, "annotations": [_poly(1, 1), _poly(2, 2), _poly(3, 3), _poly(4, 4)]}
    paths = tmp_path / "train.json", tmp_path / "val.json"
    for path, data in zip(paths, (train, val)):
        path.write_text(json.dumps(data))
    return paths


def test_split_files_are_checked_for_leakage(tmp_path):
    train, val = _split_files(tmp_path)
    report = diagnose(train, splits=[val])
    found = _by_code(report)
    leak = found["patient_leakage"]
    assert leak.count == 1 and leak.examples[0]["patient_id"] == "p1"
    assert "train.json: 1 image(s) (a.png)" in leak.examples[0]["detail"] and "val.json" in leak.examples[0]["detail"]
    assert found["same_file_in_splits"].examples[0]["file_name"] == "shared.png"
    copies = found["same_pixels_in_splits"]  # a.png = a_again.png; shared.png is reported once, above
    assert copies.count == 1 and "a.png" in copies.examples[0]["detail"] and "a_again.png" in copies.examples[0]["detail"]
    assert found["no_patient_id"].count == 1 and found["no_patient_id"].severity == "warning"
    assert [d["role"] for d in report.datasets] == ["dataset", "split"]
    assert main(["doctor", str(train), "--splits", str(val), "--out", str(tmp_path / "r.md")]) == 1


# --------------------------------------------------------------------- real data
def _empty_masks(paths) -> set[str]:
    """Stems of the mask files that hold no foreground pixel (JPEG masks thresholded at 127)."""
    empty = set()
    for path in paths:
        mask = read_mask(path)
        if not (mask > (127 if path.suffix.lower() in (".jpg", ".jpeg") else 0)).any():
            empty.add(path.stem)
    return empty


def _same_pixels(ds: CocoDataset, image_ids) -> bool:
    arrays = [read_image(ds.image_path(i)) for i in image_ids]
    return all(a.shape == arrays[0].shape and np.array_equal(a, arrays[0]) for a in arrays[1:])


@pytest.fixture(scope="module")
def cxr_lungs(tmp_path_factory):
    """cxr-lungs converted by the project's mask converter, split by patient into train/val."""
    from cococxr.converters.mask_folders import convert_mask_folders

    data = shared("cxr-lungs")
    out = tmp_path_factory.mktemp("cxr_lungs")
    dataset, _ = convert_mask_folders(data / "images", data / "masks", out / "all.json", class_name="lung",
                                      allow_missing_masks=True, metadata=data / "metadata.csv",
                                      keep="patientid:patient_id,view", label_column="finding")
    parts = dataset.split({"train": 0.8, "val": 0.2}, group_key="patient_id", seed=0)
    for name, part in parts.items():
        part.write(out / f"{name}.json")
    return data, out


def test_real_cxr_lungs(cxr_lungs):
    data, out = cxr_lungs
    report = diagnose(out / "train.json", data / "images", splits=[out / "val.json"])
    assert report.count("error") == 0 or report.codes("error") == {"same_pixels_in_splits"}
    assert "patient_leakage" not in report.codes()
    parts = {Path(d["path"]).name: CocoDataset(d["path"], data / "images") for d in report.datasets}
    unannotated = {}  # file stem -> view, over both splits
    for f in report.findings:
        if f.code == "images_without_masks":
            ds = parts[Path(f.dataset).name]
            unannotated.update({Path(ds.imgs[i]["file_name"]).stem: ds.imgs[i]["view"] for i in f.image_ids})
    empty = _empty_masks((data / "masks").iterdir())
    assert len(empty) == 16 and empty <= set(unannotated), "the empty (lateral) masks must be reported"
    assert {unannotated[stem] for stem in empty} == {"L"}
    lateral = [img for ds in parts.values() for img in ds.imgs.values() if img["view"] == "L"]
    assert all(Path(img["file_name"]).stem in unannotated for img in lateral)
    for f in report.findings:  # a duplicate found is truly the same image
        if f.code == "duplicate_images":
            assert _same_pixels(parts[Path(f.dataset).name], f.image_ids)
    duplicates = [f for f in report.findings if f.code in ("duplicate_images", "same_pixels_in_splits")]
    assert duplicates, "cxr-lungs holds one X-ray twice, under patients 78 and 201"


def test_real_cxr_lungs_leaky_split(cxr_lungs, tmp_path):
    data, out = cxr_lungs
    dataset = CocoDataset(out / "all.json", data / "images")
    ids = list(dataset.imgs)
    halves = dataset.subset(ids[::2]), dataset.subset(ids[1::2])  # by image: patients straddle
    for k, part in enumerate(halves):
        part.write(tmp_path / f"half{k}.json")
    report = diagnose(tmp_path / "half0.json", data / "images", splits=[tmp_path / "half1.json"], check_files=False)
    leak = _by_code(report)["patient_leakage"]
    patients = [{img["patient_id"] for img in half.imgs.values()} for half in halves]
    assert leak.count == len(patients[0] & patients[1]) > 0
    assert all(e["patient_id"] in patients[0] & patients[1] for e in leak.examples)


def test_real_v7_coco():
    data = shared("v7-coco")
    report = diagnose(data / "annotations.json")  # its images are not shipped
    found = _by_code(report)
    assert report.codes("error") == {"missing_files"}
    missing = found["missing_files"]
    assert missing.count == 267 and missing.title.startswith("none of the 267 image files exist")
    assert found["category_id_zero"].examples[0]["path"] == "categories[0].id"
    assert found["rle_size_swapped"].count == 2
    names = {img["id"]: img["file_name"] for img in json.loads((data / "annotations.json").read_text())["images"]}
    unannotated = [names[i] for i in found["images_without_masks"].image_ids]
    assert len(unannotated) == 16  # the 16 empty lateral-view masks, as in cxr-lungs
    assert len(_empty_masks(data / "masks" / name for name in unannotated)) == 16


@pytest.mark.parametrize("name", ["cxr-sample", "dsb2018-rle"])
def test_real_small_datasets_are_clean(name, tmp_path):
    data = shared(name)
    if name == "cxr-sample":
        from cococxr.converters.mask_folders import convert_mask_folders

        convert_mask_folders(data / "images", data / "masks", tmp_path / "c.json", class_name="lung",
                             allow_missing_masks=True, metadata=data / "metadata.csv",
                             keep="patientid:patient_id,view", label_column="finding")
    else:  # the rows of its first 8 images (all 46 take long on a loaded machine)
        from cococxr.converters.rle_csv import convert_rle_csv

        lines = (data / "stage1_train_labels.csv").read_text(encoding="utf-8").splitlines(keepends=True)
        ids = list(dict.fromkeys(line.split(",")[0] for line in lines[1:]))[:8]
        (tmp_path / "labels.csv").write_text(lines[0] + "".join(l for l in lines[1:] if l.split(",")[0] in ids))
        convert_rle_csv(tmp_path / "labels.csv", data, tmp_path / "c.json", preset="dsb2018")
    report = diagnose(tmp_path / "c.json", data / "images" if name == "cxr-sample" else data)
    assert report.count("error") == 0, report.to_markdown()
    assert report.datasets[0]["files_checked"]


def test_real_covid_radiography_layout(tmp_path):
    from cococxr.converters.covid_radiography import convert_covid_radiography

    data = shared("covid-radiography-layout")
    dataset, _ = convert_covid_radiography(data, tmp_path / "c.json", allow_missing_masks=True)
    report = diagnose(tmp_path / "c.json", data, check_files=False)  # cxr-lungs covers the file checks
    assert report.count("error") == 0, report.to_markdown()
    resized = _by_code(report)["masks_resized"]
    assert "[256, 256] -> [299, 299]" in resized.title
    assert resized.count == sum("mask_resized_from" in img for img in dataset.imgs.values()) > 0


def test_real_dicom(tmp_path):
    from cococxr.converters.dicom import convert_dicom

    data = shared("dicom")
    folder = tmp_path / "dicoms"  # the uncompressed CR and the JPEG SIIM file (JPEG 2000 decodes slowly)
    folder.mkdir()
    for path in [data / "pydicom_data_wg04" / "RG1_UNCI.dcm", *(data / "torchxrayvision_tests").glob("*.dcm")]:
        shutil.copy(path, folder / path.name)  # a link out of the folder is refused (issue 17)
    convert_dicom(folder, tmp_path / "png", tmp_path / "c.json")
    report = diagnose(tmp_path / "c.json")
    assert report.count("error") == 0, report.to_markdown()
    assert report.datasets[0]["images"] == 2 and report.datasets[0]["files_checked"]
