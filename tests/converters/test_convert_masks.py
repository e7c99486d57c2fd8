"""`cococxr convert masks`: image + mask folders -> COCO, exact round trips, bad inputs."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from cococxr.cli import main
from cococxr.coco import CocoDataset
from cococxr.converters.export_masks import export_masks
from cococxr.converters.mask_folders import convert_mask_folders, parse_class_map
from cococxr.errors import ConfigError, ConversionError, ImageReadError
from cococxr.io import read_mask, write_png
from cococxr.masks import annotation_to_mask
from helpers import shared


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("COCOCXR_PROGRESS", "0")


def blob_mask(h: int, w: int, boxes, value=255) -> np.ndarray:
    """A uint8 mask with ``value`` inside each (y0, y1, x0, x1) box."""
    mask = np.zeros((h, w), np.uint8)
    for y0, y1, x0, x1 in boxes:
        mask[y0:y1, x0:x1] = value
    return mask


def make_folders(root: Path, masks: dict[str, np.ndarray], image_shapes: dict[str, tuple] | None = None,
                 mask_names: dict[str, str] | None = None) -> tuple[Path, Path]:
    """Write images (noise of the given shape, default the mask's) and masks under root."""
    images_dir, masks_dir = root / "images", root / "masks"
    rng = np.random.default_rng(0)
    shapes = {stem: m.shape[:2] for stem, m in masks.items()} | (image_shapes or {})
    for stem, shape in shapes.items():
        write_png(images_dir / f"{stem}.png", rng.integers(0, 255, shape, dtype=np.uint8))
    for stem, mask in masks.items():
        write_png(masks_dir / (mask_names or {}).get(stem, f"{stem}.png"), mask)
    masks_dir.mkdir(parents=True, exist_ok=True)
    return images_dir, masks_dir


def decoded(dataset: CocoDataset, image_id: int, name: str) -> np.ndarray:
    """Union of ``name``'s masks on one image."""
    img = dataset.imgs[image_id]
    out = np.zeros((img["height"], img["width"]), np.uint8)
    for ann in dataset.anns_for(image_id, dataset.cat_ids([name]), geometry=True):
        out |= annotation_to_mask(ann, img["height"], img["width"])
    return out


# ------------------------------------------------------------------ the embedded sample
def test_sample_round_trip_with_metadata(sample_dir, tmp_path):
    out = tmp_path / "coco" / "sample.json"
    ds, report = convert_mask_folders(
        sample_dir / "images", sample_dir / "masks", out, class_name="lung", allow_missing_masks=True,
        metadata=sample_dir / "metadata.csv", keep="patientid:patient_id,view,finding", label_column="finding")
    counts = report.counts
    assert counts["images in"] == counts["images out"] == 56
    assert counts["masks in"] == counts["masks converted"] == counts["non-empty masks"] == 51
    assert counts["images without mask"] == 5
    assert counts["annotations out: lung"] == 51
    assert counts["labels out: COVID-19"] + counts["labels out: No Finding"] == 56
    data = json.loads(out.read_text())
    assert (out.parent / data["info"]["image_root"]).resolve() == (sample_dir / "images").resolve()
    cats = {c["name"]: c for c in data["categories"]}
    assert cats["lung"]["supercategory"] == "anatomy" and cats["No Finding"]["supercategory"] == "finding"
    first = data["images"][0]
    assert set(first) >= {"id", "file_name", "height", "width", "patient_id", "view", "finding"}
    for ann in data["annotations"]:
        assert ann["iscrowd"] == 0
    no_finding = [i["id"] for i in data["images"] if i["finding"] == "No Finding"]
    assert len(no_finding) == 5
    reread = CocoDataset(out, image_root=sample_dir / "images")  # outside the file's folder
    assert all(not reread.anns_for(i, geometry=True) for i in no_finding)
    assert (out.parent / data["info"]["image_root"] / first["file_name"]).is_file()
    assert len(COCO(str(out)).getAnnIds()) == len(data["annotations"])

    report = export_masks(reread, tmp_path / "exported", mode="per-class")
    assert report.counts["mask files written"] == 56
    assert report.counts["images with an empty mask"] == 5
    for original in sorted((sample_dir / "masks").glob("*.png")):
        assert np.array_equal(read_mask(original), read_mask(tmp_path / "exported" / "lung" / original.name))


def test_workers_give_identical_bytes(sample_dir, tmp_path):
    one, two = tmp_path / "w1.json", tmp_path / "w2.json"
    for out, workers in ((one, 1), (two, 2)):
        convert_mask_folders(sample_dir / "images", sample_dir / "masks", out, class_name="lung",
                             allow_missing_masks=True, workers=workers, instances=True)
    assert one.read_bytes() == two.read_bytes()


# ------------------------------------------------------------------ class maps
@pytest.mark.parametrize("text, expected", [
    ("1=left_lung,2=right_lung", {1: "left_lung", 2: "right_lung"}),
    ("255,0,0=lung", {(255, 0, 0): "lung"}),
    ("255,0,0=lung,0,255,0=heart", {(255, 0, 0): "lung", (0, 255, 0): "heart"}),
    ("255,0,0=lung; 0,0,255=Viral Pneumonia", {(255, 0, 0): "lung", (0, 0, 255): "Viral Pneumonia"}),
    (" 1 = a , 7=a ", {1: "a", 7: "a"}),
])
def test_parse_class_map(text, expected):
    assert parse_class_map(text) == expected


def test_parse_class_map_json_file(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"1": "left_lung", "2": "right_lung"}))
    assert parse_class_map(str(path)) == {1: "left_lung", 2: "right_lung"}


@pytest.mark.parametrize("text", ["lung", "1=", "0=background", "1=a,1=b", "x=a", "1=a,255,0,0=b", "70000=a"])
def test_bad_class_maps(text, tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(8, 8, [(1, 3, 1, 3)], 1)})
    with pytest.raises(ConfigError):
        convert_mask_folders(images, masks, class_map=text)


def test_multiclass_values_round_trip(tmp_path):
    label = blob_mask(20, 30, [(2, 8, 2, 12)], 1) + blob_mask(20, 30, [(10, 18, 15, 28)], 2)
    images, masks = make_folders(tmp_path, {"a": label, "b": np.zeros((20, 30), np.uint8)})
    out = tmp_path / "multi.json"
    ds, report = convert_mask_folders(images, masks, out, class_map="1=left_lung,2=right_lung")
    assert [c["name"] for c in ds.dataset["categories"]] == ["left_lung", "right_lung"]
    assert report.counts["annotations out: left_lung"] == 1 and report.counts["empty masks"] == 1
    assert np.array_equal(decoded(ds, 1, "right_lung"), label == 2)
    export_masks(out, tmp_path / "maps", mode="label-map")
    assert np.array_equal(read_mask(tmp_path / "maps" / "a.png"), label)
    # the exported class_map.json reads straight back
    again, _ = convert_mask_folders(images, tmp_path / "maps", class_map=str(tmp_path / "maps" / "class_map.json"))
    assert again.dataset["annotations"] == ds.dataset["annotations"]


def test_sixteen_bit_values(tmp_path):
    label = np.zeros((12, 12), np.uint16)
    label[1:5, 1:5], label[6:10, 6:10] = 1020, 1000
    images, masks = make_folders(tmp_path, {"a": label})
    ds, _ = convert_mask_folders(images, masks, class_map="1020=lung,1000=heart")
    assert decoded(ds, 1, "lung").sum() == 16 and decoded(ds, 1, "heart").sum() == 16


def test_rgb_class_map(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[2:6, 2:6] = (255, 0, 0)
    rgb[8:14, 8:14] = (0, 255, 0)
    images, masks = make_folders(tmp_path, {"a": rgb})
    ds, _ = convert_mask_folders(images, masks, class_map="255,0,0=lung,0,255,0=heart")
    assert decoded(ds, 1, "lung").sum() == 16 and decoded(ds, 1, "heart").sum() == 36
    with pytest.raises(ConversionError, match="colour"):
        convert_mask_folders(images, masks, class_map="1=lung")


def test_instances_and_polygons(tmp_path):
    mask = blob_mask(24, 24, [(2, 8, 2, 8), (12, 20, 12, 22)])
    images, masks = make_folders(tmp_path, {"a": mask})
    ds, _ = convert_mask_folders(images, masks, instances=True)
    assert sorted(a["area"] for a in ds.anns.values()) == [36, 80]
    out = tmp_path / "poly.json"
    ds, report = convert_mask_folders(images, masks, out, polygons=True)
    ann = next(iter(ds.anns.values()))
    assert isinstance(ann["segmentation"], list) and "polygon_iou" in ann
    assert any("polygons" in note for note in report.notes)
    COCO(str(out))


def test_mask_suffix_and_other_extension(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(10, 10, [(1, 4, 1, 4)])}, mask_names={"a": "a_mask.png"})
    (masks / "a_mask.png").unlink()
    cv2.imwrite(str(masks / "a_mask.bmp"), blob_mask(10, 10, [(1, 4, 1, 4)]))
    ds, _ = convert_mask_folders(images, masks, mask_suffix="_mask", class_name="lung")
    assert ds.anns[1]["area"] == 9
    (masks / "a_mask.bmp").rename(images / "a_mask.bmp")  # masks beside their images
    ds, _ = convert_mask_folders(images, images, mask_suffix="_mask")
    assert [i["file_name"] for i in ds.imgs.values()] == ["a.png"] and ds.anns[1]["area"] == 9
    with pytest.raises(ConfigError, match="mask-suffix"):
        convert_mask_folders(images, images)


# ------------------------------------------------------------------ size policy
def test_smaller_mask_is_enlarged_and_recorded(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(10, 20, [(2, 8, 4, 16)])}, image_shapes={"a": (20, 40)})
    ds, report = convert_mask_folders(images, masks)
    assert ds.imgs[1]["mask_resized_from"] == [10, 20]
    assert report.counts["masks enlarged to their image (nearest)"] == 1
    assert decoded(ds, 1, "foreground").sum() == 4 * 6 * 12
    with pytest.raises(ConversionError, match=r"10x20 .* 20x40"):
        convert_mask_folders(images, masks, size_mismatch="error")


def test_larger_mask_is_an_error_unless_resize_any(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(40, 40, [(4, 20, 4, 20)])}, image_shapes={"a": (20, 20)})
    with pytest.raises(ConversionError, match=r"a\.png is 40x40 .*a\.png is 20x20.*larger"):
        convert_mask_folders(images, masks)
    ds, report = convert_mask_folders(images, masks, size_mismatch="resize-any")
    assert report.counts["masks shrunk to their image (nearest)"] == 1
    assert ds.imgs[1]["mask_resized_from"] == [40, 40]


def test_other_aspect_ratio_is_an_error(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(10, 10, [(1, 4, 1, 4)])}, image_shapes={"a": (20, 30)})
    with pytest.raises(ConversionError, match="aspect"):
        convert_mask_folders(images, masks, size_mismatch="resize-any")


# ------------------------------------------------------------------ bad inputs
def test_mask_without_image(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(8, 8, [(1, 3, 1, 3)])})
    write_png(masks / "orphan.png", blob_mask(8, 8, []))
    with pytest.raises(ConversionError, match=r"mask .*orphan\.png has no image"):
        convert_mask_folders(images, masks)


def test_image_without_mask(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(8, 8, [(1, 3, 1, 3)])}, image_shapes={"b": (8, 8)})
    with pytest.raises(ConversionError, match=r"image .*b\.png has no mask"):
        convert_mask_folders(images, masks)
    ds, report = convert_mask_folders(images, masks, allow_missing_masks=True)
    assert report.counts["images without mask"] == 1 and not ds.anns_for(2)


def test_unreadable_image(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(8, 8, [(1, 3, 1, 3)])})
    (images / "a.png").write_bytes(b"this is not a PNG")
    with pytest.raises(ImageReadError, match=r"a\.png") as info:
        convert_mask_folders(images, masks)
    assert "not a supported image" in str(info.value) or "cannot read" in str(info.value)


def test_truncated_image_caught_with_verify(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(8, 8, [(1, 3, 1, 3)])})
    data = (images / "a.png").read_bytes()
    (images / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"a\.png.*truncated"):
        convert_mask_folders(images, masks, verify_images=True)


def test_unknown_values_name_the_file(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(8, 8, [(1, 3, 1, 3)], 3)})
    with pytest.raises(ConversionError, match=r"mask .*a\.png has value\(s\) 3 .*known: 0 = background, 1, 2"):
        convert_mask_folders(images, masks, class_map="1=a,2=b")


def test_error_leaves_nothing_half_written(tmp_path):
    images, masks = make_folders(tmp_path, {"a": blob_mask(8, 8, [(1, 3, 1, 3)], 3)})
    out = tmp_path / "new.json"
    with pytest.raises(ConversionError):
        convert_mask_folders(images, masks, out, class_map="1=a")
    assert not out.exists()
    out.write_text("previous")
    with pytest.raises(ConversionError):
        convert_mask_folders(images, masks, out, class_map="1=a")
    assert out.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "masks", "new.json"]


def test_metadata_errors(tmp_path, sample_dir):
    images, masks = make_folders(tmp_path, {"a": blob_mask(8, 8, [(1, 3, 1, 3)])})
    csv = tmp_path / "meta.csv"
    csv.write_text("filename,id,site\na.png,7,x\n")
    with pytest.raises(ConfigError, match="reserved"):
        convert_mask_folders(images, masks, metadata=csv)
    with pytest.raises(ConfigError, match="no column"):
        convert_mask_folders(images, masks, metadata=csv, keep="nope")
    ds, _ = convert_mask_folders(images, masks, metadata=csv, keep="id:site_id,site")
    assert ds.imgs[1]["site_id"] == "7" and ds.imgs[1]["site"] == "x"
    csv.write_text("filename,site\na.png,x\na.png,y\n")
    with pytest.raises(ConversionError, match="row 3"):
        convert_mask_folders(images, masks, metadata=csv)


# ------------------------------------------------------------------ CLI
def test_cli(sample_dir, tmp_path, capsys):
    out = tmp_path / "cli.json"
    code = main(["convert", "masks", str(sample_dir / "images"), str(sample_dir / "masks"), "--class-name", "lung",
                 "--allow-missing-masks", "--metadata", str(sample_dir / "metadata.csv"), "--keep",
                 "patientid:patient_id,view", "--label-column", "finding", "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "images in" in printed and "annotations out: lung  : 51" in printed
    assert main(["convert", "masks", str(sample_dir / "images"), str(sample_dir / "masks"), "-o", str(out)]) == 2
    assert "has no mask" in capsys.readouterr().err


# ------------------------------------------------------------------ real data
def test_cxr_lungs_round_trip(tmp_path):
    root = shared("cxr-lungs")
    out = tmp_path / "cxr.json"
    ds, report = convert_mask_folders(root / "images", root / "masks", out, class_name="lung",
                                      allow_missing_masks=True, workers=2)
    assert report.counts["masks in"] == report.counts["masks converted"] == 267
    assert report.counts["images in"] == report.counts["images out"] == len(list((root / "images").glob("*.png")))
    assert report.counts["non-empty masks"] + report.counts["empty masks"] == 267
    COCO(str(out))
    export_masks(CocoDataset(out, root / "images"), tmp_path / "back", mode="per-class", workers=2)
    originals = sorted((root / "masks").glob("*.png"))
    assert len(originals) == 267
    for original in originals:
        assert np.array_equal(read_mask(original), read_mask(tmp_path / "back" / "lung" / original.name)), original
