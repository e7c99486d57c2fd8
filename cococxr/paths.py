"""Path confinement: file names from datasets must stay inside their root folder."""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from cococxr.errors import UnsafePathError


def check_relative_name(name: str, where: str = "file_name") -> str:
    """Check that a dataset-relative file name cannot escape its root.

    Args:
        name: the name as stored in the dataset (POSIX or Windows separators).
        where: what to call it in the error (e.g. ``"images[3].file_name"``).

    Returns:
        The name unchanged.

    Raises:
        UnsafePathError: the name is empty, absolute, has a drive letter, a NUL byte,
            or a ``..`` component.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnsafePathError(f"{where}: expected a non-empty relative file name, got {name!r}")
    if "\x00" in name:
        raise UnsafePathError(f"{where}: file name {name!r} contains a NUL byte")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("/", "\\")):
        raise UnsafePathError(f"{where}: file name {name!r} is absolute; expected a path relative to the image root")
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafePathError(f"{where}: file name {name!r} contains '..' and would escape the image root")
    return name


def safe_join(root: str | os.PathLike, name: str, where: str = "file_name") -> Path:
    """Join ``root`` and a dataset-relative ``name``, refusing anything that escapes ``root``.

    Symbolic links inside ``root`` that point elsewhere are refused too.

    Raises:
        UnsafePathError: see :func:`check_relative_name`, or the resolved path leaves ``root``.
    """
    check_relative_name(name, where)
    root_resolved = Path(root).resolve()
    candidate = (root_resolved / name.replace("\\", "/")).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise UnsafePathError(f"{where}: {name!r} resolves to {candidate}, outside the image root {root_resolved}")
    return candidate


def check_inside(root: str | os.PathLike, path: str | os.PathLike, where: str = "") -> Path:
    """Refuse a file found under ``root`` that resolves outside it (a link leaving the root).

    The one link policy of cococxr: readers (``image_path``, validate, doctor, the
    Sequences) and the converters' folder walks all refuse such links.

    Returns:
        The resolved path.

    Raises:
        UnsafePathError: naming the link, where it points and the root.
    """
    root_resolved, resolved = Path(root).resolve(), Path(path).resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        prefix = f"{where}: " if where else ""
        raise UnsafePathError(f"{prefix}{path} is a link to {resolved}, outside the root {root_resolved}; "
                              f"links that leave the root are refused (copy the file in, or name the "
                              f"folder it points into as the root)")
    return resolved
