"""convert rtstruct: placement by patient coordinates, rasterising, reporting, bad input, real RTSTRUCTs."""
from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from skimage.draw import polygon as skimage_polygon

from cococxr.cli import main
from cococxr.converters.dicom_seg import convert_dicom_seg
from cococxr.converters.export_nifti import export_nifti
from cococxr.converters.rtstruct import convert_rtstruct
from cococxr.errors import ConversionError
from cococxr.io import read_image
from cococxr.masks import annotation_to_mask
from cococxr.volumes.layout import SliceLayout
from cococxr.volumes.stack import case_volumes, class_volume

from helpers import ct_series, patient_points, read_series, rtstruct, shared

BODY = [(1.5, 1.5), (17.5, 1.5), (17.5, 13.5), (1.5, 13.5)]
HOLE = [(6.5, 5.5), (10.5, 5.5), (10.5, 9.5), (6.5, 9.5)]
LESION = [(12.2, 8.1), (16.7, 9.4), (15.1, 12.8), (11.3, 12.2)]


def _skimage(polygons, rows, columns):
    """Independent oracle: skimage.draw.polygon of each (columns, rows) polygon, XOR."""
    mask = np.zeros((rows, columns), np.uint8)
    for cols, rws in polygons:
        one = np.zeros_like(mask)
        rr, cc = skimage_polygon(np.asarray(rws), np.asarray(cols), (rows, columns))
        one[rr, cc] = 1
        mask ^= one
    return mask


@pytest.fixture
def case(tmp_path):
    """A 4-slice CT series and an RTSTRUCT: body (with a hole on slice 1), a lesion, one contour between slices."""
    paths = ct_series(tmp_path / "patient" / "ct")
    images = read_series(paths)
    between = patient_points(images[3], [2.0, 8.0, 8.0], [2.0, 2.0, 8.0])
    between[:, 2] -= 1.0  # 1 mm below slice 3 (slices are 2 mm apart): on no slice
    rois = {"body": [(0, BODY), (1, BODY), (1, HOLE), (2, BODY)], "lesion": [(2, LESION)]}
    rtstruct(tmp_path / "patient" / "rt.dcm", images, rois, extra_contours={"lesion": [between]})
    return tmp_path, images


def _masks(dataset):
    """{(slice_index, category name): mask} of a converted dataset."""
    out = {}
    for ann in dataset.anns.values():
        img = dataset.imgs[ann["image_id"]]
        out[img["slice_index"], dataset.cats[ann["category_id"]]["name"]] = annotation_to_mask(
            ann, img["height"], img["width"])
    return out


def test_contours_are_placed_by_position_and_match_an_independent_rasteriser(case):
    tmp_path, images = case
    out = tmp_path / "out"
    dataset, report = convert_rtstruct(tmp_path / "patient", out=out / "c.json", out_images=out / "images")
    assert [c["name"] for c in dataset.cats.values()] == ["body", "lesion"]
    assert [(c["label_value"], c["roi_number"], c["roi_type"]) for c in dataset.cats.values()] == \
        [(1, 1, "ORGAN"), (2, 2, "ORGAN")]
    assert report.counts["contours in"] == 6 and report.counts["contours placed"] == 5
    assert report.counts["contours not placed"] == 1 and report.counts["images out"] == 4
    assert any("'lesion' contour 2" in n and "from the nearest slice" in n for n in report.notes)
    masks = _masks(dataset)
    assert sorted(masks) == [(0, "body"), (1, "body"), (2, "body"), (2, "lesion")]
    cols, rws = zip(*BODY)
    hole = tuple(zip(*HOLE))
    np.testing.assert_array_equal(masks[1, "body"], _skimage([(cols, rws), hole], 16, 20))
    np.testing.assert_array_equal(masks[2, "lesion"], _skimage([tuple(zip(*LESION))], 16, 20))
    assert masks[1, "body"].sum() == 16 * 12 - 4 * 4
    # slices are ordered by position whatever the file names say, and keep their HU exactly
    for img in dataset.imgs.values():
        ds = images[img["slice_index"]]
        assert img["sop_instance_uid"] == ds.SOPInstanceUID and img["image_position"] == list(ds.ImagePositionPatient)
        hu = read_image(dataset.image_path(img["id"])) * img["rescale_slope"] + img["rescale_intercept"]
        np.testing.assert_array_equal(hu, ds.pixel_array * 1.0 - 1024)
    assert dataset.imgs[1]["series_uid"] == images[0].SeriesInstanceUID and dataset.imgs[1]["case_id"] == "PAT-1"


def test_workers_give_identical_output(case):
    tmp_path, _ = case
    for workers in (1, 2):
        convert_rtstruct(tmp_path / "patient", out=tmp_path / f"o{workers}" / "c.json",
                         out_images=tmp_path / f"o{workers}" / "images", workers=workers)
    assert (tmp_path / "o1" / "c.json").read_bytes() == (tmp_path / "o2" / "c.json").read_bytes()


def _nothing_written(tmp_path):
    assert not (tmp_path / "out").exists()


def test_strict_refuses_contours_on_no_slice(case):
    tmp_path, _ = case
    with pytest.raises(ConversionError, match=r"1 contour\(s\) cannot be placed"):
        convert_rtstruct(tmp_path / "patient", out=tmp_path / "out" / "c.json", out_images=tmp_path / "out" / "i",
                         strict=True)
    _nothing_written(tmp_path)


def test_a_frame_of_reference_that_matches_no_series(case):
    tmp_path, images = case
    rtstruct(tmp_path / "patient" / "rt.dcm", images, {"body": [(0, BODY)]}, frame_uid="1.2.3.999")
    with pytest.raises(ConversionError) as info:
        convert_rtstruct(tmp_path / "patient", out=tmp_path / "out" / "c.json", out_images=tmp_path / "out" / "i")
    message = str(info.value)
    assert "rt.dcm: its frame of reference ['1.2.3.999'] matches no image series" in message
    assert images[0].FrameOfReferenceUID in message and "--ignore-frame-of-reference" in message
    _nothing_written(tmp_path)
    dataset, report = convert_rtstruct(tmp_path / "patient", out=tmp_path / "ok" / "c.json",
                                       out_images=tmp_path / "ok" / "i", ignore_frame_of_reference=True)
    assert len(dataset.anns) == 1 and any("was not checked" in n for n in report.notes)


def test_no_rtstruct_and_two_on_one_series(case, tmp_path):
    root, images = case
    with pytest.raises(ConversionError, match="no RTSTRUCT file found"):
        convert_rtstruct(root / "patient" / "ct", out=root / "out" / "c.json", out_images=root / "out" / "i")
    shutil.copy(root / "patient" / "rt.dcm", root / "patient" / "rt2.dcm")
    with pytest.raises(ConversionError, match="are both on series"):
        convert_rtstruct(root / "patient", out=root / "out" / "c.json", out_images=root / "out" / "i")
    _nothing_written(root)


def test_rtstruct_to_nifti_and_to_dicom_seg_and_back(case):
    tmp_path, images = case
    out = tmp_path / "out"
    dataset, _ = convert_rtstruct(tmp_path / "patient", out=out / "c.json", out_images=out / "images")
    with pytest.raises(ConversionError, match="overlaps annotation"):
        export_nifti(out / "c.json", out=out / "nifti")  # the lesion lies inside the body
    export_nifti(out / "c.json", out=out / "nifti", overlap="last")
    volume = nib.load(out / "nifti" / "PAT-1.nii.gz")
    data = np.asanyarray(volume.dataobj)
    masks = _masks(dataset)
    assert data.shape == (20, 16, 4)  # (columns, rows, slices) of the series
    expected = masks[2, "body"] * 1
    expected[masks[2, "lesion"] != 0] = 2
    np.testing.assert_array_equal(data[:, :, 2].T, expected)
    ipp = np.asarray(images[2].ImagePositionPatient, float)
    np.testing.assert_allclose(volume.affine @ [0, 0, 2, 1], [-ipp[0], -ipp[1], ipp[2], 1], atol=1e-4)
    assert main(["export", "dicom-seg", str(out / "c.json"), "--out", str(out / "seg"), "--series",
                 str(tmp_path / "patient" / "ct")]) == 0
    again, report = convert_dicom_seg(tmp_path / "patient" / "ct", seg=[str(out / "seg" / "PAT-1.dcm")],
                                      out=tmp_path / "again" / "c.json", out_images=tmp_path / "again" / "images")
    assert [c["name"] for c in again.cats.values()] == ["body", "lesion"]
    assert _masks(again).keys() == masks.keys()
    assert all(np.array_equal(_masks(again)[key], masks[key]) for key in masks)


def test_nsclc_lungs_match_skimage_per_slice(tmp_path):
    """The NSCLC CT + RTSTRUCT: every contour placed, lungs at per-slice Dice >= 0.99 vs skimage.draw.polygon."""
    root = shared("volumes/rtstruct/mirp_NSCLC_LUNG1-001")
    dataset, report = convert_rtstruct(root, out=tmp_path / "c.json", out_images=tmp_path / "images", workers=2)
    assert report.counts["contours placed"] == 358 and report.counts["contours not placed"] == 0
    assert report.counts["images out"] == 134
    assert [c["name"] for c in dataset.cats.values()] == ["GTV-1", "Spinal-Cord", "Lung-Left", "Lung-Right"]
    # independent placement: pydicom + z matching + skimage, nothing of cococxr
    slices = {}
    for path in (root / "image").glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        slices[round(float(ds.ImagePositionPatient[2]), 2)] = ds
    rt = pydicom.dcmread(root / "mask_rtstruct" / "1-1.dcm")
    names = {r.ROINumber: r.ROIName for r in rt.StructureSetROISequence}
    expected: dict[tuple[str, str], list] = {}
    for roi in rt.ROIContourSequence:
        for contour in roi.ContourSequence:
            points = np.asarray(contour.ContourData, float).reshape(-1, 3)
            ds = slices[round(points[0, 2], 2)]
            x0, y0 = float(ds.ImagePositionPatient[0]), float(ds.ImagePositionPatient[1])
            columns = (points[:, 0] - x0) / float(ds.PixelSpacing[1])
            rows = (points[:, 1] - y0) / float(ds.PixelSpacing[0])
            expected.setdefault((ds.SOPInstanceUID, names[roi.ReferencedROINumber]), []).append((columns, rows))
    by_uid = {img["sop_instance_uid"]: img for img in dataset.imgs.values()}
    dices = {}
    for name in ("Lung-Left", "Lung-Right"):
        cat = dataset.cat_id(name)
        for (uid, roi), polygons in expected.items():
            if roi != name:
                continue
            img = by_uid[uid]
            anns = dataset.anns_for(img["id"], cat_ids=[cat])
            ours = annotation_to_mask(anns[0], 512, 512) if anns else np.zeros((512, 512), np.uint8)
            theirs = _skimage(polygons, 512, 512)
            if ours.any() and theirs.any():
                dices[name, uid] = 2 * np.count_nonzero(ours & theirs) / (ours.sum() + theirs.sum())
    assert len(dices) == 88 + 86 and min(dices.values()) >= 0.99
    img = next(iter(dataset.imgs.values()))
    ds = pydicom.dcmread(root / img["source"])
    hu = read_image(dataset.image_path(img["id"])) * img["rescale_slope"] + img["rescale_intercept"]
    np.testing.assert_array_equal(hu, pydicom.pixels.apply_modality_lut(ds.pixel_array, ds))


def test_rt_utils_missing_references_and_foreign_frame_of_reference(tmp_path):
    root = shared("volumes/rtstruct/rt-utils/mock_data")
    work = tmp_path / "mock"
    (work / "ct").mkdir(parents=True)
    for name in ("ct_1.dcm", "ct_2.dcm"):
        shutil.copy(root / name, work / "ct" / name)
    dataset, report = convert_rtstruct(work / "ct", rtstruct=[str(root / "non_existent_reference_rt.dcm")],
                                       out=tmp_path / "a.json", out_images=tmp_path / "a")
    assert report.counts["contours in"] == 12 and report.counts["contours placed"] == 8
    assert report.counts["contours not placed"] == 4
    unplaced = [n for n in report.notes if "from the nearest slice" in n]
    assert len(unplaced) == 4 and all("which is not in the series" in n for n in unplaced)
    assert len(dataset.imgs) == 2 and len(dataset.cats) == 4
    with pytest.raises(ConversionError, match="rt.dcm: its frame of reference"):
        convert_rtstruct(work / "ct", rtstruct=[str(root / "rt.dcm")], out=tmp_path / "b.json",
                         out_images=tmp_path / "b")
    dataset, report = convert_rtstruct(work / "ct", rtstruct=[str(root / "rt.dcm")], out=tmp_path / "b.json",
                                       out_images=tmp_path / "b", ignore_frame_of_reference=True)
    (ann,) = dataset.anns.values()  # an outer and an inner contour on one slice: a ring
    ct = pydicom.dcmread(root / "ct_1.dcm", stop_before_pixels=True)
    polygons = []
    for contour in pydicom.dcmread(root / "rt.dcm").ROIContourSequence[0].ContourSequence:
        points = np.asarray(contour.ContourData, float).reshape(-1, 3)
        polygons.append(((points[:, 0] - float(ct.ImagePositionPatient[0])) / float(ct.PixelSpacing[1]),
                         (points[:, 1] - float(ct.ImagePositionPatient[1])) / float(ct.PixelSpacing[0])))
    expected = _skimage(polygons, 512, 512)
    assert 0 < expected.sum() < _skimage(polygons[:1], 512, 512).sum()
    np.testing.assert_array_equal(annotation_to_mask(ann, 512, 512), expected)


def test_rt_utils_oblique_series_without_frame_of_reference(tmp_path):
    """Oblique planes and no FrameOfReferenceUID: the RTSTRUCT's series reference is used, with a note."""
    root = shared("volumes/rtstruct/rt-utils/oriented_data")
    shutil.copytree(root, tmp_path / "oriented", ignore=shutil.ignore_patterns("*.txt"))
    images = read_series(sorted((tmp_path / "oriented").glob("*.dcm")))
    square = [(10.5, 5.5), (20.5, 5.5), (20.5, 30.5), (10.5, 30.5)]
    rtstruct(tmp_path / "rt.dcm", images, {"box": [(1, square)]})
    dataset, report = convert_rtstruct(tmp_path / "oriented", rtstruct=[str(tmp_path / "rt.dcm")],
                                       out=tmp_path / "c.json", out_images=tmp_path / "images")
    assert any("has no FrameOfReferenceUID" in n for n in report.notes)
    (ann,) = dataset.anns.values()
    img = dataset.imgs[ann["image_id"]]
    layout = SliceLayout.from_record(img)
    assert img["sop_instance_uid"] == images[1].SOPInstanceUID and layout.source_index(img["slice_index"]) == 1
    pixels = np.zeros((images[1].Rows, images[1].Columns), np.uint8)
    pixels[6:31, 11:21] = 1  # pixel centres inside the square, in the DICOM pixel layout
    np.testing.assert_array_equal(annotation_to_mask(ann, img["height"], img["width"]),
                                  layout.plane_to_display(pixels.T))
    (case,) = case_volumes(dataset).values()
    assert class_volume(dataset, case, [1]).sum() == 250
