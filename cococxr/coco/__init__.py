"""COCO datasets: load, validate, index, query, merge, split and write.

- :mod:`~cococxr.coco.dataset`: `CocoDataset` (load, index, queries, subset, merge,
  split, summary, to_pycocotools, write) and `merge`;
- :mod:`~cococxr.coco.builder`: `CocoBuilder`, deterministic ids for converters;
- :mod:`~cococxr.coco.validate`: `ValidationIssue`, `validate_dataset`;
- :mod:`~cococxr.coco.split`: the group split solver; :mod:`~cococxr.coco.merge`: merging;
- :mod:`~cococxr.coco.records`, :mod:`~cococxr.coco.files`: shared record predicates,
  JSON reading and image-root resolution.
"""
from cococxr.coco.builder import CocoBuilder
from cococxr.coco.dataset import CocoDataset, merge
from cococxr.coco.records import MAX_PIXELS, is_label_annotation
from cococxr.coco.split import STRATIFY_BY_LABELS
from cococxr.coco.validate import AREA_RELATIVE_TOLERANCE, BBOX_TOLERANCE_PX, ValidationIssue, validate_dataset

__all__ = [
    "AREA_RELATIVE_TOLERANCE",
    "BBOX_TOLERANCE_PX",
    "MAX_PIXELS",
    "STRATIFY_BY_LABELS",
    "CocoBuilder",
    "CocoDataset",
    "ValidationIssue",
    "is_label_annotation",
    "merge",
    "validate_dataset",
]
