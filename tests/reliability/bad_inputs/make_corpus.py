"""Generate the bad-input corpus and its manifest (run once; the outputs are committed).

Usage: ``python tests/reliability/bad_inputs/make_corpus.py`` (rewrites every file it owns).

Each case is a small file (or folder) made for the purpose, plus one manifest entry:
``id``, ``files`` (paths relative to this folder), ``entry`` (the function to call,
see tests/reliability/test_bad_inputs.py), ``kwargs`` and what must happen: ``error`` (the exact
exception class name) with ``match`` (message fragments that name the culprit), or
``ok`` with optional checks (``shape``, ``dtype``, ``warnings``).
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
OWNED = ("images", "masks", "coco", "csv", "rle", "dicom", "pairs", "uploads")
CASES: list[dict] = []


# ----------------------------------------------------------------------- helpers
def case(case_id: str, files: list[str], entry: str, *, error: str | None = None, match=(), kwargs=None,
         **checks) -> None:
    """Record one manifest entry (``error=None`` means the call must work)."""
    entry_dict = {"id": case_id, "files": files, "entry": entry, "kwargs": kwargs or {}}
    if error:
        entry_dict.update(error=error, match=list(match))
    else:
        entry_dict.update(ok=True, **checks)
    CASES.append(entry_dict)


def write(rel: str, data: bytes) -> str:
    """Write bytes under HERE and return the relative path."""
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return rel


def png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8/uint16 array (RGB/RGBA given in RGB order)."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def jpeg(array: np.ndarray) -> bytes:
    """JPEG bytes of a grayscale uint8 array."""
    ok, buf = cv2.imencode(".jpg", array)
    assert ok
    return buf.tobytes()


def palette_png(indices: np.ndarray) -> bytes:
    """A palette ("P" mode) PNG holding ``indices``."""
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def png_with_bad_idat(array: np.ndarray) -> bytes:
    """A PNG whose chunks are all present (IEND too) but whose IDAT data is garbage."""
    data = png(array)
    head, rest = data[:8], data[8:]
    chunks, pos = [], 0
    while pos < len(rest):
        length = struct.unpack(">I", rest[pos:pos + 4])[0]
        kind = rest[pos + 4:pos + 8]
        body = rest[pos + 8:pos + 8 + length]
        if kind == b"IDAT":
            body = bytes(len(body))
        chunks.append(struct.pack(">I", len(body)) + kind + body
                      + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
        pos += 12 + length
    return head + b"".join(chunks)


def png_declaring(width: int, height: int) -> bytes:
    """An 8x8 PNG whose IHDR claims ``width`` x ``height`` (a decompression bomb header)."""
    data = bytearray(png(GRAY))
    body = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = body
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF)
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    """An 8x8 baseline JPEG whose SOF0 marker claims ``width`` x ``height``."""
    data = bytearray(jpeg(GRAY))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


GRAY = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
BINARY = np.zeros((8, 8), np.uint8)
BINARY[2:6, 2:6] = 255


# ------------------------------------------------------------------------ images
def images() -> None:
    good_png, good_jpg = png(GRAY), jpeg(GRAY)
    case("png_zero_bytes", [write("images/zero_bytes.png", b"")], "read_image",
         error="ImageReadError", match=["zero_bytes.png", "empty (0 bytes)"])
    case("png_truncated", [write("images/truncated.png", good_png[: len(good_png) // 2])], "read_image",
         error="ImageReadError", match=["truncated.png", "truncated"])
    case("png_bad_idat", [write("images/bad_idat.png", png_with_bad_idat(GRAY))], "read_image",
         error="ImageReadError", match=["bad_idat.png", "could not be decoded"])
    case("jpeg_zero_bytes", [write("images/zero_bytes.jpg", b"")], "read_image",
         error="ImageReadError", match=["zero_bytes.jpg", "empty (0 bytes)"])
    case("jpeg_truncated", [write("images/truncated.jpg", good_jpg[: len(good_jpg) * 2 // 3])], "read_image",
         error="ImageReadError", match=["truncated.jpg", "truncated"])
    case("text_named_png", [write("images/text_file.png", b"this is not an image\n")], "read_image",
         error="ImageReadError", match=["text_file.png", "not a supported image"])
    case("html_named_jpg", [write("images/error_page.jpg", b"<html><body>404 Not Found</body></html>\n")],
         "read_image", error="ImageReadError", match=["error_page.jpg", "not a supported image"])
    case("png_named_jpg_works", [write("images/really_png.jpg", good_png)], "read_image", shape=[8, 8],
         dtype="uint8")
    rgba = np.dstack([np.dstack([GRAY] * 3), np.full((8, 8), 200, np.uint8)])
    case("rgba_image_drops_alpha", [write("images/rgba.png", png(rgba))], "read_image", shape=[8, 8, 3],
         dtype="uint8")
    case("png16_image_kept_16bit", [write("images/gray16.png", png(GRAY.astype(np.uint16) * 257))],
         "read_image", shape=[8, 8], dtype="uint16")
    case("unicode_space_name_works", [write("images/röntgen bild ü 1.png", good_png)], "read_image",
         shape=[8, 8], dtype="uint8")
    case("png_header_size_unicode_name", [write("images/Straße 2.png", good_png)], "image_size",
         shape=[8, 8])
    case("png_decompression_bomb_header", [write("images/bomb_20000x20000.png", png_declaring(20000, 20000))],
         "read_image", error="ImageReadError", match=["bomb_20000x20000.png", "decompression bomb"])
    case("jpeg_decompression_bomb_header", [write("images/bomb_30000x30000.jpg", jpeg_declaring(30000, 30000))],
         "read_image", error="ImageReadError", match=["bomb_30000x30000.jpg", "decompression bomb"])
    bmp = bytearray(cv2.imencode(".bmp", GRAY)[1].tobytes())
    bmp[22:26] = struct.pack("<i", 0x100008)  # height over OpenCV's limit: cv2.error before the fix
    case("bmp_height_over_opencv_limit", [write("images/tall.bmp", bytes(bmp))], "read_image",
         error="ImageReadError", match=["tall.bmp", "could not be decoded"])
    case("png_bomb_header_size", [write("images/bomb_size.png", png_declaring(20000, 20000))], "image_size",
         error="ImageReadError", match=["bomb_size.png", "decompression bomb"])
    case("png_header_only_size_fails", [write("images/header_only.png", good_png[:20])], "image_size",
         error="ImageReadError", match=["header_only.png"])


# ------------------------------------------------------------------------- masks
def masks() -> None:
    rgba_const = np.dstack([BINARY, BINARY, BINARY, np.full((8, 8), 255, np.uint8)])
    case("mask_rgba_constant_alpha_works", [write("masks/rgba_constant_alpha.png", png(rgba_const))],
         "read_mask", shape=[8, 8, 3], dtype="uint8")
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:, 4:] = 255
    rgba_var = np.dstack([BINARY, BINARY, BINARY, alpha])
    case("mask_rgba_varying_alpha", [write("masks/rgba_varying_alpha.png", png(rgba_var))], "read_mask",
         error="ImageReadError", match=["rgba_varying_alpha.png", "varying alpha"])
    indices = (BINARY > 0).astype(np.uint8)
    indices[0, 0] = 2
    case("mask_palette_gives_indices", [write("masks/palette.png", palette_png(indices))], "read_mask",
         shape=[8, 8], dtype="uint8", values=[0, 1, 2])
    case("mask_truncated", [write("masks/truncated_mask.png", png(BINARY)[:40])], "read_mask",
         error="ImageReadError", match=["truncated_mask.png", "truncated"])
    case("mask_decompression_bomb_header", [write("masks/bomb_mask.png", png_declaring(20000, 20000))],
         "read_mask", error="ImageReadError", match=["bomb_mask.png", "decompression bomb"])
    case("mask_zero_bytes", [write("masks/empty_mask.png", b"")], "read_mask",
         error="ImageReadError", match=["empty_mask.png", "empty"])


# -------------------------------------------------------------- mask converter
def pair(case_id: str, image: bytes, mask: bytes | None, name: str = "a", image_ext: str = ".png",
         mask_ext: str = ".png") -> tuple[list[str], dict]:
    """Write ``pairs/<case_id>/{images,masks}/`` and return (files, kwargs)."""
    files = [write(f"pairs/{case_id}/images/{name}{image_ext}", image)]
    (HERE / f"pairs/{case_id}/masks").mkdir(parents=True, exist_ok=True)
    if mask is not None:
        files.append(write(f"pairs/{case_id}/masks/{name}{mask_ext}", mask))
    else:  # git keeps no empty folders: a placeholder (not an image) keeps the mask folder in a clone
        (HERE / f"pairs/{case_id}/masks/.gitkeep").touch()
    return files, {"images": f"pairs/{case_id}/images", "masks": f"pairs/{case_id}/masks"}


def mask_converter() -> None:
    mask16 = np.zeros((8, 8), np.uint16)
    mask16[2:4, 2:4], mask16[5:7, 5:7] = 1, 1000
    files, kw = pair("mask16_outside_class_map", png(GRAY), png(mask16))
    case("mask16_outside_class_map", files, "convert_mask_folders", kwargs={**kw, "class_map": "1=lung,2=heart"},
         error="ConversionError", match=["mask16_outside_class_map/masks/a.png", "1000", "class map does not list"])
    mask8 = BINARY.copy()
    files, kw = pair("mask8_for_16bit_class_map", png(GRAY), png(mask8))
    case("mask8_for_16bit_class_map", files, "convert_mask_folders",
         kwargs={**kw, "class_map": "1000=lung,2000=heart"},
         error="ConversionError", match=["mask8_for_16bit_class_map/masks/a.png", "255", "class map does not list"])
    multi = np.zeros((8, 8), np.uint8)
    multi[1:3, 1:3], multi[4:6, 4:6], multi[7, 7] = 1, 2, 7
    files, kw = pair("mask_value_not_in_class_map", png(GRAY), png(multi))
    case("mask_value_not_in_class_map", files, "convert_mask_folders",
         kwargs={**kw, "class_map": "1=left_lung,2=right_lung"},
         error="ConversionError", match=["mask_value_not_in_class_map/masks/a.png", "value(s) 7"])
    wide = np.zeros((8, 16), np.uint8)
    files, kw = pair("mask_size_mismatch_aspect", png(GRAY), png(wide))
    case("mask_size_mismatch_aspect", files, "convert_mask_folders", kwargs=kw,
         error="ConversionError", match=["mask_size_mismatch_aspect/masks/a.png", "8x16", "8x8", "aspect"])
    small = np.zeros((4, 4), np.uint8)
    files, kw = pair("mask_size_mismatch_refused", png(GRAY), png(small))
    case("mask_size_mismatch_refused", files, "convert_mask_folders", kwargs={**kw, "size_mismatch": "error"},
         error="ConversionError", match=["mask_size_mismatch_refused/masks/a.png", "4x4", "8x8"])
    files, kw = pair("mask_missing", png(GRAY), None)
    case("mask_missing", files, "convert_mask_folders", kwargs=kw,
         error="ConversionError", match=["mask_missing/images/a.png", "has no mask"])
    files, kw = pair("mask_truncated_in_converter", png(GRAY), png(BINARY)[:50])
    case("mask_truncated_in_converter", files, "convert_mask_folders", kwargs=kw,
         error="ImageReadError", match=["mask_truncated_in_converter/masks/a.png", "truncated"])
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:4] = 255
    files, kw = pair("mask_rgba_varying_alpha_in_converter", png(GRAY),
                     png(np.dstack([BINARY, BINARY, BINARY, alpha])))
    case("mask_rgba_varying_alpha_in_converter", files, "convert_mask_folders", kwargs=kw,
         error="ImageReadError", match=["mask_rgba_varying_alpha_in_converter/masks/a.png", "varying alpha"])
    files, kw = pair("converter_palette_mask", png(GRAY), palette_png((BINARY > 0).astype(np.uint8)))
    case("converter_palette_mask_works", files, "convert_mask_folders", kwargs={**kw, "class_map": "1=lung"},
         annotations=1, area=16)
    files, kw = pair("converter_rgba_constant_alpha", png(GRAY),
                     png(np.dstack([BINARY, BINARY, BINARY, np.full((8, 8), 255, np.uint8)])))
    case("converter_rgba_constant_alpha_works", files, "convert_mask_folders", kwargs=kw, annotations=1, area=16)
    files, kw = pair("mask_unicode_space_names", png(GRAY), png(BINARY), name="Patient ü 01 (PA)")
    case("mask_unicode_space_names_work", files, "convert_mask_folders", kwargs=kw, annotations=1, area=16)
    files, kw = pair("image_text_file_in_converter", b"not an image at all", png(BINARY))
    case("image_text_file_in_converter", files, "convert_mask_folders", kwargs=kw,
         error="ImageReadError", match=["image_text_file_in_converter/images/a.png"])


# -------------------------------------------------------------------------- COCO
def base_coco() -> dict:
    """A valid two-image COCO dict the COCO cases break one thing at a time."""
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8},
                   {"id": 2, "file_name": "b.png", "height": 8, "width": 8}],
        "categories": [{"id": 1, "name": "lung", "supercategory": "anatomy"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]],
             "area": 25, "bbox": [1, 1, 5, 5], "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": {"size": [8, 8], "counts": [18, 4, 4, 4, 34]},
             "area": 8, "bbox": [2.0, 2.0, 2.0, 4.0], "iscrowd": 0}],
    }


def coco_json(case_id: str, data, text: str | None = None) -> str:
    """Write ``coco/<case_id>.json`` (``text`` verbatim when given)."""
    if text is None:
        text = json.dumps(data, ensure_ascii=False)
    return write(f"coco/{case_id}.json", text.encode("utf-8"))


def coco_case(case_id: str, mutate, *match: str, error: str = "CocoFormatError", entry: str = "CocoDataset",
              **kw) -> None:
    """A COCO case: ``mutate(data)`` breaks a copy of the base dict."""
    data = base_coco()
    mutate(data)
    case(case_id, [coco_json(case_id, data)], entry, error=error, match=match, **kw)


def coco() -> None:
    full = json.dumps(base_coco())
    case("coco_truncated", [coco_json("truncated", None, full[: len(full) // 2])], "CocoDataset",
         error="CocoFormatError", match=["truncated.json", "not valid JSON", "truncated"])
    case("coco_zero_bytes", [write("coco/zero_bytes.json", b"")], "CocoDataset",
         error="CocoFormatError", match=["zero_bytes.json", "not valid JSON"])
    case("coco_not_an_object", [coco_json("not_an_object", [base_coco()])], "CocoDataset",
         error="CocoFormatError", match=["not_an_object.json", "got a list"])
    case("coco_not_utf8", [write("coco/latin1.json", '{"images": [], "categories": [{"name": "Lunge für"}]}'
                                 .encode("latin-1"))], "CocoDataset",
         error="CocoFormatError", match=["latin1.json", "not UTF-8"])
    coco_case("coco_missing_images", lambda d: d.pop("images"), "missing_images.json", "'images'")
    coco_case("coco_images_not_a_list", lambda d: d.update(images={"1": "a.png"}), "images_not_a_list.json",
              "'images' must be a list")
    coco_case("coco_duplicate_image_ids", lambda d: d["images"][1].update(id=1), "images[1].id",
              "image id 1 is also used by images[0]")
    coco_case("coco_duplicate_annotation_ids", lambda d: d["annotations"][1].update(id=1), "annotations[1].id",
              "duplicate_annotation_id")
    coco_case("coco_dangling_image_id", lambda d: d["annotations"][0].update(image_id=99),
              "annotations[0].image_id", "image_id 99 is not the id of any image")
    coco_case("coco_dangling_category_id", lambda d: d["annotations"][1].update(category_id=7),
              "annotations[1].category_id", "category_id 7")
    coco_case("coco_negative_bbox", lambda d: d["annotations"][0].update(bbox=[1, -3, 5, 5]),
              "annotations[0].bbox", "negative")
    nan_text = full.replace('"bbox": [1, 1, 5, 5]', '"bbox": [1, NaN, 5, 5]')
    case("coco_nan_bbox", [coco_json("nan_bbox", None, nan_text)], "CocoDataset", error="CocoFormatError",
         match=["annotations[0].bbox", "finite numbers"])
    inf_text = full.replace('"area": 25', '"area": Infinity')
    case("coco_infinite_area", [coco_json("infinite_area", None, inf_text)], "CocoDataset",
         error="CocoFormatError", match=["annotations[0].area", "finite number"])
    coco_case("coco_polygon_odd_length", lambda d: d["annotations"][0].update(segmentation=[[1, 1, 6, 1, 6]]),
              "annotations[0].segmentation[0]", "odd number of coordinates")
    coco_case("coco_polygon_two_points", lambda d: d["annotations"][0].update(segmentation=[[1, 1, 6, 6]]),
              "annotations[0].segmentation[0]", "at least 3")
    coco_case("coco_polygon_strings", lambda d: d["annotations"][0].update(segmentation=[["1", "1", "6", "1",
                                                                                          "6", "6"]]),
              "annotations[0].segmentation[0]", "not a finite number")
    coco_case("coco_rle_size_differs", lambda d: d["annotations"][1]["segmentation"].update(size=[4, 16]),
              "annotations[1].segmentation.size", "does not match")
    coco_case("coco_rle_counts_short", lambda d: d["annotations"][1]["segmentation"].update(counts=[18, 4, 4]),
              "annotations[1].segmentation.counts", "height*width = 64")
    coco_case("coco_rle_counts_garbage", lambda d: d["annotations"][1]["segmentation"].update(counts="!!~~"),
              "annotations[1].segmentation.counts", "undecodable")
    coco_case("coco_polygon_far_outside", lambda d: d["annotations"][0].update(segmentation=[[1, 1, 1e9, 1, 6, 6]]),
              "annotations[0].segmentation[0]", "vertex 1 (1e+09, 1)", "outside the 8x8 image")
    coco_case("coco_image_too_many_pixels", lambda d: d["images"][1].update(height=2**40), "images[1].height",
              "pycocotools")
    coco_case("coco_rle_count_overflows", lambda d: d["annotations"][1]["segmentation"].update(
        counts=[18, 4, 2**64]), "annotations[1].segmentation.counts")
    coco_case("coco_file_name_dotdot", lambda d: d["images"][0].update(file_name="../../etc/passwd"),
              "images[0].file_name", "'..'")
    coco_case("coco_file_name_absolute", lambda d: d["images"][0].update(file_name="/etc/passwd"),
              "images[0].file_name", "absolute")
    coco_case("coco_file_name_drive_letter", lambda d: d["images"][0].update(file_name="C:\\Windows\\a.png"),
              "images[0].file_name", "absolute")
    coco_case("coco_image_path_dotdot_unvalidated", lambda d: d["images"][0].update(file_name="../secret.png"),
              "image 1 file_name", "'..'", error="UnsafePathError", entry="coco_image_path",
              kwargs={"image_id": 1})
    coco_case("coco_height_is_string", lambda d: d["images"][1].update(height="8"), "images[1].height",
              "positive integer")
    coco_case("coco_annotation_not_object", lambda d: d["annotations"].append("oops"), "annotations[2]",
              "expected a JSON object")
    coco_case("coco_segmentation_wrong_type", lambda d: d["annotations"][0].update(segmentation=42),
              "annotations[0].segmentation", "polygons or an RLE object")
    zero = base_coco()
    zero["categories"][0]["id"] = 0
    for ann in zero["annotations"]:
        ann["category_id"] = 0
    case("coco_category_id_zero_warns", [coco_json("category_id_zero", zero)], "CocoDataset",
         warnings=["category_id_zero"])
    uni = base_coco()
    uni["images"][0]["file_name"] = "sub dir/Bild ü 1.png"
    uni["images"][1]["file_name"] = "ñandú 2.png"
    write("coco/sub dir/Bild ü 1.png", png(GRAY))
    write("coco/ñandú 2.png", png(GRAY))
    case("coco_unicode_space_file_names_work",
         [coco_json("unicode_names", uni), "coco/sub dir/Bild ü 1.png", "coco/ñandú 2.png"], "CocoDataset",
         kwargs={"read_images": True}, images=2)


# ------------------------------------------------------------------ Kaggle RLE
def rle() -> None:
    def rle_case(case_id: str, text: str, *match: str, n_pixels: int | None = 64) -> None:
        path = write(f"rle/{case_id}.txt", text.encode("ascii"))
        case(f"rle_{case_id}", [path], "parse_kaggle_rle", kwargs={"n_pixels": n_pixels}, error="RLEError",
             match=match)

    rle_case("odd_token_count", "1 3 10", "odd number", "token 2 ('10')")
    rle_case("non_numeric_token", "1 3 1O 2", "token 2 ('1O'", "digits only")
    rle_case("float_token", "1 3 10.5 2", "token 2 ('10.5'")
    rle_case("negative_token", "5 3 -10 2", "token 2 ('-10'")
    rle_case("zero_length", "1 3 10 0", "token 3 ('0'", "run length >= 1")
    rle_case("zero_start", "0 3", "token 0 ('0'", "1-indexed start")
    rle_case("overlapping_runs", "1 5 4 2", "token 2 ('4'", "must not overlap")
    rle_case("decreasing_starts", "20 2 10 2", "token 2 ('10'", "strictly increase")
    rle_case("run_past_image_end", "60 10", "token 1 ('10'", "past the last pixel 64")
    rle_case("start_past_image_end", "1 2 100 2", "token 2 ('100'", "pixel count")
    rle_case("huge_token", "1 99999999999999999999999", "token 1", "below 2**62", n_pixels=None)
    path = write("rle/valid_with_crlf.txt", b"1 3\r\n10 2\r\n")
    case("rle_valid_with_crlf_works", [path], "parse_kaggle_rle", kwargs={"n_pixels": 64}, runs=2)


# --------------------------------------------------------------------------- CSV
def csv() -> None:
    def csv_case(case_id: str, data: bytes, *match: str, error: str | None = "ConversionError", **extra) -> None:
        path = write(f"csv/{case_id}.csv", data)
        kwargs = {"order": "column", "height": 8, "width": 8, **extra.pop("kwargs", {})}
        if error:
            case(f"csv_{case_id}", [path], "convert_rle_csv", kwargs=kwargs, error=error, match=match)
        else:
            case(f"csv_{case_id}", [path], "convert_rle_csv", kwargs=kwargs, **extra)

    good = "ImageId,EncodedPixels\na,1 3 10 2\nb,\nc,5 4\n"
    csv_case("missing_column", b"ImageId,Pixels\na,1 3\n", "missing_column.csv", "no column 'EncodedPixels'",
             "columns found")
    csv_case("bom_works", b"\xef\xbb\xbf" + good.encode(), error=None, images=3, annotations=2)
    csv_case("windows_line_endings_work", good.replace("\n", "\r\n").encode(), error=None, images=3,
             annotations=2)
    csv_case("bom_and_crlf_work", b"\xef\xbb\xbf" + good.replace("\n", "\r\n").encode(), error=None, images=3,
             annotations=2)
    csv_case("semicolon_separated", good.replace(",", ";").encode(), "semicolon_separated.csv",
             "semicolon", "--sep ';'")
    csv_case("semicolon_with_sep_works", good.replace(",", ";").encode(), error=None, images=3, annotations=2,
             kwargs={"sep": ";"})
    csv_case("rle_odd_tokens", b"ImageId,EncodedPixels\na,1 3\nb,1 3 10\n", "line 3", "id 'b'", "odd number",
             error="RLEError")
    csv_case("rle_non_numeric", b"ImageId,EncodedPixels\na,1 3 x 2\n", "line 2", "token 2 ('x'",
             error="RLEError")
    csv_case("rle_overlapping_runs", b"ImageId,EncodedPixels\na,1 3\nb,10 5 12 2\n", "line 3", "overlap",
             error="RLEError")
    csv_case("rle_out_of_range", b"ImageId,EncodedPixels\na,60 10\n", "line 2", "image 8x8",
             "past the last pixel 64", error="RLEError")
    csv_case("ragged_row", b"ImageId,EncodedPixels\na,1 3\nb,1 3,extra\n", "ragged_row.csv", "line 3",
             "3 fields")
    csv_case("not_utf8", "ImageId,EncodedPixels\nbild_ä,1 3\n".encode("latin-1"), "not_utf8.csv",
             "not UTF-8")
    csv_case("zero_bytes", b"", "zero_bytes.csv", "empty")
    csv_case("duplicate_rows", b"ImageId,EncodedPixels\na,1 3\na,1 3\n", "line 3 repeats line 2")
    csv_case("empty_id_cell", b"ImageId,EncodedPixels\n,1 3\n", "line 2", "empty 'ImageId'")
    csv_case("unterminated_quote", b'ImageId,EncodedPixels\na,"1 3\n', "unterminated_quote.csv", "line")


# ------------------------------------------------------------------------- DICOM
def dicom_bytes(transfer_syntax: str, pixels: bool = True) -> bytes:
    """A small 8x8 CR DICOM; encapsulated junk pixel data for compressed syntaxes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1")
    meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.8.498.1")
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "CR", "CORPUS01"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if pixels and transfer_syntax == ExplicitVRLittleEndian:
        ds.PixelData = np.arange(64, dtype=np.uint16).tobytes()
    elif pixels:
        ds.PixelData = encapsulate([bytes(40)])
        ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dicom() -> None:
    explicit = "1.2.840.10008.1.2.1"
    good = dicom_bytes(explicit)
    case("dicom_no_pixel_data", [write("dicom/no_pixel_data.dcm", dicom_bytes(explicit, pixels=False))],
         "read_dicom", error="ImageReadError", match=["no_pixel_data.dcm", "no pixel data"])
    case("dicom_unsupported_transfer_syntax", [write("dicom/mpeg2.dcm", dicom_bytes("1.2.840.10008.1.2.4.100"))],
         "read_dicom", error="ImageReadError", match=["mpeg2.dcm", "1.2.840.10008.1.2.4.100", "MPEG2"])
    case("dicom_truncated_pixels", [write("dicom/truncated.dcm", good[:-50])], "read_dicom",
         error="ImageReadError", match=["truncated.dcm"])
    case("dicom_zero_bytes", [write("dicom/zero_bytes.dcm", b"")], "read_dicom",
         error="ImageReadError", match=["zero_bytes.dcm", "empty"])
    case("dicom_text_file", [write("dicom/text.dcm", b"patient: John Doe\nnot a DICOM file\n")], "read_dicom",
         error="ImageReadError", match=["text.dcm", "not a DICOM file"])
    case("dicom_valid_works", [write("dicom/valid 8x8 ü.dcm", good)], "read_dicom", shape=[8, 8])


# ----------------------------------------------------------------------- uploads
def uploads() -> None:
    case("upload_text_named_png", [write("uploads/notes.png", b"just some notes, not an image\n")],
         "save_upload", error="ImageReadError", match=["notes.png", "PNG, JPEG or DICOM"])
    case("upload_zip_named_dcm", [write("uploads/archive.dcm", b"PK\x03\x04" + bytes(60))], "save_upload",
         error="ImageReadError", match=["archive.dcm", "PNG, JPEG or DICOM"])
    case("upload_empty", [write("uploads/empty.jpg", b"")], "save_upload", error="ImageReadError",
         match=["empty.jpg", "empty"])


def main() -> None:
    for name in OWNED:
        shutil.rmtree(HERE / name, ignore_errors=True)
    for make in (images, masks, mask_converter, coco, rle, csv, dicom, uploads):
        make()
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    (HERE / "manifest.json").write_text(json.dumps(CASES, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"{len(CASES)} cases, {total / 1024:.1f} KiB in {HERE}")


if __name__ == "__main__":
    main()
