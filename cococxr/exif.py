"""EXIF orientation, read from an opened image's header without decoding its pixels.

cococxr never rotates pixels by their EXIF tag (OpenCV reads them as stored), so an image
or mask whose orientation is not 1 is refused: the stored pixels and what a viewer shows
differ, and a mask and its image could disagree.
"""
from __future__ import annotations

from PIL import Image

ORIENTATION_TAG = 0x0112


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 when absent or unreadable), from the header only.

    ``Image.getexif()`` decodes a whole PNG to find a late eXIf chunk; this reads TIFF tags
    and the ``exif`` block Pillow found while opening (JPEG APP1, a PNG eXIf before IDAT).
    """
    tags = getattr(image, "tag_v2", None)
    if tags is not None:
        return int(tags.get(ORIENTATION_TAG, 1) or 1)
    raw = image.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    try:
        exif.load(raw)
        return int(exif.get(ORIENTATION_TAG, 1) or 1)
    except Exception:  # noqa: BLE001 - a corrupt EXIF block does not make the pixels unreadable
        return 1


def orientation_problem(path, value: int) -> str | None:
    """The message refusing orientation ``value`` of the file ``path``, or None for 1."""
    if value == 1:
        return None
    return (f"{path} has EXIF orientation {value}: the pixels are read as stored, not as the rotated picture a "
            "viewer shows, so a mask and its image could disagree; rotate the pixels and drop the tag "
            "(e.g. PIL.ImageOps.exif_transpose)")


__all__ = ["ORIENTATION_TAG", "orientation", "orientation_problem"]
