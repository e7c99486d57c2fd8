"""DICOM folders -> PNG + COCO image records: synthetic files always, the real samples when present."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from cococxr.cli import main
from cococxr.converters.dicom import convert_dicom, png_name
from cococxr.errors import ConfigError, ImageReadError

from helpers import shared


def write_dicom(path, pixels: np.ndarray, photometric: str = "MONOCHROME1", **tags) -> None:
    """A minimal single-frame 16-bit grayscale DICOM file with a preamble."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "dicoms"
    ramp = np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 20
    write_dicom(root / "p7" / "chest.dcm", ramp, PatientID="P-7", ViewPosition="AP", PixelSpacing=[0.2, 0.25],
                InstitutionName="Test Hospital", RescaleSlope=2, RescaleIntercept=-100)
    write_dicom(root / "p8" / "IM0001", ramp[::-1], photometric="MONOCHROME2", PatientID="P-8")
    (root / "notes.txt").write_text("not an image")
    return root


def test_synthetic_dicoms(folder, tmp_path):
    dataset, report = convert_dicom(folder, tmp_path / "png", tmp_path / "coco.json",
                                    tags="PatientID,ViewPosition,PixelSpacing,InstitutionName")
    COCO(str(tmp_path / "coco.json"))
    assert report.counts["DICOM files in"] == report.counts["images out"] == 2
    assert report.counts["other files ignored"] == 1
    first, second = dataset.dataset["images"]
    assert first == {"id": 1, "file_name": "p7/chest.png", "height": 12, "width": 16, "source": "p7/chest.dcm",
                     "bit_depth": 8, "patient_id": "P-7", "view": "AP", "pixel_spacing": [0.2, 0.25],
                     "dicom": {"PatientID": "P-7", "ViewPosition": "AP", "PixelSpacing": [0.2, 0.25],
                               "InstitutionName": "Test Hospital"}}
    assert second["file_name"] == "p8/IM0001.png" and second["patient_id"] == "P-8"
    assert dataset.dataset["info"]["image_root"] == "png"
    png = cv2.imread(str(tmp_path / "png" / "p7" / "chest.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == (12, 16)
    assert png[0, 0] == 255 and png[-1, -1] == 0  # MONOCHROME1: the highest raw value is darkest
    plain = cv2.imread(str(tmp_path / "png" / "p8" / "IM0001.png"), cv2.IMREAD_UNCHANGED)
    assert plain[-1, 0] == 0 and plain[0, -1] == 255  # MONOCHROME2, rows flipped: not inverted


def test_16_bit_and_workers_are_identical(folder, tmp_path):
    convert_dicom(folder, tmp_path / "a", tmp_path / "a.json", bits=16)
    convert_dicom(folder, tmp_path / "b", tmp_path / "b.json", bits=16, workers=2)
    png_a = (tmp_path / "a" / "p7" / "chest.png").read_bytes()
    assert png_a == (tmp_path / "b" / "p7" / "chest.png").read_bytes()
    assert (tmp_path / "a.json").read_text().replace('"a"', '"b"') == (tmp_path / "b.json").read_text()
    png = cv2.imread(str(tmp_path / "a" / "p7" / "chest.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.max() == 65535 and len(np.unique(png)) == 12 * 16


def test_bad_dicom_names_the_file_or_is_skipped(folder, tmp_path):
    (folder / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"garbage" * 10)
    with pytest.raises(ImageReadError, match=r"broken\.dcm"):
        convert_dicom(folder, tmp_path / "png")
    dataset, report = convert_dicom(folder, tmp_path / "png", skip_bad=True)
    assert report.counts["bad DICOM files skipped"] == 1 and len(dataset.imgs) == 2
    assert any("broken.dcm" in note for note in report.notes)


def test_options_are_checked(folder, tmp_path):
    with pytest.raises(ConfigError, match="PatientId"):
        convert_dicom(folder, tmp_path / "png", tags="PatientId")
    with pytest.raises(ConfigError, match="bits=12 is not one of 8, 16"):
        convert_dicom(folder, tmp_path / "png", bits=12)
    assert png_name("a/1.2.840.113.dcm") == "a/1.2.840.113.png"
    assert png_name("a/1.2.840.113") == "a/1.2.840.113.png"


def test_cli(folder, tmp_path, capsys):
    code = main(["convert", "dicom", str(folder), "--out-images", str(tmp_path / "png"),
                 "--out", str(tmp_path / "c.json"), "--bits", "16"])
    assert code == 0
    assert re.search(r"images out +: 2\n", capsys.readouterr().out)


def test_real_dicoms(tmp_path):
    data = shared("dicom")
    dataset, report = convert_dicom(data, tmp_path / "png", tmp_path / "coco.json")
    COCO(str(tmp_path / "coco.json"))
    assert report.counts["images out"] == 4
    by_source = {img["source"]: img for img in dataset.imgs.values()}
    unci = by_source["pydicom_data_wg04/RG1_UNCI.dcm"]
    assert (unci["height"], unci["width"]) == (1955, 1841)
    assert unci["dicom"]["PhotometricInterpretation"] == "MONOCHROME1"
    assert "pixel_spacing" not in unci  # the file stores PixelSpacing 0\0
    siim = next(img for src, img in by_source.items() if src.startswith("torchxrayvision_tests/"))
    assert (siim["height"], siim["width"]) == (1024, 1024) and siim["view"] == "PA"
    pngs = {name: cv2.imread(str(tmp_path / "png" / f"pydicom_data_wg04/RG1_{name}.png"), cv2.IMREAD_UNCHANGED)
            for name in ("UNCI", "J2KI", "J2KR")}
    # RG1_UNCI is the decompressed lossy J2KI (same SOPInstanceUID, DerivationDescription
    # "JPEG 2000 irreversible (lossy) 10:1"): identical pixels; the lossless J2KR is close.
    assert np.array_equal(pngs["UNCI"], pngs["J2KI"])
    assert np.abs(pngs["UNCI"].astype(int) - pngs["J2KR"]).mean() < 1.0
    small = cv2.resize(pngs["UNCI"], (92, 98), interpolation=cv2.INTER_AREA).astype(float)
    assert small[40:60, 20:30].mean() < small[85:, 40:50].mean()  # inverted: lungs darker than the abdomen
