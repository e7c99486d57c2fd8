"""The data a classifier is trained, evaluated and run on: labels merged into its classes, and inputs.

The classifier's input Sequence, lung masking and batched prediction are shared with the
app and live in :mod:`cococxr.pipelines.engine.classifier`.
"""
from __future__ import annotations

from cococxr.coco import CocoDataset
from cococxr.errors import ConfigError
from cococxr.pipelines.classification.labels import merge_labels, resolve_classes
from cococxr.pipelines.engine.cards import ClassifierSidecar
from cococxr.pipelines.engine.images import collect_images, files_coco, is_coco_input


def labelled_coco(coco, sidecar: ClassifierSidecar):
    """``coco`` with its labels merged into the sidecar's classes (its class spec resolved on it)."""
    groups = resolve_classes(sidecar.class_spec, coco)
    if list(groups) != sidecar.class_names:
        raise ConfigError(f"class spec {sidecar.class_spec!r} gives classes {list(groups)} on "
                          f"{coco.source}, but the model was trained on {sidecar.class_names}")
    return merge_labels(coco, groups)


def input_coco(inputs: list, image_root=None, recursive: bool = False):
    """A CocoDataset of the inputs: one COCO JSON file, or image files and folders (ids 1..N, no labels)."""
    inputs = [str(i) for i in inputs]
    if is_coco_input(inputs):
        return CocoDataset(inputs[0], image_root)
    root, files = collect_images(inputs, recursive)
    return files_coco(files, root, [{"id": 1, "name": "image", "supercategory": "finding"}])


__all__ = ["labelled_coco", "input_coco"]
