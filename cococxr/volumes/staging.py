"""All-or-nothing folder writes: files go to a hidden staging folder, moved into place at the end.

A conversion that fails half-way (a truncated volume, a contour on no slice with
``strict``) leaves the target folder as it was: the staging folder is removed.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


class StagedFolder:
    """Stage files for ``target`` and move them in only on :meth:`commit`.

    Use as a context manager: leaving the block with an exception discards the staged
    files; leaving it normally without a commit discards them too.

    Example:
        >>> with StagedFolder(out_images) as staged:  # doctest: +SKIP
        ...     write_png(staged.path("case1/axial_0000.png"), pixels)
        ...     staged.commit()
    """

    def __init__(self, target: str | os.PathLike):
        """Plan a staging folder beside ``target`` (same file system, so moves are renames)."""
        self.target = Path(target).resolve()
        self.root = self.target.parent / f".{self.target.name}.staging-{uuid.uuid4().hex[:12]}"
        self.committed = 0

    def __enter__(self) -> "StagedFolder":
        self.root.mkdir(parents=True)
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    def path(self, relative: str) -> Path:
        """Where to write the file that will become ``target / relative``."""
        return self.root / relative

    def commit(self) -> int:
        """Move every staged file into the target (replacing files of the same name); return the count."""
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            final = self.target / path.relative_to(self.root)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)
            self.committed += 1
        self.discard()
        return self.committed

    def discard(self) -> None:
        """Remove the staging folder and whatever is still in it."""
        shutil.rmtree(self.root, ignore_errors=True)


__all__ = ["StagedFolder"]
