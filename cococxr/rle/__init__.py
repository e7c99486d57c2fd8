"""Run-length encodings: the one codec of Kaggle RLE, COCO RLE and runs.

- :mod:`~cococxr.rle.kaggle`: Kaggle ``"start length"`` strings, row or column order;
- :mod:`~cococxr.rle.coco_strings`: COCO compressed counts strings (the only decoder of
  them) and the checks of counts against an image size;
- :mod:`~cococxr.rle.runs`: ``(starts0, lengths)`` runs <-> COCO / Kaggle without masks;
- :mod:`~cococxr.rle.coco_rle`: COCO RLE dicts <-> masks, area, bbox (pycocotools);
- :mod:`~cococxr.rle.segmentation`: polygons and any segmentation -> RLE / mask;
- :mod:`~cococxr.rle.arrays`: shared mask / counts array helpers.

Masks are ``uint8`` arrays of 0/1, shape ``(H, W)``, C-contiguous; on input any non-zero
pixel counts as foreground.
"""
from cococxr.rle.arrays import DEFAULT_MAX_PIXELS, ORDERS, counts_to_mask, max_pixels
from cococxr.rle.coco_rle import coco_rle_decode, coco_rle_encode, rle_area, rle_bbox
from cococxr.rle.coco_strings import (
    MAX_COUNT,
    check_counts,
    decode_counts,
    encode_counts,
    parse_counts,
    rle_counts,
)
from cococxr.rle.kaggle import kaggle_rle_decode, kaggle_rle_encode, parse_kaggle_rle
from cococxr.rle.runs import coco_to_runs, counts_to_runs, merge_runs, runs_to_coco, runs_to_counts, runs_to_kaggle
from cococxr.rle.segmentation import (
    polygon_outside_problem,
    polygons_to_mask,
    segmentation_to_mask,
    segmentation_to_rle,
)

__all__ = [
    "ORDERS",
    "DEFAULT_MAX_PIXELS",
    "max_pixels",
    "parse_kaggle_rle",
    "kaggle_rle_decode",
    "kaggle_rle_encode",
    "MAX_COUNT",
    "decode_counts",
    "encode_counts",
    "parse_counts",
    "check_counts",
    "rle_counts",
    "counts_to_mask",
    "merge_runs",
    "runs_to_counts",
    "counts_to_runs",
    "runs_to_coco",
    "coco_to_runs",
    "runs_to_kaggle",
    "coco_rle_encode",
    "coco_rle_decode",
    "polygon_outside_problem",
    "polygons_to_mask",
    "segmentation_to_rle",
    "segmentation_to_mask",
    "rle_area",
    "rle_bbox",
]
