"""convert nifti / export nifti: layouts, records, exact round trips, bad input, real TotalSegmentator maps."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from cococxr.cli import main
from cococxr.coco import CocoDataset
from cococxr.converters.export_nifti import export_nifti
from cococxr.converters.nifti import convert_nifti
from cococxr.errors import ConversionError, ImageReadError
from cococxr.io import read_image
from cococxr.volumes.intensity import apply_window
from cococxr.volumes.layout import SliceLayout

from helpers import las_affine, save_nifti, shared, synthetic_case

LABEL_MAP = {"1": "liver", "2": "spleen", "5": "kidney"}


@pytest.fixture
def pair(tmp_path):
    """A LAS CT volume and its labels as .nii.gz files, plus a label map."""
    image, labels = synthetic_case()
    affine = las_affine()
    save_nifti(tmp_path / "in" / "ct.nii.gz", image, affine)
    save_nifti(tmp_path / "in" / "ct_seg.nii.gz", labels, affine)
    (tmp_path / "map.json").write_text(json.dumps(LABEL_MAP))
    return tmp_path, image, labels, affine


def _nothing_written(tmp_path):
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def _voxels(path):
    image = nib.load(path)
    return np.asanyarray(image.dataobj), image.affine, image.get_data_dtype()


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_round_trip_is_voxel_identical_with_the_same_affine(pair, axis):
    tmp_path, image, labels, affine = pair
    out = tmp_path / "out"
    dataset, report = convert_nifti(tmp_path / "in" / "ct.nii.gz", tmp_path / "in" / "ct_seg.nii.gz",
                                    out=out / "coco.json", out_images=out / "images", axis=axis,
                                    label_map=str(tmp_path / "map.json"))
    layout = SliceLayout.from_affine(image.shape, affine, axis)
    assert report.counts["images out"] == layout.num_slices == len(dataset.imgs)
    assert [c["name"] for c in dataset.cats.values()] == ["liver", "spleen", "kidney"]
    assert [c["label_value"] for c in dataset.cats.values()] == [1, 2, 5]
    for ann in dataset.anns.values():
        assert ann["iscrowd"] == 0 and isinstance(ann["segmentation"]["counts"], str)
    first = dataset.imgs[1]
    assert first["case_id"] == "ct" and first["volume"] == "ct.nii.gz" and first["label_volume"] == "ct_seg.nii.gz"
    assert first["axis"] == axis and first["num_slices"] == layout.num_slices and first["slice_index"] == 0
    stored = nib.load(tmp_path / "in" / "ct.nii.gz").affine  # float32 in the header
    assert first["spacing"] == SliceLayout.from_affine(image.shape, stored, axis).spacing
    assert first["affine"] == stored.tolist()
    assert first["source_orientation"] == "LAS" and first["orientation"] == layout.orientation
    # the 16-bit slices give the raw intensities back exactly
    stack = layout.to_display(image)
    for img in dataset.imgs.values():
        pixels = read_image(dataset.image_path(img["id"]))
        raw = pixels.astype(np.float64) * img["rescale_slope"] + img["rescale_intercept"]
        np.testing.assert_array_equal(raw, stack[img["slice_index"]])
    report = export_nifti(out / "coco.json", out=out / "back")
    data, back_affine, dtype = _voxels(out / "back" / "ct.nii.gz")
    np.testing.assert_array_equal(data, labels)
    assert dtype == np.uint8 and np.array_equal(back_affine, nib.load(tmp_path / "in" / "ct_seg.nii.gz").affine)
    assert report.counts["label volumes out"] == 1


def test_window_gives_8_bit_slices(pair):
    tmp_path, image, _, affine = pair
    out = tmp_path / "out"
    dataset, _ = convert_nifti(tmp_path / "in" / "ct.nii.gz", tmp_path / "in" / "ct_seg.nii.gz",
                               out=out / "coco.json", out_images=out / "images", window="abdomen")
    layout = SliceLayout.from_affine(image.shape, affine, "axial")
    img = dataset.imgs[3]
    assert img["bit_depth"] == 8 and img["window"] == [400.0, 40.0] and "rescale_slope" not in img
    pixels = read_image(dataset.image_path(3))
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, apply_window(layout.take_slice(image, 2), (400.0, 40.0)))


def test_without_label_map_categories_are_named_by_value_and_empty_slices_can_be_left_out(pair):
    tmp_path, _, labels, _ = pair
    out = tmp_path / "out"
    dataset, report = convert_nifti(tmp_path / "in" / "ct.nii.gz", tmp_path / "in" / "ct_seg.nii.gz",
                                    out=out / "coco.json", out_images=out / "images", keep_empty_slices=False)
    assert [c["name"] for c in dataset.cats.values()] == ["label_1", "label_2", "label_5"]
    assert report.counts["empty slices left out"] == 2 and len(dataset.imgs) == 4
    assert any("no label map" in note for note in report.notes)
    export_nifti(out / "coco.json", out=out / "back")
    np.testing.assert_array_equal(_voxels(out / "back" / "ct.nii.gz")[0], labels)


def _nnunet(tmp_path, cases=("a", "b", "c", "d")):
    root = tmp_path / "Dataset001_Test"
    for n, case in enumerate(cases):
        image, labels = synthetic_case(seed=n)
        save_nifti(root / "imagesTr" / f"{case}_0000.nii.gz", image, las_affine())
        save_nifti(root / "imagesTr" / f"{case}_0001.nii.gz", image // 2, las_affine())  # second channel
        save_nifti(root / "labelsTr" / f"{case}.nii.gz", labels, las_affine())
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT", "1": "CT2"}, "labels": {"background": 0, "liver": 1, "spleen": 2, "kidney": 5},
        "numTraining": len(cases), "file_ending": ".nii.gz"}))
    return root


def test_nnunet_layout_output_is_identical_for_any_worker_count_and_splits_by_case(tmp_path):
    root = _nnunet(tmp_path)
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        dataset, report = convert_nifti(root, out=out / "coco.json", out_images=out / "images", workers=workers)
        outputs.append(out)
    assert (outputs[0] / "coco.json").read_bytes() == (outputs[1] / "coco.json").read_bytes()
    pngs = sorted(p.relative_to(outputs[0] / "images") for p in (outputs[0] / "images").rglob("*.png"))
    assert pngs == sorted(p.relative_to(outputs[1] / "images") for p in (outputs[1] / "images").rglob("*.png"))
    assert all((outputs[0] / "images" / p).read_bytes() == (outputs[1] / "images" / p).read_bytes() for p in pngs)
    assert [c["name"] for c in dataset.cats.values()] == ["liver", "spleen", "kidney"]
    assert report.counts["cases in"] == 4 and any("other channels" in n for n in report.notes)
    assert {img["volume"] for img in dataset.imgs.values()} == {f"imagesTr/{c}_0000.nii.gz" for c in "abcd"}
    code = main(["split", str(outputs[0] / "coco.json"), "--by", "case_id", "--fractions", "train=0.5,val=0.5",
                 "--out-dir", str(tmp_path / "splits")])
    assert code == 0
    cases = {name: {img["case_id"] for img in CocoDataset(tmp_path / "splits" / f"{name}.json",
                                                                     outputs[0] / "images").imgs.values()}
             for name in ("train", "val")}
    assert cases["train"] and cases["val"] and not cases["train"] & cases["val"]
    assert cases["train"] | cases["val"] == set("abcd")
    assert all(len(CocoDataset(tmp_path / "splits" / f"{n}.json", outputs[0] / "images").imgs) == 6 * len(cases[n]) for n in cases)


def test_msd_layout_reads_the_training_list_and_a_4d_channel(tmp_path):
    root = tmp_path / "Task02_Heart"
    image, labels = synthetic_case()
    four_d = np.stack([image, image + 7], axis=-1)
    save_nifti(root / "imagesTr" / "la_003.nii.gz", four_d, las_affine())
    save_nifti(root / "labelsTr" / "la_003.nii.gz", labels, las_affine())
    (root / "dataset.json").write_text(json.dumps({
        "name": "Heart", "labels": {"0": "background", "1": "left atrium", "2": "b", "5": "c"},
        "training": [{"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}]}))
    out = tmp_path / "out"
    dataset, report = convert_nifti(root, out=out / "coco.json", out_images=out / "images", channel=1)
    assert dataset.cats[1]["name"] == "left atrium"
    img = dataset.imgs[2]
    pixels = read_image(dataset.image_path(2)).astype(np.int64) + int(img["rescale_intercept"])
    layout = SliceLayout.from_record(img)
    np.testing.assert_array_equal(pixels, layout.take_slice(image + 7, 1))
    assert any("channel 1 of 2" in note for note in report.notes)


def test_folders_pair_by_case_and_list_every_unpaired_file(tmp_path):
    image, labels = synthetic_case()
    for case in ("a", "b"):
        save_nifti(tmp_path / "images" / f"{case}_0000.nii.gz", image, las_affine())
    save_nifti(tmp_path / "labels" / "a.nii.gz", labels, las_affine())
    save_nifti(tmp_path / "labels" / "z.nii.gz", labels, las_affine())
    with pytest.raises(ConversionError) as info:
        convert_nifti(tmp_path / "images", tmp_path / "labels", out=tmp_path / "out" / "c.json",
                      out_images=tmp_path / "out" / "images")
    assert "b_0000.nii.gz has no label volume" in str(info.value) and "z.nii.gz has no image" in str(info.value)
    _nothing_written(tmp_path)


def test_missing_labels_can_be_allowed(tmp_path):
    image, labels = synthetic_case()
    for case in ("a", "b"):
        save_nifti(tmp_path / "images" / f"{case}_0000.nii.gz", image, las_affine())
    save_nifti(tmp_path / "labels" / "a.nii.gz", labels, las_affine())
    dataset, report = convert_nifti(tmp_path / "images", tmp_path / "labels", out=tmp_path / "o" / "c.json",
                                    out_images=tmp_path / "o" / "images", allow_missing_labels=True)
    b_images = [img for img in dataset.imgs.values() if img["case_id"] == "b"]
    assert len(b_images) == 6 and all("label_volume" not in img for img in b_images)
    assert report.counts["label volumes in"] == 1 and report.counts["image volumes in"] == 2


def _bad_case(tmp_path, **kwargs):
    with pytest.raises((ConversionError, ImageReadError)) as info:
        convert_nifti(tmp_path / "in" / "ct.nii.gz", tmp_path / "in" / "ct_seg.nii.gz", out=tmp_path / "out" / "c.json",
                      out_images=tmp_path / "out" / "images", **kwargs)
    _nothing_written(tmp_path)
    return str(info.value)


def test_label_values_missing_from_the_map_are_named_with_a_slice(pair):
    tmp_path, *_ = pair
    (tmp_path / "map.json").write_text(json.dumps({"1": "liver", "2": "spleen"}))
    message = _bad_case(tmp_path, label_map=str(tmp_path / "map.json"))
    assert "ct_seg.nii.gz has value(s) 5 (e.g. axial slice 3)" in message and "known: 1, 2" in message


def test_shapes_that_disagree(pair):
    tmp_path, _, labels, affine = pair
    save_nifti(tmp_path / "in" / "ct_seg.nii.gz", labels[:, :, :5], affine)
    message = _bad_case(tmp_path)
    assert "has shape (12, 10, 5) but its image" in message and "ct.nii.gz has shape (12, 10, 6)" in message


def test_affines_that_disagree(pair):
    tmp_path, _, labels, affine = pair
    moved = affine.copy()
    moved[0, 3] += 0.5
    save_nifti(tmp_path / "in" / "ct_seg.nii.gz", labels, moved)
    assert "different affines (largest difference 0.5 mm" in _bad_case(tmp_path)
    dataset, _ = convert_nifti(tmp_path / "in" / "ct.nii.gz", tmp_path / "in" / "ct_seg.nii.gz",
                               out=tmp_path / "ok" / "c.json", out_images=tmp_path / "ok" / "images",
                               affine_tolerance=0.6)
    assert len(dataset.imgs) == 6


def test_a_truncated_nii_gz_fails_before_anything_is_written(pair):
    tmp_path, *_ = pair
    image = tmp_path / "in" / "ct.nii.gz"  # random int16 voxels: the data are most of the file
    image.write_bytes(image.read_bytes()[:-300])
    message = _bad_case(tmp_path)
    assert f"image {image}: truncated or corrupt" in message and "(12, 10, 6) voxels of int16" in message
    labels = tmp_path / "in" / "ct_seg.nii.gz"
    labels.write_bytes(labels.read_bytes()[:60])  # not even the header is complete
    image.write_bytes(labels.read_bytes())
    message = _bad_case(tmp_path)
    assert f"{image}: truncated or corrupt: the gzip stream is broken" in message


def test_a_bad_second_case_leaves_no_slices_of_the_first(tmp_path):
    root = _nnunet(tmp_path, cases=("a", "b"))
    labels = root / "labelsTr" / "b.nii.gz"
    labels.write_bytes(labels.read_bytes()[:100])
    with pytest.raises(ImageReadError, match="b.nii.gz"):
        convert_nifti(root, out=tmp_path / "out" / "c.json", out_images=tmp_path / "out" / "images")
    _nothing_written(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_export_refuses_incomplete_cases_and_overlaps(pair):
    tmp_path, *_ = pair
    out = tmp_path / "out"
    convert_nifti(tmp_path / "in" / "ct.nii.gz", tmp_path / "in" / "ct_seg.nii.gz", out=out / "coco.json",
                  out_images=out / "images")
    data = json.loads((out / "coco.json").read_text())
    dropped = {**data, "images": [i for i in data["images"] if i["slice_index"] != 4]}
    dropped["annotations"] = [a for a in data["annotations"] if a["image_id"] in {i["id"] for i in dropped["images"]}]
    (tmp_path / "dropped.json").write_text(json.dumps(dropped))
    with pytest.raises(ConversionError, match="case 'ct' lacks slice"):
        export_nifti(tmp_path / "dropped.json", out=tmp_path / "back")
    overlap = json.loads(json.dumps(data))
    first = next(a for a in overlap["annotations"] if a["category_id"] == 1)
    overlap["annotations"].append({**first, "id": 999, "category_id": 2})
    (tmp_path / "overlap.json").write_text(json.dumps(overlap))
    with pytest.raises(ConversionError, match="overlaps annotation"):
        export_nifti(tmp_path / "overlap.json", out=tmp_path / "back")
    assert not (tmp_path / "back").exists() or not any((tmp_path / "back").iterdir())
    export_nifti(tmp_path / "overlap.json", out=tmp_path / "back", overlap="last")
    assert (tmp_path / "back" / "ct.nii.gz").is_file()


def test_cli_convert_and_export(pair, capsys):
    tmp_path, _, labels, _ = pair
    out = tmp_path / "out"
    assert main(["convert", "nifti", str(tmp_path / "in" / "ct.nii.gz"), str(tmp_path / "in" / "ct_seg.nii.gz"),
                 "--out", str(out / "c.json"), "--out-images", str(out / "images"), "--label-map",
                 str(tmp_path / "map.json"), "--window", "400,40"]) == 0
    printed = capsys.readouterr().out
    assert "images out" in printed and "annotations out: kidney" in printed
    assert main(["export", "nifti", str(out / "c.json"), "--out", str(out / "back")]) == 0
    np.testing.assert_array_equal(_voxels(out / "back" / "ct.nii.gz")[0], labels)


@pytest.mark.parametrize("image, labels", [
    ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
    ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz"),
    ("example_seg_dicom.nii.gz", "example_seg_dicom.nii.gz"),  # the LAS map of the DICOM series, as its own image
])
def test_totalsegmentator_label_maps_round_trip_voxel_identical(tmp_path, image, labels):
    root = shared("volumes/nifti/TotalSegmentator")
    out = tmp_path / "out"
    dataset, report = convert_nifti(root / image, root / labels, out=out / "c.json", out_images=out / "images")
    original, affine, dtype = _voxels(root / labels)
    values = sorted(set(np.unique(original).tolist()) - {0})
    assert [c["label_value"] for c in dataset.cats.values()] == values
    assert report.counts["images out"] == original.shape[2]
    export_nifti(out / "c.json", out=out / "back")
    back, back_affine, back_dtype = _voxels(out / "back" / f"{image.split('.')[0]}.nii.gz")
    np.testing.assert_array_equal(back, original)
    assert np.array_equal(back_affine, affine) and back_dtype == dtype
    first = next(iter(dataset.imgs.values()))
    raw = nib.load(root / image).get_fdata()
    layout = SliceLayout.from_record(first)
    pixels = read_image(dataset.image_path(first["id"])).astype(np.float64)
    np.testing.assert_array_equal(pixels * first["rescale_slope"] + first["rescale_intercept"],
                                  layout.take_slice(raw, 0))
