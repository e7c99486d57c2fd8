"""COCO category ids <-> the contiguous labels 1..K a Mask R-CNN predicts (0 = background)."""
from __future__ import annotations

from dataclasses import dataclass

from cococxr.errors import ConfigError


@dataclass(frozen=True)
class LabelMap:
    """Contiguous labels of the categories a detector learns, ordered by category id.

    Attributes:
        category_ids: COCO category ids, sorted; label ``k + 1`` is ``category_ids[k]``.
        names: the categories' names, in the same order.
    """

    category_ids: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def from_coco(cls, coco) -> "LabelMap":
        """The categories of ``coco`` (a :class:`~cococxr.coco.CocoDataset`) with masks.

        Image-level label annotations (no ``segmentation``) do not count.

        Raises:
            ConfigError: no category has a segmentation annotation.
        """
        used = sorted({a["category_id"] for a in coco.anns.values() if a.get("segmentation") is not None})
        if not used:
            raise ConfigError(f"{coco.source}: no annotation has a segmentation; Mask R-CNN needs masks")
        return cls(tuple(used), tuple(str(coco.cats[c]["name"]) for c in used))

    @classmethod
    def from_dict(cls, data: dict) -> "LabelMap":
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(int(c) for c in data["category_ids"]), tuple(str(n) for n in data["names"]))

    def to_dict(self) -> dict:
        """``{"category_ids": [...], "names": [...]}`` (JSON-able)."""
        return {"category_ids": list(self.category_ids), "names": list(self.names)}

    def __len__(self) -> int:
        return len(self.category_ids)

    def label(self, category_id: int) -> int:
        """The label (1..K) of a category id, or 0 when the map does not have it."""
        try:
            return self.category_ids.index(category_id) + 1
        except ValueError:
            return 0

    def category_id(self, label: int) -> int:
        """The category id of a label 1..K."""
        if not 1 <= label <= len(self.category_ids):
            raise ConfigError(f"label {label} is outside 1..{len(self.category_ids)}")
        return self.category_ids[label - 1]


__all__ = ["LabelMap"]
