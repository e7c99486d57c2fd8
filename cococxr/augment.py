"""Joint image + mask augmentation with albumentations, reproducible per item.

An :class:`Augmenter` wraps any albumentations transform. Each call is seeded
explicitly, and each thread works on its own copy of the transform, so the output of
an item depends only on its seed, never on which thread ran it or in what order.

Presets (``"light"``, ``"medium"``) are safe for chest X-rays: small rotations, shifts
and scales plus brightness/contrast changes. They never flip vertically and do not
flip horizontally unless asked (``preset(name, horizontal_flip=True)``): the heart is
on the patient's left, and a mirrored film is not a realistic X-ray.

Levers against domain shift (films from other hospitals) are added to a preset with
``+``: ``build_augmenter("light+letterbox+exposure")``; :data:`cococxr.augment_names.LEVERS`
describes each and fixes the order in which they apply (intensity first, then geometry,
then the burned-in text, so that padding stays black and text may fall on it).
"""
from __future__ import annotations

import copy
import os
import threading

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations must not look for updates offline
import albumentations as A  # noqa: E402
import cv2
import numpy as np

from cococxr.augment_names import LEVERS, PRESET_NAMES, augment_parts
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


_TEXTS = ("L", "R", "AP", "PA", "PORTABLE", "SUPINE", "ERECT", "12/03", "08:41", "ICU", "1", "2", "+")


def _resize(array: np.ndarray, width: int, height: int, flag: int) -> np.ndarray:
    out = cv2.resize(array, (width, height), interpolation=flag)
    return out.reshape(height, width, *array.shape[2:])


class Letterbox(A.DualTransform):
    """Shrink the image into a black frame of random aspect, as letterboxed films are (mask alike).

    One side of the content keeps ``major`` (a fraction drawn from the range) of the
    frame, the other ``minor``; the content sits at a random place, the rest is 0 in
    the image and the mask. The output keeps the input's shape.

    Args:
        major: range of the shrunk side's fraction.
        minor: range of the other side's fraction.
        p: probability.
    """

    def __init__(self, major=(0.55, 1.0), minor=(0.85, 1.0), p: float = 0.5):
        super().__init__(p=p)
        self.major, self.minor = tuple(major), tuple(minor)

    def get_params_dependent_on_data(self, params, data):
        height, width = params["shape"][:2]
        fractions = [self.py_random.uniform(*self.major), self.py_random.uniform(*self.minor)]
        if self.py_random.random() < 0.5:
            fractions.reverse()
        new_h, new_w = max(1, round(height * fractions[0])), max(1, round(width * fractions[1]))
        return {"box": (self.py_random.randint(0, height - new_h), self.py_random.randint(0, width - new_w),
                        new_h, new_w)}

    def _frame(self, array: np.ndarray, box, flag: int) -> np.ndarray:
        top, left, new_h, new_w = box
        out = np.zeros_like(array)
        out[top:top + new_h, left:left + new_w] = _resize(array, new_w, new_h, flag)
        return out

    def apply(self, img, box=(0, 0, 1, 1), **params):
        return self._frame(img, box, cv2.INTER_AREA)

    def apply_to_mask(self, mask, box=(0, 0, 1, 1), **params):
        return self._frame(mask, box, cv2.INTER_NEAREST)

    def get_transform_init_args_names(self):
        return ("major", "minor")


class BurnedInText(A.ImageOnlyTransform):
    """Draw random text and markers (side markers, dates, "PORTABLE") onto the image only.

    Args:
        max_items: at most this many strings (at least one).
        p: probability.
    """

    def __init__(self, max_items: int = 4, p: float = 0.5):
        super().__init__(p=p)
        self.max_items = int(max_items)

    def get_params_dependent_on_data(self, params, data):
        height, width = params["shape"][:2]
        rng = self.py_random
        items = []
        for _ in range(rng.randint(1, self.max_items)):
            scale = rng.uniform(0.3, 1.2) * min(height, width) / 256
            items.append((rng.choice(_TEXTS), (rng.randint(0, max(0, width - 20)), rng.randint(12, height)),
                          scale, rng.choice((0.0, rng.uniform(0.75, 1.0))), max(1, round(2 * scale))))
        return {"items": items}

    def apply(self, img, items=(), **params):
        out = img.copy()
        full = 255 if img.dtype == np.uint8 else 1.0
        for text, origin, scale, level, thickness in items:
            ink = np.zeros(img.shape[:2], np.uint8)  # cv2.putText draws on 8-bit images only
            cv2.putText(ink, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_8)
            out[ink > 0] = level * full
        return out

    def get_transform_init_args_names(self):
        return ("max_items",)


def lever(name: str) -> list:
    """The albumentations transforms of one lever of :data:`cococxr.augment_names.LEVERS`."""
    if name == "exposure":
        return [A.RandomGamma(gamma_limit=(50, 180), p=0.5),
                A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=(-0.5, 0.3), p=0.5)]
    if name == "noise":
        return [A.GaussNoise(std_range=(0.02, 0.08), p=0.3)]
    if name == "blur":
        return [A.OneOf([A.GaussianBlur(blur_limit=(3, 5)),
                         A.Downscale(scale_range=(0.25, 0.5),
                                     interpolation_pair={"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR})],
                        p=0.3)]
    if name == "rotate":
        return [A.Affine(rotate=(-10, 10), border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.5)]
    if name == "zoom":
        return [A.Affine(scale=(0.8, 1.25), translate_percent=(-0.05, 0.05), border_mode=cv2.BORDER_CONSTANT,
                         fill=0, fill_mask=0, p=0.5)]
    if name == "letterbox":
        return [Letterbox(p=0.5)]
    if name == "text":
        return [BurnedInText(p=0.5)]
    raise ConfigError(f"unknown augmentation lever {name!r}; known: {', '.join(LEVERS)}")


def compose(spec: str) -> A.Compose:
    """The pipeline of ``PRESET[+LEVER...]`` or ``LEVER[+LEVER...]`` (e.g. ``light+letterbox+exposure``).

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    if "+" not in spec and spec not in LEVERS:
        return preset(spec)
    name, levers = augment_parts(spec)
    transforms = list(preset(name).transforms) if name else []
    for item in levers:
        transforms += lever(item)
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

    def __getstate__(self) -> dict:
        """Picklable (for worker processes): each thread's copy of the transform is made anew."""
        return {"transform": self.transform}

    def __setstate__(self, state: dict) -> None:
        self.transform = state["transform"]
        self._local = threading.local()


def build_augmenter(augment) -> Augmenter | None:
    """Turn the ``augment`` parameter of a Sequence into an :class:`Augmenter`.

    Args:
        augment: None, a preset name (``"light"``, ``"medium"``), a combination
            ``PRESET+LEVER...`` or ``LEVER+...`` (see :func:`compose`) or an albumentations
            transform.
    """
    if augment is None:
        return None
    if isinstance(augment, str):
        return Augmenter(compose(augment))
    return Augmenter(augment)


__all__ = ["PRESETS", "LEVERS", "Augmenter", "BurnedInText", "Letterbox", "build_augmenter", "compose",
           "lever", "preset"]
