"""Classifier inference: a trained classifier with its sidecar, its input Sequence, batched prediction.

Training, evaluation, prediction, Grad-CAM and the app all build a classifier's inputs
here, from its :class:`~cococxr.pipelines.engine.cards.ClassifierSidecar`, so they cannot
drift apart. Images go through :class:`cococxr.sequences.CocoClassificationSequence`
(decode, equalise, resize, then optionally mask the lungs and equalise again).

Masking (``mask_with``): ``"none"``; ``"coco"``: the lung masks of the COCO file; or a
segmentation model file: a :class:`~cococxr.pipelines.engine.segmenter.LungMasker`
predicts the lungs of each batch (probabilities resized back to the classifier's input
size, kept where > 0.5).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cococxr.errors import ConfigError
from cococxr.models.io import load_model
from cococxr.pipelines.engine.cards import ClassifierSidecar, check_sidecar, decide, read_sidecar
from cococxr.pipelines.engine.segmenter import LungMasker
from cococxr.sequences import CocoClassificationSequence

MASK_MODES = ("none", "coco")


def mask_source(mask_with: str, mask_classes=("lung",)):
    """The Sequence's ``mask_with`` for a config/sidecar value: None, ``"coco"`` or a :class:`LungMasker`."""
    if mask_with in (None, "none"):
        return None
    if mask_with == "coco":
        return "coco"
    if not Path(mask_with).is_file():
        raise ConfigError(f"mask_with {mask_with!r} is neither 'none', 'coco' nor a segmentation model file")
    return LungMasker(mask_with, mask_classes)


def load_classifier(model_path, *, seg_model=None, threshold: float | None = None):
    """Load a classifier file and its sidecar; ``(model, sidecar)``.

    Args:
        model_path: the ``.h5``/``.keras`` file written by ``cococxr train classifier``.
        seg_model: a segmentation model file replacing the one a U-Net-masked classifier's
            sidecar names (e.g. after moving the files).
        threshold: replaces the tuned threshold of the positive class.

    Raises:
        ConfigError: missing sidecar, ``seg_model`` for a classifier that was not trained on
            U-Net masks, or a sidecar that disagrees with the model's outputs.
    """
    sidecar = read_sidecar(model_path)
    if seg_model is not None:
        if sidecar.mask_with in MASK_MODES:
            raise ConfigError(f"{model_path} was trained with mask_with={sidecar.mask_with!r}, not on U-Net "
                              f"masks: a segmentation model would change what it sees")
        sidecar = dataclasses.replace(sidecar, mask_with=str(seg_model))
    if threshold is not None:
        sidecar = dataclasses.replace(sidecar, threshold=float(threshold),
                                      positive_class=sidecar.positive_class or sidecar.class_names[0])
        check_sidecar(sidecar, "threshold")
    model = load_model(model_path, compile=False)
    if int(model.output_shape[-1]) != len(sidecar.class_names):
        raise ConfigError(f"{model_path} has {model.output_shape[-1]} outputs but its sidecar names "
                          f"{len(sidecar.class_names)} classes {sidecar.class_names}")
    return model, sidecar


def classifier_sequence(coco, sidecar: ClassifierSidecar, *, masker=None, subset: str = "train",
                        balance: bool = False, augment=None, shuffle: bool = False, batch_size: int = 16,
                        seed: int = 0, image_ids=None):
    """A :class:`~cococxr.sequences.CocoClassificationSequence` as the sidecar describes.

    Args:
        coco: a :class:`~cococxr.coco.CocoDataset`; for ``subset="train"`` one whose labels
            are the sidecar's classes (:func:`labelled_coco`).
        sidecar: input size, channels, equalisation and masking.
        masker: the ``mask_with`` value (from :func:`mask_source`), built once by the caller.
        subset: ``"train"`` (labelled images only, yields labels) or ``"predict"`` (every image).
        balance: class-balanced batches.
        augment: augmentation preset or None.
        shuffle: reshuffle every epoch (without ``balance``).
        batch_size, seed, image_ids: as the Sequence takes them.
    """
    classes = sidecar.class_names if subset == "train" else _any_classes(coco)
    return CocoClassificationSequence(
        coco, classes, batch_size=batch_size, input_size=sidecar.input_size, channels=sidecar.channels,
        balance="batch" if balance else None, mask_with=masker, mask_classes=sidecar.mask_classes,
        equalize=sidecar.equalize, augment=augment, subset=subset, shuffle=shuffle, seed=seed,
        image_ids=image_ids)


def _any_classes(coco) -> list[str]:
    """One category name of ``coco`` (the predict subset ignores labels but needs a valid class)."""
    if not coco.cats:
        raise ConfigError(f"{coco.source} has no categories")
    return [next(iter(coco.cats.values()))["name"]]


@dataclass
class Predictions:
    """Class probabilities of images, in order.

    Attributes:
        image_ids: COCO image ids.
        file_names: their ``file_name``.
        probs: float32 ``(N, K)``.
        y_true: ``(N,)`` class indices (None for unlabelled images).
    """

    image_ids: list
    file_names: list[str]
    probs: np.ndarray
    y_true: np.ndarray | None = None


def predict(model, sequence, progress: bool = False) -> Predictions:
    """Run ``model`` over every batch of an unshuffled, unbalanced Sequence (every image once)."""
    ids, probs, labels = [], [], []
    for index in tqdm(range(len(sequence)), desc="classifying", unit="batch", disable=not progress):
        batch = sequence[index]
        x = batch if sequence.subset == "predict" else batch[0]
        probs.append(np.asarray(model.predict_on_batch(x), np.float32))
        ids += sequence.batch_image_ids(index)
        if sequence.subset == "train":
            labels.append(np.asarray(batch[1]).argmax(axis=1))
    names = [str(sequence.coco.imgs[i].get("file_name")) for i in ids]
    return Predictions(ids, names, np.concatenate(probs), np.concatenate(labels) if labels else None)


def prediction_rows(preds, sidecar) -> list[dict]:
    """One dict per image: file, each class's probability, the most probable class and the decision."""
    names = sidecar.class_names
    most_probable = decide(preds.probs)
    decided = decide(preds.probs, sidecar.positive_index(), sidecar.threshold)
    return [{"file_name": file_name, **{f"prob_{n}": float(p) for n, p in zip(names, probs)},
             "most_probable": names[most_probable[k]], "predicted": names[decided[k]]}
            for k, (file_name, probs) in enumerate(zip(preds.file_names, preds.probs))]


__all__ = ["MASK_MODES", "mask_source", "load_classifier", "classifier_sequence", "Predictions", "predict",
           "prediction_rows"]
