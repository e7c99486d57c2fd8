"""cococxr's documented exceptions.

Every error a user can trigger with bad input is one of these; each message names the
culprit (file, CSV row, image/annotation id or JSON path) and what was expected.
"""
from __future__ import annotations


class CococxrError(Exception):
    """Base class of every error cococxr raises on bad input."""


class CocoFormatError(CococxrError, ValueError):
    """A COCO file or dict is malformed.

    Attributes:
        issues: the validation issues (``cococxr.coco.ValidationIssue``) that caused it,
            when raised by validation.
    """

    def __init__(self, message: str, issues: list | None = None):
        super().__init__(message)
        self.issues = list(issues or [])


class UnsafePathError(CocoFormatError):
    """A file name escapes its root folder (``../``, absolute path, drive letter)."""


class RLEError(CococxrError, ValueError):
    """A run-length encoding is malformed; the message names the bad token."""


class ImageReadError(CococxrError, OSError):
    """An image, mask or DICOM file cannot be read or decoded; names the file."""


class ConversionError(CococxrError, ValueError):
    """A converter's input is inconsistent (missing mask, bad row, unknown value...)."""


class ConfigError(CococxrError, ValueError):
    """A parameter, config file or CLI option has an invalid value."""


class WeightsUnavailableError(CococxrError, RuntimeError):
    """Pretrained weights were requested but cannot be obtained (e.g. offline)."""


class MissingDependencyError(CococxrError, ImportError):
    """An optional dependency (torch, detectron2, streamlit...) is not installed."""


__all__ = [
    "CococxrError",
    "CocoFormatError",
    "UnsafePathError",
    "RLEError",
    "ImageReadError",
    "ConversionError",
    "ConfigError",
    "WeightsUnavailableError",
    "MissingDependencyError",
]
