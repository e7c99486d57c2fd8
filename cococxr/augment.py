"""Joint image + mask augmentation with albumentations, reproducible per item.

An :class:`Augmenter` wraps any albumentations transform. Each call is seeded
explicitly, and each thread works on its own copy of the transform, so the output of
an item depends only on its seed, never on which thread ran it or in what order.

Presets (``"light"``, ``"medium"``) are safe for chest X-rays: small rotations, shifts
and scales plus brightness/contrast changes. They never flip vertically and do not
flip horizontally unless asked (``preset(name, horizontal_flip=True)``): the heart is
on the patient's left, and a mirrored film is not a realistic X-ray.
"""
from __future__ import annotations

import copy
import threading

import albumentations as A
import cv2
import numpy as np

from cococxr.errors import ConfigError

#: Geometric and intensity ranges of each preset.
PRESETS = {
    "light": {"rotate": 5, "shift": 0.03, "scale": 0.05, "brightness": 0.1, "contrast": 0.1, "gamma": None},
    "medium": {"rotate": 10, "shift": 0.06, "scale": 0.1, "brightness": 0.2, "contrast": 0.2, "gamma": (80, 120)},
}


def preset(name: str, *, horizontal_flip: bool = False) -> A.Compose:
    """An X-ray-safe albumentations pipeline.

    Args:
        name: ``"light"`` (rotate ±5°, shift ±3 %, scale ±5 %, brightness/contrast
            ±10 %) or ``"medium"`` (rotate ±10°, shift ±6 %, scale ±10 %,
            brightness/contrast ±20 %, gamma 0.8..1.2).
        horizontal_flip: add a left-right flip with probability 0.5.

    Returns:
        An ``A.Compose`` acting on ``image`` (uint8 or float32 in [0, 1]) and ``mask``;
        pixels shifted in from outside are 0 in both.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown augmentation preset {name!r}; known: {sorted(PRESETS)}")
    cfg = PRESETS[name]
    transforms = [A.HorizontalFlip(p=0.5)] if horizontal_flip else []
    transforms += [
        A.Affine(rotate=(-cfg["rotate"], cfg["rotate"]),
                 translate_percent=(-cfg["shift"], cfg["shift"]),
                 scale=(1 - cfg["scale"], 1 + cfg["scale"]),
                 border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.8),
        A.RandomBrightnessContrast(brightness_limit=cfg["brightness"], contrast_limit=cfg["contrast"], p=0.7),
    ]
    if cfg["gamma"]:
        transforms.append(A.RandomGamma(gamma_limit=cfg["gamma"], p=0.3))
    return A.Compose(transforms)


class Augmenter:
    """Apply an albumentations transform to an image and its mask with an explicit seed.

    Args:
        transform: any albumentations transform or ``Compose``.

    Call with ``image`` (uint8 or float32 in [0, 1], ``(H, W)`` or ``(H, W, C)``),
    an optional ``mask`` (``(H, W)`` or ``(H, W, K)``, moved with nearest neighbour)
    and an int ``seed``; returns ``(image, mask)`` with the same dtypes and shapes.
    """

    def __init__(self, transform):
        if not isinstance(transform, (A.BasicTransform, A.BaseCompose)):
            raise ConfigError(f"augment must be None, a preset name {sorted(PRESETS)} or an "
                              f"albumentations transform, got {type(transform).__name__}")
        self.transform = transform if isinstance(transform, A.BaseCompose) else A.Compose([transform])
        self._local = threading.local()

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None, *,
                 seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        transform = getattr(self._local, "transform", None)
        if transform is None:
            transform = self._local.transform = copy.deepcopy(self.transform)
        transform.set_random_seed(int(seed))
        if mask is None:
            return transform(image=image)["image"], None
        out = transform(image=image, mask=mask)
        return out["image"], out["mask"]


def build_augmenter(augment) -> Augmenter | None:
    """Turn the ``augment`` parameter of a Sequence into an :class:`Augmenter`.

    Args:
        augment: None, a preset name (``"light"``, ``"medium"``) or an albumentations
            transform.
    """
    if augment is None:
        return None
    if isinstance(augment, str):
        return Augmenter(preset(augment))
    return Augmenter(augment)


__all__ = ["PRESETS", "Augmenter", "build_augmenter", "preset"]
