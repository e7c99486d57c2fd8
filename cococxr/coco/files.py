"""COCO files: reading the JSON and resolving the image root."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
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
    duplicates: list[tuple[str, dict]] = []
    try:
        data = json.loads(text, object_pairs_hook=_recording_duplicates(duplicates))
    except json.JSONDecodeError as exc:
        raise CocoFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                              f"is the file truncated or corrupted?") from exc
    except RecursionError:
        raise CocoFormatError(f"{path}: JSON nested too deeply to read (more than about "
                              f"{sys.getrecursionlimit()} levels); a COCO file needs a few levels") from None
    if duplicates:
        key, record = duplicates[0]
        raise CocoFormatError(f"{path}: the key {key!r} appears more than once in {_where(record, data)}; "
                              f"JSON readers keep only one of them (which one differs between tools), so "
                              f"remove or rename the duplicate ({len(duplicates)} duplicated key(s) in all)")
    return data


def _recording_duplicates(found: list) -> Callable[[list], dict]:
    """An ``object_pairs_hook`` that builds dicts and records each key seen twice in one object."""
    def hook(pairs: list) -> dict:
        record = dict(pairs)
        if len(record) != len(pairs):
            seen: set = set()
            found.extend((key, record) for key, _ in pairs if key in seen or seen.add(key))
        return record
    return hook


def _where(record: dict, data: Any) -> str:
    """Name the object holding a duplicated key: the top level, or a record by its id."""
    if record is data:
        return "the top-level object"
    if "id" in record and not isinstance(record["id"], (dict, list)):
        return f"the object with id {record['id']!r}"
    return f"an object with keys {sorted(map(str, record))[:6]}"


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
