"""What a classifier is fed: Sequences from a sidecar, lung masks from a U-Net, batched prediction.

Training, evaluation, prediction and Grad-CAM all build their inputs here, from the
classifier's :class:`~cococxr.pipelines.classification.thresholds.ClassifierSidecar`, so the four cannot
drift apart. Images go through :class:`cococxr.sequences.CocoClassificationSequence`
(decode, equalise, resize, then optionally mask the lungs and equalise again).

Masking (``mask_with``): ``"none"``; ``"coco"``: the lung masks of the COCO file;
or a segmentation model file: :class:`LungMasker` predicts the lungs of each batch
(probabilities resized back to the classifier's input size, kept where > 0.5).
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cococxr.errors import ConfigError
from cococxr.pipelines.classification.labels import merge_labels, resolve_classes
from cococxr.pipelines.classification.thresholds import ClassifierSidecar

MASK_MODES = ("none", "coco")


class LungMasker:
    """Lung probabilities of a batch from a segmentation model (the ``mask_with`` callable).

    The batch (the classifier's input: float ``(B, H, W, C)`` in 0..1) is resized to the
    segmentation model's input (bilinear), given its channel count, equalisation and
    preprocessing as recorded in its run's ``config.json``, and predicted; the
    probabilities of the chosen classes are united (maximum) and resized back.

    The maps are remembered (float16, least recently used first out) under a hash of the
    image they were predicted from: the Sequence masks the same prepared image every
    epoch (augmentation comes after masking), so the U-Net runs once per image.

    Args:
        model_path: the segmentation model file (``.h5`` / ``.keras``).
        mask_classes: its classes united into the mask; when none of its class names is
            listed, a one-channel model's only channel is used.
        cache_size: maps remembered (1024 maps of 224x224 take 100 MB).

    Raises:
        ConfigError: a several-channel model none of whose classes is in ``mask_classes``.
    """

    def __init__(self, model_path: str | os.PathLike, mask_classes=("lung",), cache_size: int = 1024):
        from cococxr.pipelines.segmentation.model import input_spec, load_segmentation_model

        self.cache_size = int(cache_size)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.model, path = load_segmentation_model(model_path)
        n_out = int(self.model.output_shape[-1])
        try:
            self.spec = input_spec(self.model, path)
        except ConfigError:  # no config.json beside it: name the channels
            self.spec = input_spec(self.model, path, classes=[f"channel_{k}" for k in range(n_out)])
        self.channels = [k for k, name in enumerate(self.spec.classes) if name in set(mask_classes)]
        if not self.channels and n_out == 1:
            self.channels = [0]
        if not self.channels:
            raise ConfigError(f"segmentation model {model_path} predicts {self.spec.classes}; none is in "
                              f"mask_classes {list(mask_classes)}")
        self._preprocess = None
        if self.spec.preprocessing:
            import segmentation_models as sm

            self._preprocess = sm.get_preprocessing(self.spec.preprocessing)

    def _model_input(self, batch: np.ndarray) -> np.ndarray:
        from cococxr._tf import tf
        from cococxr.preprocess import clahe, equalize_hist

        x = tf.image.resize(batch, self.spec.input_size, method="bilinear").numpy().clip(0.0, 1.0)
        if x.shape[3] != self.spec.channels:
            x = np.repeat(x, 3, axis=3) if self.spec.channels == 3 else x.mean(axis=3, keepdims=True)
        if self.spec.equalize:
            equalizer = {"hist": equalize_hist, "clahe": clahe}[self.spec.equalize]
            x = np.stack([equalizer(np.round(im * 255).astype(np.uint8)) for im in x]).astype(np.float32) / 255
            x = x.reshape(len(batch), *self.spec.input_size, self.spec.channels)
        if self._preprocess is not None:
            x = np.asarray(self._preprocess(x * 255.0), np.float32)
        return x.astype(np.float32)

    def _predict(self, batch: np.ndarray) -> np.ndarray:
        from cococxr._tf import tf

        probs = np.asarray(self.model.predict_on_batch(self._model_input(batch)), np.float32)
        probs = probs[..., self.channels].max(axis=3, keepdims=True)
        return tf.image.resize(probs, batch.shape[1:3], method="bilinear").numpy()[..., 0]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Lung probabilities ``(B, H, W)`` for a float batch ``(B, H, W, C)`` in 0..1."""
        batch = np.ascontiguousarray(batch, np.float32)
        keys = [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in batch]
        found = {key: self._cache[key] for key in keys if key in self._cache}
        missing = [k for k, key in enumerate(keys) if key not in found]
        if missing:
            for k, prob in zip(missing, self._predict(batch[missing])):
                found[keys[k]] = prob.astype(np.float16)
        for key in keys:
            self._cache[key] = found[key]
            self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return np.stack([found[key] for key in keys]).astype(np.float32)


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
    import dataclasses

    from cococxr.models.io import load_model
    from cococxr.pipelines.classification.thresholds import check_sidecar, read_sidecar

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


def labelled_coco(coco, sidecar: ClassifierSidecar):
    """``coco`` with its labels merged into the sidecar's classes (its class spec resolved on it)."""
    groups = resolve_classes(sidecar.class_spec, coco)
    if list(groups) != sidecar.class_names:
        raise ConfigError(f"class spec {sidecar.class_spec!r} gives classes {list(groups)} on "
                          f"{coco.source}, but the model was trained on {sidecar.class_names}")
    return merge_labels(coco, groups)


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
    from cococxr.sequences import CocoClassificationSequence

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
    from tqdm.auto import tqdm

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


def images_coco(files: list[Path], root: Path):
    """A label-less CocoDataset of image files under ``root`` (ids 1..N in order)."""
    from cococxr.coco import CocoDataset
    from cococxr.io import image_size

    images = []
    for n, path in enumerate(files, start=1):
        height, width = image_size(path)
        images.append({"id": n, "file_name": path.relative_to(root).as_posix(),
                       "height": int(height), "width": int(width)})
    categories = [{"id": 1, "name": "image", "supercategory": "finding"}]
    return CocoDataset({"images": images, "annotations": [], "categories": categories}, root, validate=False)


def input_coco(inputs: list, image_root=None, recursive: bool = False):
    """A CocoDataset of the inputs: one COCO JSON file, or image files and folders."""
    from cococxr.coco import CocoDataset
    from cococxr.pipelines.segmentation.predict import collect_images, is_coco_input

    inputs = [str(i) for i in inputs]
    if is_coco_input(inputs):
        return CocoDataset(inputs[0], image_root)
    root, files = collect_images(inputs, recursive)
    return images_coco(files, root)


__all__ = ["MASK_MODES", "LungMasker", "mask_source", "load_classifier", "labelled_coco", "classifier_sequence",
           "Predictions", "predict", "images_coco", "input_coco"]
