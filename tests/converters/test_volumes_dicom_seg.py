"""convert dicom-seg / export dicom-seg: binary, fractional, overlapping, label-map SEGs; dcmqi's NRRD references."""
from __future__ import annotations

import json
import shutil

import nrrd
import numpy as np
import pydicom
import pytest

from cococxr.coco import CocoDataset
from cococxr.converters.dicom_seg import convert_dicom_seg
from cococxr.converters.export_dicom_seg import export_dicom_seg
from cococxr.converters.nifti import convert_nifti
from cococxr.errors import ConversionError
from cococxr.masks import annotation_to_mask
from cococxr.volumes.stack import case_volumes, class_volume

from helpers import ct_series, las_affine, read_series, save_nifti, seg, shared, synthetic_case

DCMQI = "volumes/dicomseg/dcmqi/segmentations"


@pytest.fixture
def series(tmp_path):
    paths = ct_series(tmp_path / "ct")
    return tmp_path, paths, read_series(paths)


def _masks():
    masks = np.zeros((4, 16, 20, 2), bool)
    masks[1:3, 4:9, 5:12, 0] = True
    masks[2, 6:12, 8:15, 1] = True  # overlaps segment 1 on slice 2
    return masks


def test_overlapping_binary_segments_stay_separate(series):
    tmp_path, _, images = series
    seg(tmp_path / "seg.dcm", images, _masks(), ["liver", "tumour"])
    dataset, report = convert_dicom_seg(tmp_path / "ct", seg=[str(tmp_path / "seg.dcm")], out=tmp_path / "o" / "c.json",
                                        out_images=tmp_path / "o" / "images")
    assert [(c["name"], c["label_value"]) for c in dataset.cats.values()] == [("liver", 1), ("tumour", 2)]
    assert dataset.cats[2]["segment_type"] == ["91772007", "SCT", "Organ"]
    assert dataset.cats[2]["segment_category"] == ["85756007", "SCT", "Tissue"]
    assert report.counts["frames in"] == 3 and report.counts["images out"] == 4
    (case,) = case_volumes(dataset).values()
    np.testing.assert_array_equal(class_volume(dataset, case, [1, 2]).astype(bool), _masks())
    on_two = [a for a in dataset.anns.values() if dataset.imgs[a["image_id"]]["slice_index"] == 2]
    assert sorted(a["category_id"] for a in on_two) == [1, 2]


def test_fractional_segments_are_thresholded(series):
    tmp_path, _, images = series
    fractions = np.zeros((4, 16, 20, 1), np.float32)
    fractions[1, 2:6, 2:6, 0] = 0.7
    fractions[1, 8:10, 8:10, 0] = 0.3
    seg(tmp_path / "frac.dcm", images, fractions, ["liver"], fractional=True)
    dataset, report = convert_dicom_seg(tmp_path / "ct", seg=[str(tmp_path / "frac.dcm")],
                                        out=tmp_path / "o" / "c.json", out_images=tmp_path / "o" / "images")
    (ann,) = dataset.anns.values()
    assert ann["area"] == 16 and dataset.imgs[ann["image_id"]]["slice_index"] == 1
    assert any("thresholded at 0.5" in n for n in report.notes)
    dataset, _ = convert_dicom_seg(tmp_path / "ct", seg=[str(tmp_path / "frac.dcm")], fraction_threshold=0.2,
                                   out=tmp_path / "p" / "c.json", out_images=tmp_path / "p" / "images")
    assert next(iter(dataset.anns.values()))["area"] == 20


def test_a_seg_referencing_missing_frames_is_an_error_and_writes_nothing(series):
    tmp_path, paths, images = series
    seg(tmp_path / "seg.dcm", images, _masks(), ["liver", "tumour"])
    (missing,) = [p for p in paths if pydicom.dcmread(p).SOPInstanceUID == images[2].SOPInstanceUID]
    missing.unlink()
    with pytest.raises(ConversionError) as info:
        convert_dicom_seg(tmp_path / "ct", seg=[str(tmp_path / "seg.dcm")], out=tmp_path / "o" / "c.json",
                          out_images=tmp_path / "o" / "images")
    message = str(info.value)
    assert "seg.dcm: 2 of 3 frame(s) reference missing frames" in message
    assert f"references image {images[2].SOPInstanceUID} (not in the series)" in message
    assert not (tmp_path / "o").exists()


def test_a_seg_whose_frame_of_reference_matches_no_series(series, tmp_path_factory):
    tmp_path, _, images = series
    seg(tmp_path / "seg.dcm", images, _masks(), ["liver", "tumour"])
    other = tmp_path_factory.mktemp("other")
    ct_series(other / "ct", seed=3)
    shutil.copy(tmp_path / "seg.dcm", other / "seg.dcm")
    with pytest.raises(ConversionError, match=r"seg.dcm: its frame of reference \['[0-9.]+'\] matches no image"):
        convert_dicom_seg(other, out=other / "o" / "c.json", out_images=other / "o" / "images")
    assert not (other / "o").exists()


def _nrrd_masks(path, dataset):
    """{(sop uid, value): mask} of a dcmqi NRRD, placed by its own geometry on the COCO's slices."""
    data, header = nrrd.read(str(path))
    directions = np.asarray(header["space directions"], float)
    origin = np.asarray(header["space origin"], float)
    assert header["space"] == "left-posterior-superior"
    assert np.allclose(directions, np.diag(np.diag(directions))) and np.all(np.diag(directions) > 0)
    by_z = {}
    for img in dataset.imgs.values():
        assert np.allclose(img["image_position"][:2], origin[:2], atol=1e-3)  # same in-plane grid
        by_z[round(img["image_position"][2], 2)] = img
    out = {}
    for k in range(data.shape[2]):
        img = by_z[round(origin[2] + k * directions[2, 2], 2)]
        plane = data[:, :, k].T  # NRRD axis 0 runs along the columns (x), axis 1 along the rows (y)
        for value in set(np.unique(plane).tolist()) - {0}:
            out[img["sop_instance_uid"], value] = (plane == value).astype(np.uint8)
    return out


def _coco_masks(dataset):
    out = {}
    for ann in dataset.anns.values():
        img = dataset.imgs[ann["image_id"]]
        value = dataset.cats[ann["category_id"]]["label_value"]
        out[img["sop_instance_uid"], value] = annotation_to_mask(ann, img["height"], img["width"])
    return out


@pytest.mark.parametrize("folder, seg_file, references, padding", [
    ("ct-3slice", "liver.dcm", ["liver_seg.nrrd"], None),
    ("ct-3slice", "partial_overlaps.dcm", ["partial_overlaps-1.nrrd", "partial_overlaps-2.nrrd",
                                           "partial_overlaps-3.nrrd"], None),
    ("24x38x3/image", "sparse-labelmap-noppv.dcm", ["sparse_labelmap_noppv_seg.nrrd"], None),
    ("24x38x3/image", "sparse-labelmap-ppv5.dcm", ["sparse_labelmap_ppv5_seg.nrrd"], 5),
    ("23x38x3", None, ["23x38x3/nrrd/label.nrrd"], None),
    ("24x38x3", None, ["24x38x3/nrrd/label.nrrd"], None),
])
def test_dcmqi_segs_equal_their_nrrd_label_maps_voxel_for_voxel(tmp_path, folder, seg_file, references, padding):
    root = shared(DCMQI)
    dataset, report = convert_dicom_seg(root / folder, seg=[str(root / seg_file)] if seg_file else None,
                                        out=tmp_path / "c.json", out_images=tmp_path / "images")
    ours = _coco_masks(dataset)
    theirs = {}
    for reference in references:
        theirs.update(_nrrd_masks(root / reference, dataset))
    if padding is not None:  # dcmqi fills the slice the sparse SEG leaves out with the padding value
        theirs = {key: mask for key, mask in theirs.items() if key[1] != padding}
    assert sorted(ours) == sorted(theirs) and ours
    for key, mask in theirs.items():
        np.testing.assert_array_equal(ours[key], mask)


def test_dcmqi_round_trip_through_export_dicom_seg(tmp_path):
    root = shared(DCMQI)
    first, _ = convert_dicom_seg(root / "ct-3slice", seg=[str(root / "partial_overlaps.dcm")],
                                 out=tmp_path / "a.json", out_images=tmp_path / "a")
    report = export_dicom_seg(tmp_path / "a.json", out=tmp_path / "seg", series=str(root / "ct-3slice"))
    assert report.counts["SEG files out"] == 1 and report.counts["frames out"] == 7
    (written,) = (tmp_path / "seg").glob("*.dcm")
    again, _ = convert_dicom_seg(root / "ct-3slice", seg=[str(written)], out=tmp_path / "b.json",
                                 out_images=tmp_path / "b")
    assert list(again.cats.values()) == list(first.cats.values())  # labels, numbers and coded properties
    assert _coco_masks(again).keys() == _coco_masks(first).keys()
    assert all(np.array_equal(_coco_masks(again)[k], m) for k, m in _coco_masks(first).items())


def test_export_dicom_seg_needs_a_dicom_made_coco(tmp_path):
    image, labels = synthetic_case()
    save_nifti(tmp_path / "ct.nii.gz", image, las_affine())
    save_nifti(tmp_path / "seg.nii.gz", labels, las_affine())
    convert_nifti(tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz", out=tmp_path / "c.json", out_images=tmp_path / "i")
    ct_series(tmp_path / "ct")
    with pytest.raises(ConversionError, match="needs a COCO made from a DICOM series"):
        export_dicom_seg(tmp_path / "c.json", out=tmp_path / "seg", series=str(tmp_path / "ct"))
    assert not (tmp_path / "seg").exists()
    assert json.loads((tmp_path / "c.json").read_text())["images"]
    assert CocoDataset(tmp_path / "c.json")
