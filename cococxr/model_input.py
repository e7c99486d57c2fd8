"""The model input: how a decoded image becomes what a model sees, from the model's recorded spec.

Every caller (the training Sequences, ``evaluate``, ``predict``, the classifier's lung
masker, Grad-CAM, the app) turns images into model input through :class:`ModelInput`,
in one order::

    decoded image -> gray (channels=1) -> equalise (at native size) -> resize to input size
      [-> times the lung mask -> equalise again]      classifiers trained on lungs only
      [-> joint augmentation]                         training only
      -> scale to 0..1 (or the backbone's preprocessing of 0..255) -> channels -> batch

Equalising before resizing matters: the histogram of the native film is what the
equalisation was tuned on, and resizing first changes it. No TensorFlow here.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from cococxr.errors import ConfigError
from cococxr.preprocess import apply_mask, clahe, equalize_hist, resize_image, to_gray

EQUALIZERS = {"hist": equalize_hist, "clahe": clahe}
#: What 1.0 is for each integer image type (float images are already in 0..1).
_DTYPE_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def input_size_pair(size) -> tuple[int, int]:
    """``(height, width)`` from an int or a pair of positive ints.

    Raises:
        ConfigError: anything else.
    """
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"input_size must be an int or (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise ConfigError(f"input_size must be positive, got {size!r}")
    return height, width


def preprocessing_function(preprocessing, channels: int) -> Callable | None:
    """The function applied to 0..255 float inputs: None, a callable, or a backbone's.

    Raises:
        ConfigError: an unknown backbone, or a backbone's preprocessing for one channel.
    """
    if preprocessing is None or callable(preprocessing):
        return preprocessing
    if not isinstance(preprocessing, str):
        raise ConfigError(f"preprocessing must be None, a backbone name or a callable, got {preprocessing!r}")
    if channels != 3:
        raise ConfigError(f"preprocessing={preprocessing!r} normalises RGB channels: use channels=3")
    from cococxr._tf import tf  # noqa: F401  # deferred: the tf-keras environment segmentation_models needs
    import segmentation_models as sm  # deferred: loads TensorFlow and its backbone zoo; needed only here

    try:
        return sm.get_preprocessing(preprocessing)
    except ValueError as exc:
        raise ConfigError(f"preprocessing: {exc}") from None


@dataclass(frozen=True)
class ModelInput:
    """What a model takes, and the one function that makes it from decoded images.

    Attributes:
        input_size: ``(height, width)`` (an int means a square).
        channels: 1 or 3 (a gray image is repeated into three channels).
        equalize: None, ``"hist"`` or ``"clahe"``, applied at the native size.
        preprocessing: None (inputs in 0..1), a segmentation_models backbone name (its
            ``get_preprocessing`` applied to 0..255 values) or a callable doing the same.

    Raises:
        ConfigError: an invalid value (named in the message).
    """

    input_size: tuple[int, int]
    channels: int = 3
    equalize: str | None = None
    preprocessing: str | Callable | None = None
    _function: Callable | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "input_size", input_size_pair(self.input_size))
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be one of [1, 3], got {self.channels!r}")
        if self.equalize not in (None, *EQUALIZERS):
            raise ConfigError(f"equalize must be one of {[None, *EQUALIZERS]}, got {self.equalize!r}")
        object.__setattr__(self, "_function", preprocessing_function(self.preprocessing, self.channels))

    # ------------------------------------------------------------------ per image
    def equalise(self, image: np.ndarray) -> np.ndarray:
        """The ``equalize`` method applied to ``image`` (unchanged when None)."""
        return EQUALIZERS[self.equalize](image) if self.equalize else image

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """A decoded image (any size, uint8/uint16) gray if asked, equalised, resized; unscaled."""
        if self.channels == 1 and image.ndim == 3:
            image = to_gray(image)
        return resize_image(self.equalise(image), self.input_size)

    def masked(self, prepared: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """A prepared image zeroed outside ``mask`` (same size, nonzero = keep), equalised again."""
        return self.equalise(apply_mask(prepared, mask))

    # ------------------------------------------------------------------ per batch
    def batch(self, images: Sequence[np.ndarray], *, preprocess: bool = True,
              out: np.ndarray | None = None) -> np.ndarray:
        """X: float32 ``(B, H, W, channels)`` in 0..1, or the preprocessing applied to 0..255.

        Args:
            images: prepared (and possibly augmented) images at ``input_size``: uint8,
                uint16, or float in 0..1; one channel or ``channels``.
            preprocess: apply ``preprocessing`` (False: always 0..1, e.g. for a masker).
            out: a float32 array of X's shape to fill and return (unless a preprocessing
                function makes a new one); saves a copy into shared memory.
        """
        preprocess = preprocess and self._function is not None
        shape = (len(images), *self.input_size, self.channels)
        if out is not None and (out.shape != shape or out.dtype != np.float32):
            raise ValueError(f"out must be float32 {shape}, got {out.dtype} {out.shape}")
        x = np.empty(shape, np.float32) if out is None else out
        for out, image in zip(x, images):
            if self.channels == 3 and (image.ndim == 2 or image.shape[2] == 1):
                # cv2 repeats the channel in one pass; numpy broadcasting to 3 is ~3x slower
                image = cv2.cvtColor(image.reshape(self.input_size), cv2.COLOR_GRAY2RGB)
            scale = np.float32((255 if preprocess else 1) / _DTYPE_MAX.get(image.dtype, 1))
            np.multiply(image.reshape(out.shape), scale, out=out)
        return np.asarray(self._function(x), dtype=np.float32) if preprocess else x

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Model input of decoded images: :meth:`prepare` each, then :meth:`batch`."""
        return self.batch([self.prepare(image) for image in images])

    def describe(self) -> dict:
        """The spec as JSON-able values (a callable preprocessing cannot be recorded)."""
        if callable(self.preprocessing):
            raise ConfigError("a callable preprocessing cannot be recorded in a model card; "
                              "use a backbone name")
        return {"input_size": list(self.input_size), "channels": self.channels,
                "equalize": self.equalize, "preprocessing": self.preprocessing}


__all__ = ["ModelInput", "EQUALIZERS", "input_size_pair", "preprocessing_function"]
