"""Where ``cococxr demo`` writes its output, and where ``cococxr app`` finds the demo's models."""
from __future__ import annotations

from pathlib import Path

DEMO_OUT = "cococxr-demo"


class Layout:
    """Where each stage of the demo writes, under the output folder ``root``."""

    def __init__(self, root: str | Path = DEMO_OUT):
        self.root = Path(root)
        self.data = self.root / "data"
        self.seg_run = self.root / "segmentation"
        self.seg_test = self.seg_run / "test"
        self.lungs = self.root / "predicted_lungs"
        self.cls_run = self.root / "classifier"
        self.cls_test = self.cls_run / "test"
        self.gradcam = self.root / "gradcam"
        self.models = self.root / "models"
        self.seg_model = self.models / "segmentation.h5"
        self.cls_model = self.models / "classifier.h5"

    def split_file(self, part: str) -> Path:
        """The COCO file of one split part (``all`` for the whole dataset)."""
        return self.data / f"{part}.json"


__all__ = ["DEMO_OUT", "Layout"]
