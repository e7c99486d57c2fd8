"""CLI cases of issue 17 part B: bad data (classes 4, 5, 6-data, 7, 8, 10).

Inputs are real files from ../shared/data (cxr-sample, CC BY: an X-ray and its hand-drawn
lung mask), shrunk to a non-square 40x48 and then broken the way the campaign broke them.
Regenerating the corpus therefore needs ../shared/data beside the checkout.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

SAMPLE = Path(__file__).resolve().parents[4] / "shared" / "data" / "cxr-sample"
STEM = "00870a9c"
H, W = 40, 48


def real_image() -> np.ndarray:
    """The sample X-ray, 8-bit grayscale, shrunk to H x W."""
    gray = cv2.imread(str(SAMPLE / "images" / f"{STEM}.png"), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(gray, (W, H), interpolation=cv2.INTER_AREA)


def real_mask() -> np.ndarray:
    """Its hand-drawn lung mask (0/255), shrunk with nearest neighbour."""
    mask = cv2.imread(str(SAMPLE / "masks" / f"{STEM}.png"), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST)


def encode(array: np.ndarray, fmt: str = "PNG", **params) -> bytes:
    """The array as an image file of format ``fmt`` (Pillow)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **params)
    return buf.getvalue()


def coco_of_mask(mask: np.ndarray, file_name: str = "a.png") -> dict:
    """A valid COCO dict: one H x W image with the mask as one compressed-RLE annotation."""
    rle = mask_utils.encode(np.asfortranarray((mask > 0).astype(np.uint8)))
    bbox = [int(v) for v in mask_utils.toBbox(rle)]
    return {"info": {"image_root": "images"},
            "images": [{"id": 1, "file_name": file_name, "height": H, "width": W}],
            "categories": [{"id": 1, "name": "lung"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "area": int(mask_utils.area(rle)), "bbox": bbox,
                             "segmentation": {"size": [H, W], "counts": rle["counts"].decode("ascii")}}]}


def real_dataset(corpus, case_id: str, data: dict | None = None, text: str | None = None) -> None:
    """``images/a.png``, ``masks/a.png`` and ``coco.json`` (``data``, or raw ``text``) in a case folder."""
    corpus.folder(case_id)
    corpus.write(case_id, "images/a.png", encode(real_image()))
    corpus.write(case_id, "masks/a.png", encode(real_mask()))
    corpus.write(case_id, "coco.json", text if text is not None else json.dumps(data or coco_of_mask(real_mask())))


def build(corpus) -> None:
    exact_types(corpus)
    lossy_masks(corpus)
    group_keys(corpus)
    drops_and_collisions(corpus)
    third_party(corpus)
    data_limits(corpus)


def exact_types(corpus) -> None:
    """Class 5: types pycocotools reads differently, duplicate keys, a swapped RLE size."""
    mutations = {
        "types_iscrowd_string": (lambda d: d["annotations"][0].update(iscrowd="0"),
                                 ["annotations[0].iscrowd", "'0'", "bad_iscrowd"]),
        "types_iscrowd_bool": (lambda d: d["annotations"][0].update(iscrowd=False),
                               ["annotations[0].iscrowd", "False"]),
        "types_category_id_float": (lambda d: d["annotations"][0].update(category_id=1.0),
                                    ["annotations[0].category_id", "ids are integers"]),
        "types_image_id_string": (lambda d: d["annotations"][0].update(image_id="1"),
                                  ["annotations[0].image_id", "this is a str"]),
        "types_height_float": (lambda d: d["images"][0].update(height=40.0), ["images[0].height", "40.0"]),
        "types_rle_size_swapped_scrambled": (_transposed_rle, ["annotations[0].segmentation.size", "swapped",
                                                               "rle_size_mismatch"]),
    }
    for case_id, (mutate, match) in mutations.items():
        data = coco_of_mask(real_mask())
        mutate(data)
        real_dataset(corpus, case_id, data)
        corpus.case(case_id, ["validate", "coco.json"], match=match, note="issue 17 class 5")
    text = json.dumps(coco_of_mask(real_mask()))
    duplicated = {
        "types_duplicate_top_level_key": (text[:-1] + ', "annotations": []}', ["coco.json", "'annotations'",
                                                                               "top-level object"]),
        "types_duplicate_record_key": (text.replace('"iscrowd": 0', '"iscrowd": 0, "iscrowd": 1'),
                                       ["coco.json", "'iscrowd'", "object with id 1"]),
    }
    for case_id, (raw, match) in duplicated.items():
        for command in ("validate", "export", "doctor"):
            cid = f"{case_id}_{command}"
            real_dataset(corpus, cid, text=raw)
            argv = {"validate": ["validate", "coco.json"], "doctor": ["doctor", "coco.json"],
                    "export": ["export", "masks", "coco.json", "--out", "out"]}[command]
            corpus.case(cid, argv, match=match, absent=["out"], note="issue 17 class 5: duplicate JSON keys")


def _transposed_rle(data: dict) -> None:
    """Size [W, H] with counts of the transposed mask: read at the image's size it is scrambled."""
    rle = mask_utils.encode(np.asfortranarray((real_mask().T > 0).astype(np.uint8)))
    data["annotations"][0]["segmentation"] = {"size": [W, H], "counts": rle["counts"].decode("ascii")}


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def lossy_masks(corpus) -> None:
    """Class 4: JPEG, multi-page TIFF, halo, 0/1/2 in a binary conversion, EXIF orientation."""
    mask = real_mask()
    labels = (mask > 0).astype(np.uint8)
    labels[:, W // 2:] *= 2
    pages = io.BytesIO()
    Image.fromarray(mask).save(pages, format="TIFF", save_all=True, append_images=[Image.fromarray(255 - mask)])
    cases = {
        "lossy_jpeg_mask": ("masks/a.jpg", encode(mask, "JPEG", quality=75), ["masks/a.jpg", "lossy",
                                                                              "--allow-lossy-masks"]),
        "lossy_multipage_tiff_mask": ("masks/a.tif", pages.getvalue(), ["masks/a.tif", "2 pages"]),
        "lossy_halo_mask": ("masks/a.png", encode(cv2.GaussianBlur(mask, (5, 5), 1.5)),
                            ["masks/a.png", "non-zero values", "--mask-threshold"]),
        "lossy_two_labels_binary": ("masks/a.png", encode(labels), ["masks/a.png", "2 non-zero values (0, 1, 2)",
                                                                     "--class-map"]),
        "lossy_exif_mask": ("masks/a.png", encode(mask, exif=_exif(6)), ["masks/a.png", "EXIF orientation 6"]),
        "lossy_exif_image": ("images/a.png", encode(real_image(), exif=_exif(8)), ["images/a.png",
                                                                                   "EXIF orientation 8"]),
    }
    for case_id, (rel, data, match) in cases.items():
        corpus.folder(case_id)
        corpus.write(case_id, "images/a.png", encode(real_image()))
        if rel.startswith("images/"):
            corpus.write(case_id, "masks/a.png", encode(mask))
        corpus.write(case_id, rel, data)
        corpus.case(case_id, ["convert", "masks", "images", "masks", "--out", "x.json"], match=match,
                    absent=["x.json"], note="issue 17 class 4")
    corpus.folder("lossy_halo_covid_radiography")
    corpus.write("lossy_halo_covid_radiography", "tree/COVID/images/a.png", encode(real_image()))
    corpus.write("lossy_halo_covid_radiography", "tree/COVID/masks/a.png", encode(cv2.GaussianBlur(mask, (5, 5), 1.5)))
    corpus.case("lossy_halo_covid_radiography", ["convert", "covid-radiography", "tree", "--out", "x.json"],
                match=["COVID/masks/a.png", "non-zero values"], absent=["x.json"], note="issue 17 class 4")


def _two_images(patients: list) -> dict:
    """Two copies of the real image's record, ``a.png`` and ``b.png``, with these patient ids."""
    data = coco_of_mask(real_mask())
    data["images"] = [{**data["images"][0], "id": i, "file_name": n, **({} if p is _ABSENT else {"patient_id": p})}
                      for i, (n, p) in enumerate(zip(("a.png", "b.png"), patients), 1)]
    return data


_ABSENT = object()


def group_keys(corpus) -> None:
    """Class 7: list/dict keys and missing keys refused by split; mixed id types found by doctor."""
    cases = {
        "group_list_key_split": ([[1], 2], ["image 1 ('a.png')", "is a list"]),
        "group_dict_key_split": ([1, {"id": 2}], ["image 2 ('b.png')", "is a dict"]),
        "group_missing_key_split": ([1, _ABSENT], ["1 of 2 images have no 'patient_id'", "image 2 ('b.png')",
                                                   "--allow-missing-group"]),
    }
    for case_id, (patients, match) in cases.items():
        real_dataset(corpus, case_id, _two_images(patients))
        corpus.write(case_id, "images/b.png", encode(real_image()))
        corpus.case(case_id, ["split", "coco.json", "--fractions", "train=0.5,val=0.5", "--out-dir", "parts"],
                    match=match, absent=["parts"], note="issue 17 class 7")
    case_id = "group_mixed_types_doctor_splits"
    real_dataset(corpus, case_id, _two_images([1, 2]))
    corpus.write(case_id, "images/b.png", encode(real_image()))
    train, val = _two_images([1, 2]), _two_images([3, "1.0"])
    train["images"], val["images"] = train["images"][:1], val["images"][1:]
    val["annotations"] = []
    corpus.write(case_id, "train.json", json.dumps(train))
    corpus.write(case_id, "val.json", json.dumps(val))
    corpus.case(case_id, ["doctor", "train.json", "--splits", "val.json", "--no-images"],
                match=["patient_leakage", "val.json"], note="issue 17 class 7: 1 and '1.0' are one patient")


def drops_and_collisions(corpus) -> None:
    """Class 8: ignored files are counted with a reason; a class folder's masks are never dropped; ids collide."""
    image, mask = encode(real_image()), encode(real_mask())
    case_id = "drop_convert_folders_webp_counted"
    corpus.folder(case_id)
    corpus.write(case_id, "tree/COVID/a.png", image)
    corpus.write(case_id, "tree/COVID/b.webp", encode(real_image(), "WEBP"))
    corpus.case(case_id, ["convert", "folders", "tree", "--out", "x.json"], exit=0,
                match=["files ignored", "not an image type (.webp): COVID/b.webp"], present=["x.json"],
                note="issue 17 class 8: converted, with the WebP file counted as ignored")
    case_id = "drop_covid_masks_without_images"
    corpus.folder(case_id)
    corpus.write(case_id, "tree/COVID/images/a.png", image)
    corpus.write(case_id, "tree/COVID/masks/a.png", mask)
    corpus.write(case_id, "tree/Normal/masks/b.png", mask)
    corpus.case(case_id, ["convert", "covid-radiography", "tree", "--out", "x.json"],
                match=["'Normal'", "masks folder but no images folder"], absent=["x.json"], note="issue 17 class 8")
    case_id = "collide_export_rle_csv_same_stem"
    data = coco_of_mask(real_mask(), "a/x.png")
    data["images"].append({**data["images"][0], "id": 2, "file_name": "b/x.png"})
    data["annotations"].append({**data["annotations"][0], "id": 2, "image_id": 2})
    real_dataset(corpus, case_id, data)
    corpus.write(case_id, "images/a/x.png", image)
    corpus.write(case_id, "images/b/x.png", image)
    corpus.case(case_id, ["export", "rle-csv", "coco.json", "--order", "column", "--out", "x.csv"],
                match=["'x': image 1 ('a/x.png') and image 2 ('b/x.png')"], absent=["x.csv"],
                note="issue 17 class 8")
    case_id = "collide_convert_metadata_dot_slash"
    corpus.folder(case_id)
    corpus.write(case_id, "images/x.png", image)
    corpus.write(case_id, "labels.csv", "filename,finding\nx.png,COVID-19\n./x.png,No Finding\n")
    corpus.case(case_id, ["convert", "metadata", "labels.csv", "--images", "images", "--out", "x.json"],
                match=["labels.csv", "line 3", "'./x.png'", "repeats line 2"], absent=["x.json"],
                note="issue 17 class 8")


def third_party(corpus) -> None:
    """Class 10: bounding-box-only annotations warn in one line; panoptic and caption files are named."""
    data = coco_of_mask(real_mask())
    data["annotations"][0]["segmentation"] = []
    real_dataset(corpus, "third_party_bbox_only_export_masks", data)
    corpus.case("third_party_bbox_only_export_masks", ["export", "masks", "coco.json", "--out", "out"], exit=0,
                match=["cococxr: warning: coco.json: 1 annotation(s)", "carry no mask"], present=["out"],
                note="issue 17 class 10: a warning, one clean line")
    panoptic = {**coco_of_mask(real_mask()), "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [
        {"id": 1, "category_id": 1, "area": 10, "bbox": [0, 0, 5, 2], "iscrowd": 0}]}]}
    captions = {"images": panoptic["images"], "annotations": [{"id": 1, "image_id": 1, "caption": "a chest X-ray"}]}
    for case_id, other, command, kind in (("third_party_panoptic_validate", panoptic, "validate", "panoptic"),
                                          ("third_party_panoptic_doctor", panoptic, "doctor", "panoptic"),
                                          ("third_party_caption_inspect", captions, "inspect", "caption")):
        real_dataset(corpus, case_id, other)
        corpus.case(case_id, [command, "coco.json"], match=["coco.json", f"COCO {kind} file"],
                    note="issue 17 class 10")


def data_limits(corpus) -> None:
    """Class 6 (data): deep nesting and sizes over COCOCXR_MAX_PIXELS are one line, nothing allocated."""
    real_dataset(corpus, "data_deep_json_validate", text='{"images": ' + "[" * 50_000 + "]" * 50_000 + "}")
    corpus.case("data_deep_json_validate", ["validate", "coco.json"], match=["coco.json", "nested too deeply"],
                note="issue 17 class 6 (data): RecursionError")
    data = coco_of_mask(real_mask())
    data["images"][0].update(height=60000, width=60000)
    data["annotations"][0]["segmentation"] = [[2, 2, 30, 2, 30, 30]]
    real_dataset(corpus, "data_gigapixel_record_export_masks", data)
    corpus.case("data_gigapixel_record_export_masks", ["export", "masks", "coco.json", "--out", "out"],
                match=["images[0].height", "60000 x 60000", "COCOCXR_MAX_PIXELS"], absent=["out"],
                note="issue 17 class 6 (data): refused before allocating")
    corpus.folder("data_height_width_over_limit")
    corpus.write("data_height_width_over_limit", "labels.csv", "ImageId,EncodedPixels\na,1 2\n")
    corpus.case("data_height_width_over_limit", ["convert", "rle-csv", "labels.csv", "--order", "row", "--height",
                                                 "20000", "--width", "20000", "--out", "x.json"],
                match=["--height 20000 --width 20000", "over the limit", "COCOCXR_MAX_PIXELS"], absent=["x.json"],
                note="issue 17 class 6 (data)")
