"""Read images, masks and DICOM files as numpy arrays; write PNGs atomically.

Formats are recognised by their content (signature bytes), not their suffix:
PNG (8/16-bit), JPEG, TIFF, BMP and DICOM. Colour arrays are always RGB, never BGR.
Every failure to read raises :class:`cococxr.errors.ImageReadError` naming the file
and what was wrong.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.valuerep import PersonName

from cococxr.atomic import atomic_write_bytes
from cococxr.errors import ConfigError, ImageReadError
from cococxr.exif import orientation as exif_orientation, orientation_problem

PathLike = str | os.PathLike

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
_DICOM_SUFFIXES = (".dcm", ".dicom")
_PNG_IEND = b"IEND\xaeB`\x82"
_JPEG_EOI = b"\xff\xd9"
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")

#: DICOM attributes copied (when present) into :attr:`DicomImage.tags`.
DICOM_TAGS = (
    "PatientID", "PatientSex", "PatientAge", "StudyInstanceUID", "SeriesInstanceUID",
    "SOPInstanceUID", "StudyDate", "Modality", "BodyPartExamined", "ViewPosition",
    "Manufacturer", "PhotometricInterpretation", "Rows", "Columns", "SamplesPerPixel",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "PixelSpacing",
    "ImagerPixelSpacing", "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth",
)


@dataclass(eq=False)
class DicomImage:
    """Decoded DICOM pixels and the common tags.

    Attributes:
        pixels: float32 ``(H, W)`` (or ``(H, W, 3)`` for colour) after the modality LUT
            (rescale slope/intercept), the VOI LUT or window (if requested) and
            MONOCHROME1 inversion: low values are dark.
        tags: JSON-safe dict of :data:`DICOM_TAGS` present in the file, plus
            ``TransferSyntaxUID``.
    """

    pixels: np.ndarray
    tags: dict = field(default_factory=dict)

    def to_uint8(self) -> np.ndarray:
        """Min-max scale the pixels to ``uint8`` 0..255 (a constant image gives 0)."""
        return _min_max_scale(self.pixels, 255).astype(np.uint8)

    def to_uint16(self) -> np.ndarray:
        """Min-max scale the pixels to ``uint16`` 0..65535 (a constant image gives 0)."""
        return _min_max_scale(self.pixels, 65535).astype(np.uint16)


def _min_max_scale(pixels: np.ndarray, top: int) -> np.ndarray:
    """Map ``pixels.min()..pixels.max()`` linearly onto ``0..top`` (float64, rounded)."""
    low, high = float(pixels.min()), float(pixels.max())
    if high <= low:
        return np.zeros(pixels.shape)
    return np.rint((pixels.astype(np.float64) - low) * (top / (high - low)))


# --------------------------------------------------------------------------- files


def _check_file(path: Path) -> None:
    """Raise ImageReadError unless ``path`` is an existing, non-empty regular file."""
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")


def _read_bytes(path: Path) -> bytes:
    """Return the file's bytes after :func:`_check_file`."""
    _check_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc})") from exc


def _sniff(data: bytes) -> str | None:
    """Return ``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"BMP"``, ``"DICOM"`` or None."""
    if data[128:132] == b"DICM":
        return "DICOM"
    return next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)


def is_dicom(path: PathLike) -> bool:
    """True if ``path`` ends in ``.dcm``/``.dicom`` or has the ``DICM`` marker at byte 128.

    Args:
        path: any file path; a missing or unreadable file gives False.
    """
    path = Path(path)
    if path.suffix.lower() in _DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            return _sniff(fh.read(132)) == "DICOM"
    except OSError:
        return False


def _check_complete(path: Path, data: bytes, fmt: str) -> None:
    """Raise ImageReadError if PNG/JPEG data is truncated.

    A PNG must contain its IEND chunk. A JPEG that does not end with the EOI marker
    (trailing bytes after it are allowed) is fully decoded by Pillow, which raises on
    missing data.
    """
    if fmt == "PNG" and _PNG_IEND not in data:
        raise ImageReadError(f"{path}: PNG file is truncated (no IEND chunk at the end)")
    if fmt == "JPEG" and not data.rstrip(b"\x00\r\n ").endswith(_JPEG_EOI):
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageReadError(f"{path}: JPEG file is truncated or corrupt ({exc})") from exc


def _load_raster(path: Path) -> tuple[bytes, str]:
    """Read a non-DICOM image file; return its bytes and format after sanity checks."""
    data = _read_bytes(path)
    fmt = _sniff(data)
    if fmt is None:
        raise ImageReadError(
            f"{path}: not a supported image: the content has no PNG, JPEG, TIFF, BMP or "
            f"DICOM signature ({len(data)} bytes; its contents are never printed)")
    if fmt == "DICOM":
        raise ImageReadError(f"{path}: is a DICOM file; read it with read_dicom/read_image")
    _check_complete(path, data, fmt)
    _check_pixel_count(path, data)
    return data, fmt


def _check_pixel_count(path: Path, data: bytes) -> None:
    """Refuse a header declaring more pixels than Pillow's decompression-bomb limit.

    OpenCV allocates the declared size before decoding, so a few kilobytes could claim
    gigabytes. The limit is ``2 * PIL.Image.MAX_IMAGE_PIXELS`` (about 179 M pixels). Also
    refuses an EXIF orientation other than 1 (:func:`_check_orientation`).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            orientation = exif_orientation(image)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: {exc} (raise PIL.Image.MAX_IMAGE_PIXELS to allow it)") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return  # left to OpenCV, whose failure names the file
    _check_orientation(path, orientation)


def _check_orientation(path: Path, orientation: int) -> None:
    """Refuse an EXIF orientation other than 1: pixels are read as stored, never rotated."""
    if orientation_problem(path, orientation):
        raise ImageReadError(orientation_problem(path, orientation))


def _decode(path: Path, data: bytes, fmt: str) -> np.ndarray:
    """Decode with OpenCV (dtype kept) into ``(H, W)``, RGB ``(H, W, 3)`` or RGBA."""
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. a header size over OpenCV's limits
        raise ImageReadError(f"{path}: {fmt} data could not be decoded ({str(exc).strip()})") from exc
    if array is None:
        raise ImageReadError(f"{path}: {fmt} data could not be decoded (corrupt file?)")
    if array.ndim == 3 and array.shape[2] == 1:
        return array[:, :, 0]
    if array.ndim == 2:
        return array
    if array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    if array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    raise ImageReadError(f"{path}: unsupported channel count {array.shape[2]} (expected 1, 3 or 4)")


# --------------------------------------------------------------------------- images


def read_image(path: PathLike, *, dicom_bits: int = 8) -> np.ndarray:
    """Read an image file as an array, keeping its bit depth.

    Args:
        path: PNG, JPEG, TIFF, BMP or DICOM file (recognised by content; DICOM also by
            a ``.dcm``/``.dicom`` suffix).
        dicom_bits: 8 or 16: DICOM pixels go through :func:`read_dicom` and come back
            as ``DicomImage.to_uint8()`` (default) or ``to_uint16()``.

    Returns:
        uint8 or uint16 array, ``(H, W)`` for grayscale or ``(H, W, 3)`` RGB; an alpha
        channel is dropped. Grayscale-looking RGB files stay RGB.

    Raises:
        ImageReadError: missing, empty, truncated, corrupt or unsupported file, or a
            pixel type other than 8/16-bit unsigned.
        ConfigError: ``dicom_bits`` is not 8 or 16.
    """
    if dicom_bits not in (8, 16):
        raise ConfigError(f"dicom_bits must be 8 or 16, got {dicom_bits!r}")
    path = Path(path)
    if is_dicom(path):
        image = read_dicom(path)
        return image.to_uint8() if dicom_bits == 8 else image.to_uint16()
    array = _decode(path, *_load_raster(path))
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: unsupported pixel type {array.dtype} (expected 8- or 16-bit unsigned)")
    return array[:, :, :3] if array.ndim == 3 else array


def read_mask(path: PathLike) -> np.ndarray:
    """Read a mask file with its raw values (no thresholding, no rescaling).

    Args:
        path: PNG, TIFF, BMP or JPEG mask (JPEG values are lossy: threshold them).

    Returns:
        Integer array ``(H, W)`` (palette images give palette indices; 16-bit masks
        stay uint16) or ``(H, W, 3)`` RGB (an RGBA mask with constant alpha loses it).

    Raises:
        ImageReadError: unreadable file, non-integer values, or an RGBA mask whose alpha
            varies (which of colour or alpha would be the mask is ambiguous).
    """
    path = Path(path)
    data, fmt = _load_raster(path)
    palette = _palette_indices(path, data)
    if palette is not None:
        return palette
    array = _decode(path, data, fmt)
    if not np.issubdtype(array.dtype, np.integer):
        raise ImageReadError(f"{path}: mask pixel type {array.dtype} is not an integer type")
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[:, :, 3]
        if alpha.min() != alpha.max():
            raise ImageReadError(
                f"{path}: RGBA mask with varying alpha ({alpha.min()}..{alpha.max()}); expected "
                "a grayscale, palette or RGB mask (or RGBA with constant alpha)")
        return array[:, :, :3]
    return array


def _palette_indices(path: Path, data: bytes) -> np.ndarray | None:
    """Palette indices ``(H, W)`` uint8 if the image is a palette ("P") image, else None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.array(image) if image.mode == "P" else None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot read palette image ({exc})") from exc


def image_size(path: PathLike) -> tuple[int, int]:
    """Return ``(height, width)`` reading only the header.

    Args:
        path: any format :func:`read_image` reads. DICOM: Rows/Columns without the pixel
            data; others: Pillow's lazy open (truncation is not detected).

    Raises:
        ImageReadError: missing, empty or unrecognised file.
    """
    path = Path(path)
    if is_dicom(path):
        ds = _dcmread(path, stop_before_pixels=True)
        if "Rows" not in ds or "Columns" not in ds:
            raise ImageReadError(f"{path}: DICOM has no Rows/Columns tags")
        return int(ds.Rows), int(ds.Columns)
    _check_file(path)
    try:
        with Image.open(path) as image:
            (width, height), orientation = image.size, exif_orientation(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{path}: cannot read the image header ({exc})") from exc
    _check_orientation(path, orientation)
    return height, width


def write_png(path: PathLike, array: np.ndarray) -> None:
    """Write a PNG atomically (temporary file, then rename).

    Args:
        path: target file; parent folders are created.
        array: uint8 or uint16, ``(H, W)``, ``(H, W, 1)``, RGB ``(H, W, 3)`` or RGBA
            ``(H, W, 4)``. Values are written exactly (PNG is lossless).

    Raises:
        ConfigError: unsupported dtype or shape.
    """
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ConfigError(f"write_png({path}): dtype {array.dtype} not supported; use uint8 or uint16")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
        raise ConfigError(
            f"write_png({path}): shape {array.shape} not supported; expected (H, W) or (H, W, 1|3|4)")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise RuntimeError(f"write_png({path}): OpenCV failed to encode the PNG")
    atomic_write_bytes(path, buffer.tobytes())


def to_float01(image: np.ndarray, *, scale: str = "dtype") -> np.ndarray:
    """Convert an image to float32 in [0, 1].

    Args:
        image: uint8, uint16 or bool array (any shape); float arrays are only cast.
        scale: ``"dtype"`` divides uint8 by 255 and uint16 by 65535; ``"max"`` divides
            by the image's own maximum (for 12- or 15-bit data stored in uint16; an
            all-zero image stays 0).

    Returns:
        float32 array of the same shape.

    Raises:
        ConfigError: unknown ``scale`` or unsupported dtype.
    """
    image = np.asarray(image)
    if scale not in ("dtype", "max"):
        raise ConfigError(f"scale must be 'dtype' or 'max', got {scale!r}")
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    if image.dtype not in (np.uint8, np.uint16, np.bool_):
        raise ConfigError(f"to_float01: dtype {image.dtype} not supported (uint8, uint16, bool, float)")
    if scale == "max":
        top = float(image.max()) if image.size else 0.0
    else:
        top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
    if top == 0:
        return np.zeros(image.shape, np.float32)
    return image.astype(np.float32) / np.float32(top)


# --------------------------------------------------------------------------- DICOM


def _dcmread(path: Path, *, stop_before_pixels: bool = False) -> pydicom.Dataset:
    """Read a DICOM dataset; files without preamble are accepted if they look like DICOM."""
    _check_file(path)
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass
    except Exception as exc:  # pydicom raises many types on corrupt files
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc})") from exc
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
    except Exception as exc:
        raise ImageReadError(f"{path}: not a DICOM file ({exc})") from exc
    if "SOPClassUID" not in ds and "Rows" not in ds:
        raise ImageReadError(f"{path}: not a DICOM file (no 'DICM' marker and no DICOM tags)")
    return ds


def _transfer_syntax(ds: pydicom.Dataset) -> str:
    """Describe the transfer syntax as ``"<uid> (<name>)"`` for error messages."""
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None:
        return "(missing Transfer Syntax UID)"
    name = uid.name if uid.name != str(uid) else "unknown"
    return f"{uid} ({name})"


def _json_value(value):
    """Convert a pydicom element value to a JSON-safe value (None if not representable)."""
    if isinstance(value, (MultiValue, list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (str, PersonName)):
        return str(value)
    return None


def dicom_tags(ds: pydicom.Dataset) -> dict:
    """Return the JSON-safe :data:`DICOM_TAGS` present in ``ds`` plus ``TransferSyntaxUID``.

    Args:
        ds: a pydicom dataset (pixel data not needed).

    Returns:
        dict keyword -> str, int, float or list; empty or binary values are left out.
    """
    tags = {}
    for keyword in DICOM_TAGS:
        value = _json_value(ds.get(keyword)) if keyword in ds else None
        if value not in (None, "", []):
            tags[keyword] = value
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid:
        tags["TransferSyntaxUID"] = str(uid)
    return tags


def read_dicom_tags(path: PathLike) -> dict:
    """Read only the header of a DICOM file and return :func:`dicom_tags` of it.

    Raises:
        ImageReadError: missing, empty or non-DICOM file.
    """
    return dicom_tags(_dcmread(Path(path), stop_before_pixels=True))


def _decode_dicom_pixels(path: Path, ds: pydicom.Dataset) -> np.ndarray:
    """Return ``ds.pixel_array`` for a single-frame file, or raise ImageReadError."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError(f"{path}: DICOM file has no pixel data (transfer syntax {_transfer_syntax(ds)})")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise ImageReadError(
            f"{path}: multi-frame DICOM ({frames} frames) is not supported; expected one image")
    try:
        return ds.pixel_array
    except Exception as exc:  # NotImplementedError, ValueError, RuntimeError from plugins
        raise ImageReadError(
            f"{path}: cannot decode pixel data with transfer syntax {_transfer_syntax(ds)}: {exc}") from exc


def read_dicom(path: PathLike, *, apply_voi: bool = True) -> DicomImage:
    """Read a DICOM file as display-ready float32 pixels plus common tags.

    Applies, in the order of the DICOM standard: the modality LUT (rescale
    slope/intercept), the VOI LUT or window center/width when ``apply_voi`` (grayscale
    only), then MONOCHROME1 inversion (``max + min - x``) so that low values are dark.

    Args:
        path: the DICOM file.
        apply_voi: apply the VOI LUT / windowing stored in the file (first one if
            several).

    Returns:
        DicomImage with float32 ``pixels`` ``(H, W)`` or ``(H, W, 3)`` and ``tags``.

    Raises:
        ImageReadError: missing/empty/non-DICOM file, no pixel data, multi-frame, or a
            transfer syntax no installed decoder supports (named in the message).
    """
    path = Path(path)
    ds = _dcmread(path)
    pixels = _decode_dicom_pixels(path, ds)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric in _MONOCHROME:
        try:
            pixels = apply_modality_lut(pixels, ds)
            pixels = apply_voi_lut(pixels, ds) if apply_voi else pixels
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ImageReadError(f"{path}: invalid rescale/VOI LUT/window tags ({exc})") from exc
    pixels = np.asarray(pixels, dtype=np.float32)
    if photometric == "MONOCHROME1":
        pixels = pixels.max() + pixels.min() - pixels
    return DicomImage(pixels=pixels, tags=dicom_tags(ds))


__all__ = [
    "DICOM_TAGS",
    "DicomImage",
    "dicom_tags",
    "image_size",
    "is_dicom",
    "read_dicom",
    "read_dicom_tags",
    "read_image",
    "read_mask",
    "to_float01",
    "write_png",
]
