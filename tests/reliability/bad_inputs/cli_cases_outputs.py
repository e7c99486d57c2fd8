"""CLI cases of issue 17 part A: outputs over inputs (class 1), the file's own image root
(class 2), links out of the root (class 3) and outputs the system refuses (class 6).

Each case's inputs must come out byte-identical; ``absent`` lists what must not be written.
"""
from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image


def png(value: int = 0, size: int = 8) -> bytes:
    """An 8-bit grayscale PNG with a centred square of ``value`` (0: all black)."""
    pixels = np.zeros((size, size), np.uint8)
    pixels[2:6, 2:6] = value
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def coco(file_names=("a.png",), image_root: str | None = "images") -> str:
    """A valid COCO file: one 8x8 image per name with one square lung annotation."""
    images = [{"id": i, "file_name": n, "height": 8, "width": 8} for i, n in enumerate(file_names, 1)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "area": 16.0, "bbox": [2, 2, 4, 4],
             "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]} for i in range(1, len(images) + 1)]
    data = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "lung"}]}
    if image_root is not None:
        data["info"] = {"image_root": image_root}
    return json.dumps(data)


def dataset(corpus, case_id: str, image_root: str | None = "images") -> None:
    """``images/a.png``, ``masks/a.png`` and ``coco.json`` in a fresh case folder."""
    corpus.folder(case_id)
    corpus.write(case_id, "images/a.png", png(90))
    corpus.write(case_id, "masks/a.png", png(255))
    corpus.write(case_id, "coco.json", coco(image_root=image_root))


def build(corpus) -> None:
    outputs_over_inputs(corpus)
    own_image_root(corpus)
    links_out(corpus)
    unwritable_outputs(corpus)


def outputs_over_inputs(corpus) -> None:
    """Class 1: refused before any work, naming both paths."""
    cases = [
        ("out_export_masks_into_images", ["export", "masks", "coco.json", "--out", "images"],
         ["--out images", "image root"]),
        ("out_export_masks_link_to_images", ["export", "masks", "coco.json", "--out", "pictures"],
         ["--out pictures", "image root", "resolved"]),
        ("out_export_masks_contains_coco", ["export", "masks", "coco.json", "--out", "."], ["contains", "coco.json"]),
        ("out_export_rle_csv_is_input", ["export", "rle-csv", "coco.json", "--out", "coco.json"],
         ["--out coco.json", "is the input coco"]),
        ("out_doctor_is_input", ["doctor", "coco.json", "--out", "coco.json"], ["--out coco.json", "is the input"]),
        ("out_convert_masks_is_images", ["convert", "masks", "images", "masks", "--out", "images"],
         ["--out images", "is the input images"]),
        ("out_convert_masks_inside_masks", ["convert", "masks", "images", "masks", "--out", "masks/coco.json"],
         ["masks/coco.json", "is inside the input masks"]),
        ("out_convert_rle_csv_is_csv", ["convert", "rle-csv", "labels.csv", "--order", "row", "--height", "8",
                                        "--width", "8", "--out", "labels.csv"], ["--out labels.csv", "is the input csv"]),
        ("out_convert_metadata_is_csv", ["convert", "metadata", "labels.csv", "--images", "images", "--out",
                                         "labels.csv"], ["labels.csv", "is the input csv"]),
        ("out_convert_dicom_images_in_folder", ["convert", "dicom", "images", "--out-images", "images/png",
                                                "--out", "x.json"], ["--out-images images/png", "is inside"]),
        ("out_convert_nifti_images_over_source", ["convert", "nifti", "images", "--out", "x.json", "--out-images",
                                                  "images"], ["--out-images images", "is the input source"]),
        ("out_merge_link_to_input", ["merge", "coco.json", "--out", "link.json"], ["--out link.json", "resolved"]),
        ("out_split_part_named_like_input", ["split", "coco.json", "--fractions", "coco=0.5,val=0.5", "--by",
                                             "id", "--out-dir", "."], ["split 'coco'", "is the input coco"]),
    ]
    for case_id, argv, match in cases:
        dataset(corpus, case_id)
        corpus.write(case_id, "labels.csv", "ImageId,EncodedPixels\na,1 2\n")
        corpus.link(case_id, "pictures", "images")
        corpus.link(case_id, "link.json", "coco.json")
        corpus.case(case_id, argv, match=match, absent=["x.json", "images/png", "val.json", "images/class_map.json"],
                    note="issue 17 class 1")


def own_image_root(corpus) -> None:
    """Class 2: ``info.image_root`` obeys the confinement of ``file_name``; no report prints contents."""
    roots = {"absolute": ("/etc", ["coco.json", "info.image_root", "'/etc'", "--image-root"]),
             "dotdot": ("../../../../../../etc", ["info.image_root", "'..'", "--image-root"]),
             "link_out": ("etc", ["info.image_root 'etc' resolves to", "outside the folder"])}
    for kind, (root, match) in roots.items():
        for command in ("validate", "inspect", "doctor"):
            case_id = f"root_{kind}_{command}"
            corpus.folder(case_id)
            corpus.write(case_id, "coco.json", json.dumps({
                "info": {"image_root": root}, "categories": [{"id": 1, "name": "lung"}], "annotations": [],
                "images": [{"id": 1, "file_name": "passwd", "height": 8, "width": 8}]}))
            if kind == "link_out":
                corpus.link(case_id, "etc", "/etc")
            corpus.case(case_id, [command, "coco.json"],
                        match=match if command != "doctor" else ["unsafe_image_root", *match[-2:]],
                        note="issue 17 class 2")
    corpus.folder("root_doctor_text_as_image")
    corpus.write("root_doctor_text_as_image", "images/a.png", "user:SECRET-TOKEN-42\n" * 4)
    corpus.write("root_doctor_text_as_image", "coco.json", coco())
    corpus.case("root_doctor_text_as_image", ["doctor", "coco.json"], match=["unreadable", "a.png", "bytes"],
                note="issue 17 class 2: the report names the file and its size, never its contents")


def links_out(corpus) -> None:
    """Class 3: a link leaving the image root is refused (readers) or reported (doctor), never followed."""
    cases = [
        ("link_validate", ["validate", "coco.json"], ["unsafe_link", "b.png", "outside the root"]),
        ("link_doctor", ["doctor", "coco.json"], ["unsafe_link", "b.png", "--image-root"]),
        ("link_inspect", ["inspect", "coco.json"], ["b.png", "outside the image root"]),
        ("link_convert_masks", ["convert", "masks", "images", "masks", "--out", "x.json"],
         ["images/b.png is a link to", "outside the root"]),
        ("link_convert_folders", ["convert", "folders", "tree", "--out", "x.json"], ["b.png is a link", "outside"]),
        ("link_convert_dicom", ["convert", "dicom", "images", "--out-images", "png", "--out", "x.json"],
         ["b.png is a link", "outside the root"]),
    ]
    for case_id, argv, match in cases:
        corpus.folder(case_id)
        corpus.write(case_id, "images/a.png", png(90))
        corpus.write(case_id, "masks/a.png", png(255))
        corpus.link(case_id, "images/b.png", "/etc/passwd")
        corpus.write(case_id, "masks/b.png", png(255))
        corpus.write(case_id, "tree/lung/a.png", png(90))
        corpus.link(case_id, "tree/lung/b.png", "/etc/passwd")
        corpus.write(case_id, "coco.json", coco(("a.png", "b.png")))
        corpus.case(case_id, argv, match=match, absent=["x.json", "png", "out"], note="issue 17 class 3")


def unwritable_outputs(corpus) -> None:
    """Class 6 (environment): an output the system refuses is one line naming the path, exit 2."""
    cases = [
        ("env_out_is_folder_rle_csv", ["export", "rle-csv", "coco.json", "--order", "row", "--out", "adir"],
         ["adir", "is a folder"]),
        ("env_out_is_folder_merge", ["merge", "coco.json", "--out", "adir"], ["adir", "is a folder"]),
        ("env_out_is_folder_convert", ["convert", "masks", "images", "masks", "--out", "adir"],
         ["adir", "is a folder"]),
        ("env_out_dir_is_file_export_masks", ["export", "masks", "coco.json", "--out", "afile"],
         ["afile", "is a file; expected a folder"]),
        ("env_out_parent_is_file_doctor", ["doctor", "coco.json", "--out", "afile/report.md"],
         ["afile", "is a file; expected a folder"]),
        ("env_out_dir_is_file_split", ["split", "coco.json", "--by", "id", "--fractions", "train=0.5,val=0.5",
                                       "--out-dir", "afile"], ["afile", "is a file"]),
    ]
    for case_id, argv, match in cases:
        dataset(corpus, case_id)
        corpus.write(case_id, "adir/keep.txt", "kept\n")
        corpus.write(case_id, "afile", "not a folder\n")
        corpus.case(case_id, argv, match=match, note="issue 17 class 6 (environment)")
