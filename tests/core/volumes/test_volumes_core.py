"""cococxr.volumes core: slice layout, intensity, label maps, contour filling, staging."""
from __future__ import annotations

import itertools
import json

import nibabel as nib
import numpy as np
import pytest
from matplotlib.path import Path as MplPath
from skimage.draw import polygon as skimage_polygon

from cococxr.errors import ConfigError, ConversionError
from cococxr.volumes.contours import fill_polygon, fill_polygons
from cococxr.volumes.dicom_series import scan_folder
from cococxr.volumes.intensity import Rescale, apply_window, parse_window
from cococxr.volumes.labelmaps import read_label_map
from cococxr.volumes.layout import SliceLayout, dicom_affine, display_orientation
from cococxr.volumes.staging import StagedFolder

from helpers import shared

_RAS_OF_CODE = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


def _permuted_affines():
    """Every axis permutation and flip, with anisotropic voxels, plus an oblique rotation."""
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            affine = np.zeros((4, 4))
            for source, (axis, sign) in enumerate(zip(perm, signs)):
                affine[axis, source] = sign * (0.5 + source)
            affine[:, 3] = [10.0, -20.0, 30.0, 1.0]
            yield affine
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    oblique = np.eye(4)
    oblique[:3, :3] = rotation @ np.diag([0.8, 0.8, 2.0])
    yield oblique


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_layout_shows_every_orientation_canonically_and_inverts_exactly(axis):
    volume = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    expected = display_orientation(axis)
    for affine in _permuted_affines():
        layout = SliceLayout.from_affine(volume.shape, affine, axis)
        stack = layout.to_display(volume)
        assert stack.shape == layout.display_shape
        np.testing.assert_array_equal(layout.to_source(stack), volume)
        for d in range(layout.num_slices):
            np.testing.assert_array_equal(layout.take_slice(volume, d), stack[d])
        # one step along each display axis (column, row, slice) moves in world space towards its code letter
        for display_axis, letter in zip((2, 1, 0), expected):
            source = layout.perm[display_axis]
            direction = affine[:3, source] * (-1 if layout.flips[display_axis] else 1)
            ras, sign = _RAS_OF_CODE[letter]
            assert np.argmax(np.abs(direction)) == ras and np.sign(direction[ras]) == sign
        assert layout.spacing == pytest.approx([layout.voxel_sizes[p] for p in layout.perm])


def test_layout_record_round_trips_and_rejects_inconsistent_records():
    affine = np.diag([-0.8, 0.9, 2.5, 1.0])
    layout = SliceLayout.from_affine((12, 10, 6), affine, "axial")
    record = json.loads(json.dumps(layout.record()))
    again = SliceLayout.from_record(record)
    assert again.perm == layout.perm and again.flips == layout.flips and np.array_equal(again.affine, affine)
    assert record["orientation"] == "LPS" and record["source_orientation"] == "LAS"
    assert record["spacing"] == [2.5, 0.9, 0.8]
    with pytest.raises(ConversionError, match="num_slices 7 disagrees"):
        SliceLayout.from_record({**record, "num_slices": 7}, "image 3")
    with pytest.raises(ConversionError, match="image 3: missing volume key"):
        SliceLayout.from_record({"axis": "axial"}, "image 3")
    with pytest.raises(ConversionError, match="singular"):
        SliceLayout.from_affine((2, 2, 2), np.zeros((4, 4)), "axial")


def test_dicom_affine_matches_the_totalsegmentator_nifti_of_the_same_series():
    """Our affine of a DICOM series (src[column, row, slice]) and dcm2niix-style NIfTI agree on every voxel centre."""
    root = shared("volumes/nifti/TotalSegmentator")
    (series,) = scan_folder(root / "example_ct_dicom").series.values()
    nifti = nib.load(root / "example_seg_dicom.nii.gz")
    assert (series.columns, series.rows, len(series.slices)) == nifti.shape
    ours = series.affine
    flip_rows = np.diag([1.0, -1.0, 1.0, 1.0])  # the NIfTI (LAS) runs its rows the other way
    flip_rows[1, 3] = nifti.shape[1] - 1
    np.testing.assert_allclose(ours, nifti.affine @ flip_rows, atol=1e-3)
    layout = series.layout()
    assert layout.axis == "axial" and layout.orientation == "LPS" and layout.source_orientation == "LPS"


def test_dicom_affine_of_an_oblique_plane():
    iop = [0.9541666, -0.2080757, 0.2151061, 0.2785886, 0.880128, -0.3843997]
    affine = dicom_affine([123, -432, 30], iop, [3.5, 2.5], [0.5, 2.0, 4.0])
    point = affine @ [2, 3, 1, 1]  # column 2, row 3, slice 1
    lps = np.array([123, -432, 30]) + 2 * 2.5 * np.array(iop[:3]) + 3 * 3.5 * np.array(iop[3:]) + [0.5, 2.0, 4.0]
    np.testing.assert_allclose(point[:3], lps * [-1, -1, 1])


def test_windows_and_rescale():
    assert parse_window("lung") == (1500.0, -600.0)
    assert parse_window("400,40") == (400.0, 40.0)
    assert parse_window(" 80 , -5.5 ") == (80.0, -5.5)
    for bad in ("lungs", "400", "0,40"):
        with pytest.raises(ConfigError, match="window"):
            parse_window(bad)
    values = np.array([-2000, -160, 40, 240, 3000])
    np.testing.assert_array_equal(apply_window(values, (400, 40)), [0, 0, 128, 255, 255])

    ct = np.array([[-1024, 0], [3071, 12]], dtype=np.int16)
    exact = Rescale.of_volume(ct)
    assert exact.exact and exact.slope == 1.0 and exact.intercept == -1024
    np.testing.assert_array_equal(exact.decode(exact.encode(ct)), ct)
    wide = Rescale.of_volume(np.array([-100000, 100000], dtype=np.int32))
    assert not wide.exact and wide.slope == pytest.approx(200000 / 65535)
    fractional = np.array([0.25, 1.5, 7.75])
    lossy = Rescale.of_volume(fractional)
    assert not lossy.exact and np.abs(lossy.decode(lossy.encode(fractional)) - fractional).max() <= lossy.slope / 2
    dicom = Rescale.of_dicom(1.0, -1024.0, signed=True)  # png = stored + 32768
    assert dicom.decode(np.array([32768])) == [-1024.0]
    with pytest.raises(ConfigError, match="NaN"):
        Rescale.of_volume(np.array([1.0, np.nan]))


@pytest.mark.parametrize("text, suffix", [
    ('{"1": "spleen", "2": "kidney_right", "0": "background"}', ".json"),
    ('{"background": 0, "spleen": 1, "kidney_right": 2}', ".json"),
    ('{"name": "x", "labels": {"background": 0, "spleen": 1, "kidney_right": 2}}', ".json"),
    ('["background", "spleen", "kidney_right"]', ".json"),
    ("id,name\n1,spleen\n2,kidney_right\n", ".csv"),
    ("1\tspleen\n2\tkidney_right\n", ".tsv"),
    ("# Slicer colour table\n0 background 0 0 0 0\n1 spleen 157 108 162 255\n2 kidney_right 185 102 83 255\n", ".ctbl"),
])
def test_label_map_formats(tmp_path, text, suffix):
    path = tmp_path / f"map{suffix}"
    path.write_text(text)
    assert read_label_map(path) == {1: "spleen", 2: "kidney_right"}


@pytest.mark.parametrize("data, message", [
    ({"1": "a", "2": "a"}, "both named 'a'"),
    ({"tumour": [1, 2], "edema": 1}, "region"),
    ({"0": "background"}, "no foreground"),
    ({"1.5": "x"}, "not a whole number"),
    ({"70000": "x"}, "above 65535"),
])
def test_label_map_errors_name_the_file_and_entry(tmp_path, data, message):
    path = tmp_path / "map.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as info:
        read_label_map(path)
    assert str(path) in str(info.value)


def _oracles(columns, rows, height, width):
    expected = np.zeros((height, width), np.uint8)
    rr, cc = skimage_polygon(rows, columns, (height, width))
    expected[rr, cc] = 1
    yy, xx = np.mgrid[:height, :width]
    inside = MplPath(np.stack([columns, rows], 1)).contains_points(np.stack([xx.ravel(), yy.ravel()], 1))
    return expected, inside.reshape(height, width).astype(np.uint8)


def test_fill_polygon_follows_the_pixel_centre_rule_of_skimage_and_matplotlib():
    rng = np.random.default_rng(7)
    for n in range(60):
        count = int(rng.integers(3, 40))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radius = rng.uniform(2, 14, count)
        columns = 20 + radius * np.cos(angles) + rng.uniform(-0.3, 0.3)
        rows = 15 + radius * np.sin(angles) * rng.uniform(0.5, 1.5)
        if n % 5 == 0:
            columns = columns + 12  # partly outside the 30x40 image: clipped
        mask = fill_polygon(columns, rows, 30, 40)
        expected, matplotlib = _oracles(columns, rows, 30, 40)
        np.testing.assert_array_equal(mask, expected)
        np.testing.assert_array_equal(mask, matplotlib)


def test_fill_polygons_cuts_holes_by_xor():
    outer = (np.array([1.5, 10.5, 10.5, 1.5]), np.array([1.5, 1.5, 10.5, 10.5]))
    inner = (np.array([4.5, 7.5, 7.5, 4.5]), np.array([4.5, 4.5, 7.5, 7.5]))
    mask = fill_polygons([outer, inner], 12, 12)
    assert mask[2:11, 2:11].sum() == 81 - 9 and mask[5:8, 5:8].sum() == 0
    assert fill_polygon([0, 1], [0, 1], 5, 5).sum() == 0  # fewer than 3 points: nothing


def test_staged_folder_is_all_or_nothing(tmp_path):
    target = tmp_path / "images"
    target.mkdir()
    (target / "old.png").write_text("old")
    with pytest.raises(RuntimeError):
        with StagedFolder(target) as staged:
            staged.path("a/x.png").parent.mkdir(parents=True)
            staged.path("a/x.png").write_text("new")
            raise RuntimeError("conversion failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
    assert [p.name for p in target.rglob("*")] == ["old.png"]
    with StagedFolder(target) as staged:
        staged.path("a").mkdir()
        staged.path("a/x.png").write_text("new")
        assert staged.commit() == 1
    assert (target / "a" / "x.png").read_text() == "new" and (target / "old.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]
