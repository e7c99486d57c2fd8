"""COCO files: reading the JSON and resolving the image root."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cococxr.errors import CocoFormatError, UnsafePathError
from cococxr.paths import check_relative_name


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into a CocoFormatError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CocoFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected COCO JSON") from exc
    except OSError as exc:
        raise CocoFormatError(f"{path}: cannot read the COCO file: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CocoFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                              f"is the file truncated or corrupted?") from exc


def resolve_image_root(image_root: str | Path | None, data: dict, json_path: Path | None) -> Path | None:
    """Explicit root, else ``info["image_root"]`` (confined to the JSON's folder), else that folder.

    The root a file names for itself obeys the confinement of its ``file_name`` values:
    relative, without ``..``, and inside the file's folder once links are resolved. A dict
    (made by code, not read from a file) may name any root.

    Raises:
        UnsafePathError: the file's ``info.image_root`` is absolute or leaves its folder.
    """
    if image_root is not None:
        return Path(image_root)
    info = data.get("info")
    declared = info.get("image_root") if isinstance(info, dict) else None
    folder = json_path.parent if json_path is not None else None
    if isinstance(declared, str) and declared:
        if folder is None:
            return Path(declared)
        return _confined_root(declared, json_path)
    return folder


def _confined_root(declared: str, json_path: Path) -> Path:
    folder = json_path.parent
    hint = ("a COCO file may only name an image root inside its own folder; pass --image-root "
            "(image_root= in Python) to read images elsewhere")
    try:
        check_relative_name(declared, where="info.image_root")
    except UnsafePathError as exc:
        raise UnsafePathError(f"{json_path}: {exc}; {hint}") from None
    root, resolved = folder.resolve(), (folder / declared).resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafePathError(f"{json_path}: info.image_root {declared!r} resolves to {resolved}, outside the "
                              f"folder of the file {root}; {hint}")
    return folder / declared


def relative_root(image_root: Path, json_path: Path) -> str:
    """``image_root`` as stored in ``info``: relative to the JSON's folder when possible."""
    root, folder = Path(image_root).resolve(), json_path.resolve().parent
    try:
        return os.path.relpath(root, folder).replace(os.sep, "/")
    except ValueError:  # pragma: no cover - Windows, different drives
        return str(root)


__all__ = ["read_json", "resolve_image_root", "relative_root"]
