"""Store files uploaded through the app: size-limited, type-checked, in a private temp folder.

An upload's name and bytes come from a browser, so neither is trusted: the size is
checked before anything is written, the type is decided by the content (PNG, JPEG or
DICOM signature, never the suffix), and the name is reduced to a safe base name that
cannot leave the folder it is written to.
"""
from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

from cococxr.errors import ConfigError, ImageReadError
from cococxr.io import _sniff

#: Default upper limit of an upload, in bytes (20 MB).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Detected type -> suffix of the stored file.
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "DICOM": ".dcm"}
_UNSAFE = re.compile(r"[^\w.-]+")
_MAX_STEM = 100


def safe_upload_name(filename: str, suffix: str) -> str:
    """A file name safe to create in a folder: base name only, no separators or control characters.

    Args:
        filename: the name the browser sent (may hold ``../``, ``\\``, NUL, anything).
        suffix: the suffix to give it (from the detected type).

    Returns:
        ``<stem><suffix>``; the stem keeps letters, digits, ``_ . -`` (other runs become
        ``_``), has no leading dots and at most 100 characters; ``"upload"`` if nothing is left.
    """
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", filename))[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    stem = _UNSAFE.sub("_", stem).lstrip(".")[:_MAX_STEM].strip("_") or "upload"
    return stem + suffix


def detect_upload_type(data: bytes, filename: str) -> str:
    """Return ``"PNG"``, ``"JPEG"`` or ``"DICOM"`` from the content.

    Raises:
        ImageReadError: empty data, or any other content (names the file and its size, never its contents).
    """
    if not data:
        raise ImageReadError(f"upload {filename!r}: the file is empty (0 bytes)")
    kind = _sniff(data[:132])
    if kind not in SUFFIXES:
        raise ImageReadError(f"upload {filename!r}: not a PNG, JPEG or DICOM file by its content "
                             f"({len(data)} bytes); the file name's suffix is not trusted")
    return kind


def save_upload(data: bytes, filename: str, max_bytes: int = MAX_UPLOAD_BYTES,
                tmp_dir: str | os.PathLike | None = None) -> Path:
    """Check an uploaded file and write it into a new private temporary folder.

    Args:
        data: the uploaded bytes.
        filename: the name the client gave (only used, sanitised, for the stored name).
        max_bytes: refuse uploads larger than this.
        tmp_dir: where to create the private folder (default: the system temp folder).

    Returns:
        Path of the stored file, inside a fresh folder (mode 0700) created under
        ``tmp_dir``; its suffix follows the detected type.

    Raises:
        ConfigError: ``data`` is not bytes, ``filename`` not a string, or the upload is
            larger than ``max_bytes`` (the limit is stated).
        ImageReadError: the content is not PNG, JPEG or DICOM.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ConfigError(f"save_upload: data must be bytes, got {type(data).__name__}")
    if not isinstance(filename, str):
        raise ConfigError(f"save_upload: filename must be a string, got {type(filename).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ConfigError(f"upload {filename!r} is {len(data):,} bytes; the limit is {max_bytes:,} bytes "
                          f"({max_bytes / 1024 / 1024:g} MB)")
    kind = detect_upload_type(data, filename)
    folder = Path(tempfile.mkdtemp(prefix="cococxr-upload-", dir=tmp_dir))
    path = folder / safe_upload_name(filename, SUFFIXES[kind])
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


__all__ = ["MAX_UPLOAD_BYTES", "detect_upload_type", "safe_upload_name", "save_upload"]
