"""Issue 17 class 7: patient leakage through id types.

The images and patients are cxr-lungs' (../shared/data/cxr-lungs/metadata.csv: 328 X-rays,
183 patients); each patient's ids are then written the three ways tools write them: ``1``,
``"1"`` and ``1.0`` (what pandas makes of an integer column with gaps).
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict

import pytest
from helpers import shared

from cococxr.cli import main
from cococxr.coco import CocoDataset
from cococxr.coco.split import group_key_text
from cococxr.doctor import diagnose
from cococxr.errors import ConfigError

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


@pytest.fixture(scope="module")
def mixed() -> dict:
    """cxr-lungs as COCO image records; a patient's k-th image has its id as int, str, float."""
    rows = list(csv.DictReader((shared("cxr-lungs") / "metadata.csv").open(encoding="utf-8")))
    seen = defaultdict(int)
    images = []
    for i, row in enumerate(rows, 1):
        pid = row["patientid"]  # mostly numbers; a few like '319a' stay strings
        kind = seen[pid] % 3
        seen[pid] += 1
        value = [int(pid), pid, float(pid)][kind] if pid.isdigit() else pid
        images.append({"id": i, "file_name": row["filename"], "height": int(row["original_height"]),
                       "width": int(row["original_width"]), "patient": pid, "patient_id": value})
    return {"images": images, "categories": [{"id": 1, "name": "lung"}], "annotations": []}


@pytest.mark.parametrize("value, text", [(1, "1"), ("1", "1"), (1.0, "1"), (" 001 ", "1"), ("1.0", "1"),
                                         ("P-7", "P-7"), (" P-7 ", "P-7"), (2.5, "2.5"), ("2.50", "2.5"),
                                         (None, None), ("", None), ("  ", None), (float("nan"), None)])
def test_group_key_text(value, text):
    assert group_key_text(value) == text


@pytest.mark.parametrize("value", [[1], {"id": 1}, True, False])
def test_list_dict_or_bool_key_is_an_error_naming_the_image(mixed, value):
    data = json.loads(json.dumps(mixed))
    data["images"][4]["patient_id"] = value
    name = data["images"][4]["file_name"]
    with pytest.raises(ConfigError, match=rf"image 5 \('{name}'\): group key .* is a {type(value).__name__}"):
        CocoDataset(data).split(FRACTIONS, "patient_id")


def test_mixed_id_types_stay_in_one_split(mixed):
    patients_with_mixed_types = [p for p in {i["patient"] for i in mixed["images"]}
                                 if len({type(i["patient_id"]) for i in mixed["images"] if i["patient"] == p}) > 1]
    assert len(patients_with_mixed_types) > 30, "the fixture must exercise the normalisation"
    parts = CocoDataset(mixed).split(FRACTIONS, "patient_id", seed=3)
    where = defaultdict(set)
    for name, part in parts.items():
        for img in part.imgs.values():
            where[img["patient"]].add(name)
    assert all(len(names) == 1 for names in where.values())
    assert sum(len(p) for p in parts.values()) == len(mixed["images"])


def test_missing_group_key_is_an_error_by_default(mixed):
    data = json.loads(json.dumps(mixed))
    del data["images"][0]["patient_id"]
    data["images"][7]["patient_id"] = ""
    with pytest.raises(ConfigError, match=r"2 of 328 images have no 'patient_id' \(e.g. image 1 .*image 8"):
        CocoDataset(data).split(FRACTIONS, "patient_id")
    with pytest.warns(UserWarning, match="2 of 328 images"):
        parts = CocoDataset(data).split(FRACTIONS, "patient_id", allow_missing_group=True)
    assert sum(len(p) for p in parts.values()) == 328


def test_cli_split_and_allow_missing_group(mixed, tmp_path, capsys):
    data = json.loads(json.dumps(mixed))
    del data["images"][0]["patient_id"]
    (tmp_path / "all.json").write_text(json.dumps(data))
    out = tmp_path / "parts"
    assert main(["split", str(tmp_path / "all.json"), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 of 328 images have no 'patient_id'" in err and "--allow-missing-group" in err
    assert not out.exists()
    assert main(["split", str(tmp_path / "all.json"), "--allow-missing-group", "--out-dir", str(out)]) == 0
    err = capsys.readouterr().err
    assert "cococxr: warning:" in err and "Warning" not in err.replace("warning:", "")
    assert sorted(p.name for p in out.iterdir()) == ["train.json", "val.json"]


def test_doctor_finds_leakage_across_id_types(mixed, tmp_path):
    images = mixed["images"]
    first, second = images[:len(images) // 2], images[len(images) // 2:]
    numeric = {i["patient"] for i in images if i["patient"].isdigit()}
    train = {**mixed, "images": [{**i, "patient_id": int(i["patient"])} for i in first if i["patient"] in numeric]}
    val = {**mixed, "images": [{**i, "patient_id": f"{i['patient']}.0"} for i in second if i["patient"] in numeric]}
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "val.json").write_text(json.dumps(val))
    report = diagnose(tmp_path / "train.json", splits=[tmp_path / "val.json"], check_files=False)
    leak = next(f for f in report.findings if f.code == "patient_leakage")
    both = {i["patient"] for i in first} & {i["patient"] for i in second} & numeric
    assert both and leak.count == len(both)
