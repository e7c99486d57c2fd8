"""Image preprocessing for the Sequences: contrast, colour layout, resizing, scaling, masking.

Every function takes and returns numpy arrays: images are ``(H, W)`` grayscale or
``(H, W, C)`` (RGB when C is 3), masks ``(H, W)`` or ``(H, W, K)``. Sizes are
``(height, width)``. Masks are only ever resized with nearest neighbour.
"""
from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

from cococxr.errors import ConfigError
from cococxr.io import to_float01

#: ImageNet channel statistics (RGB, for images scaled to [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}
_MASK_DTYPES = (np.bool_, np.uint8, np.uint16, np.int16, np.int32, np.float32)


def _per_channel(func: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    """Apply a 2-D function to ``(H, W)`` or to each channel of ``(H, W, C)``."""
    if image.ndim == 2:
        return func(image)
    if image.ndim == 3:
        return np.stack([func(np.ascontiguousarray(image[:, :, c])) for c in range(image.shape[2])], axis=2)
    raise ConfigError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")


def _check_integer_image(image: np.ndarray, what: str) -> None:
    """Raise ConfigError unless ``image`` is uint8 or uint16."""
    if image.dtype not in (np.uint8, np.uint16):
        raise ConfigError(f"{what}: expected a uint8 or uint16 image, got {image.dtype}")


def _check_size(size: Sequence[int], what: str = "size") -> tuple[int, int]:
    """Validate a pair of positive ints such as ``(height, width)``; ``what`` names it in errors."""
    try:
        first, second = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a pair of ints, got {size!r}") from None
    if first <= 0 or second <= 0:
        raise ConfigError(f"{what} must be positive, got {size!r}")
    return first, second


def _equalize_lut(channel: np.ndarray, levels: int) -> np.ndarray:
    """Histogram equalisation of one channel, computed exactly as ``cv2.equalizeHist``.

    The first occupied level maps to 0, the others to
    ``round((cdf - hist[first]) * (levels - 1) / (N - hist[first]))`` in float32;
    a constant image is returned unchanged.
    """
    hist = np.bincount(channel.ravel(), minlength=levels)
    first = int(np.flatnonzero(hist)[0])
    if hist[first] == channel.size:
        return channel.copy()
    scale = np.float32(levels - 1) / np.float32(channel.size - hist[first])
    cdf = (np.cumsum(hist) - hist[first]).astype(np.float32)
    lut = np.clip(np.rint(cdf * scale), 0, levels - 1).astype(channel.dtype)
    return lut[channel]


def equalize_hist(image: np.ndarray) -> np.ndarray:
    """Global histogram equalisation.

    Args:
        image: uint8 or uint16, ``(H, W)`` or ``(H, W, C)`` (each channel separately).

    Returns:
        Same dtype and shape. uint8 uses ``cv2.equalizeHist``; uint16 uses the same
        algorithm over 65536 levels.
    """
    _check_integer_image(image, "equalize_hist")
    if image.dtype == np.uint8:
        return _per_channel(cv2.equalizeHist, image)
    return _per_channel(lambda channel: _equalize_lut(channel, 65536), image)


def clahe(image: np.ndarray, clip_limit: float = 2.0,
          tile_grid_size: tuple[int, int] = (8, 8)) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV).

    Args:
        image: uint8 or uint16, ``(H, W)`` or ``(H, W, C)`` (each channel separately).
        clip_limit: contrast limit per tile (OpenCV's ``clipLimit``).
        tile_grid_size: number of tiles as ``(rows, columns)``.

    Returns:
        Same dtype and shape.
    """
    _check_integer_image(image, "clahe")
    rows, cols = _check_size(tile_grid_size, "tile_grid_size")
    operator = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(cols, rows))
    return _per_channel(operator.apply, image)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Convert to one channel.

    Args:
        image: ``(H, W)`` (returned as is), ``(H, W, 1)``, RGB ``(H, W, 3)`` or RGBA
            ``(H, W, 4)``; uint8, uint16 or float32 for colour input.

    Returns:
        ``(H, W)`` of the same dtype (ITU-R BT.601 luma for colour input).
    """
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_RGB2GRAY if image.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
        return cv2.cvtColor(image, code)
    raise ConfigError(f"to_gray: expected (H, W) or (H, W, 1|3|4), got shape {image.shape}")


def gray_to_rgb(image: np.ndarray) -> np.ndarray:
    """Repeat a grayscale image into three identical channels.

    Args:
        image: ``(H, W)`` or ``(H, W, 1)`` of any dtype; ``(H, W, 3)`` is returned as is.

    Returns:
        ``(H, W, 3)`` of the same dtype.
    """
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2:
        raise ConfigError(f"gray_to_rgb: expected (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
    return np.repeat(image[:, :, None], 3, axis=2)


def _resize(array: np.ndarray, size: Sequence[int], flag: int) -> np.ndarray:
    """``cv2.resize`` to ``(height, width)`` keeping a trailing channel axis of size 1."""
    height, width = _check_size(size)
    out = cv2.resize(array, (width, height), interpolation=flag)
    return out[:, :, None] if array.ndim == 3 and out.ndim == 2 else out


def resize_image(image: np.ndarray, size: Sequence[int], interpolation: str = "auto") -> np.ndarray:
    """Resize an image (not a mask: see :func:`resize_mask`).

    Args:
        image: uint8, uint16 or float32, ``(H, W)`` or ``(H, W, C)``.
        size: target ``(height, width)``.
        interpolation: ``"area"``, ``"linear"`` or ``"auto"`` (area when shrinking
            both sides, linear otherwise).

    Returns:
        ``(height, width)`` or ``(height, width, C)`` of the same dtype.
    """
    height, width = _check_size(size)
    if interpolation == "auto":
        shrinking = height <= image.shape[0] and width <= image.shape[1]
        interpolation = "area" if shrinking else "linear"
    if interpolation not in _INTERPOLATIONS:
        raise ConfigError(f"interpolation must be 'auto', 'area' or 'linear', got {interpolation!r}")
    return _resize(image, (height, width), _INTERPOLATIONS[interpolation])


def resize_mask(mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize a mask or label map with nearest neighbour (never creates new values).

    Uses ``cv2.INTER_NEAREST_EXACT`` (pixel-centre aligned, like :func:`resize_image`).

    Args:
        mask: bool, uint8, uint16, int16, int32 or float32, ``(H, W)`` or ``(H, W, K)``.
        size: target ``(height, width)``.

    Returns:
        Same dtype, ``(height, width)`` or ``(height, width, K)``.
    """
    if mask.dtype not in _MASK_DTYPES:
        raise ConfigError(
            f"resize_mask: dtype {mask.dtype} not supported; use bool, uint8, uint16, int16, int32 or float32")
    if mask.dtype == np.bool_:
        return _resize(mask.view(np.uint8), size, cv2.INTER_NEAREST_EXACT).astype(bool)
    return _resize(mask, size, cv2.INTER_NEAREST_EXACT)


def pad_to_square(image: np.ndarray, value: float = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the shorter side (evenly, extra pixel at the end) to make the array square.

    Works for images and masks alike; follow with :func:`resize_image` or
    :func:`resize_mask` to letterbox.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` of any dtype.
        value: fill value.

    Returns:
        ``(padded, (top, left))``: the square array and the offset of the original.
    """
    height, width = image.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    pad = [(top, side - height - top), (left, side - width - left)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, constant_values=value), (top, left)


def minmax_scale(image: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the image's own minimum and maximum.

    Args:
        image: any numeric array.

    Returns:
        float32, same shape; a constant image gives zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    low, high = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
    if high <= low:
        return np.zeros_like(image)
    return (image - np.float32(low)) / np.float32(high - low)


def standardize(image: np.ndarray, mean: Sequence[float] | float | None = None,
                std: Sequence[float] | float | None = None) -> np.ndarray:
    """Subtract a mean and divide by a standard deviation.

    Args:
        image: uint8/uint16 (first scaled to [0, 1] by :func:`cococxr.io.to_float01`)
            or float, ``(H, W)`` or ``(H, W, C)``.
        mean: per-channel means (or one value) on the [0, 1] scale, e.g.
            :data:`IMAGENET_MEAN`; None with ``std`` None uses the image's own mean/std.
        std: per-channel standard deviations (or one value).

    Returns:
        float32, same shape.
    """
    image = to_float01(image)
    if (mean is None) != (std is None):
        raise ConfigError("standardize: give both mean and std, or neither")
    if mean is None:
        mean, std = float(image.mean()), float(image.std()) or 1.0
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if np.any(std == 0):
        raise ConfigError(f"standardize: std must be non-zero, got {std.tolist()}")
    return (image - mean) / std


def apply_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero the pixels outside a mask (e.g. keep the lungs only).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` of any dtype.
        mask: ``(H, W)`` or ``(H, W, 1)``, 0/1 (any non-zero value keeps the pixel).

    Returns:
        ``image * mask`` with the image's dtype and shape.
    """
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.shape != image.shape[:2]:
        raise ConfigError(f"apply_mask: mask shape {mask.shape} does not match image shape {image.shape}")
    keep = mask.astype(bool)
    return image * (keep[:, :, None] if image.ndim == 3 else keep).astype(image.dtype)


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "apply_mask",
    "clahe",
    "equalize_hist",
    "gray_to_rgb",
    "minmax_scale",
    "pad_to_square",
    "resize_image",
    "resize_mask",
    "standardize",
    "to_gray",
]
