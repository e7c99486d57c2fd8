"""CLI cases of the first corpus, run through the command line: broken COCO and CSV files."""
from __future__ import annotations


def build(corpus) -> None:
    corpus.folder("validate_truncated_json")
    corpus.write("validate_truncated_json", "coco.json", '{"images": [{"id": 1, "file_name": "a.png"')
    corpus.case("validate_truncated_json", ["validate", "coco.json"], match=["coco.json", "not valid JSON"])

    corpus.folder("convert_rle_csv_missing_column")
    corpus.write("convert_rle_csv_missing_column", "labels.csv", "Id,Pixels\nx,1 2\n")
    corpus.case("convert_rle_csv_missing_column",
                ["convert", "rle-csv", "labels.csv", "--order", "row", "--height", "4", "--width", "4",
                 "--out", "out.json"],
                match=["labels.csv", "ImageId"], absent=["out.json"])

    corpus.folder("merge_ok")
    empty = '{"images": [], "annotations": [], "categories": []}'
    corpus.write("merge_ok", "a.json", empty)
    corpus.write("merge_ok", "b.json", empty)
    corpus.case("merge_ok", ["merge", "a.json", "b.json", "--out", "merged.json"], exit=0,
                match=["merged 2 files"], present=["merged.json"])
