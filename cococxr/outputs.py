"""Outputs that would overwrite an input are refused before any work starts.

Every command that writes files names its outputs and its inputs; an output that is an
input, lies inside an input folder, or is a folder holding an input, is refused after
resolving symbolic links (so a link to the input is caught too).
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence, Tuple, Union

from cococxr.errors import ConfigError

#: ``(label, path)``: what to call the path in an error (e.g. ``"--out"``) and the path.
Named = Tuple[str, Union[str, os.PathLike, None]]


class OutputOverlapError(ConfigError):
    """An output path is, is inside, or contains an input path."""


def _relation(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if inp in out.parents:
        return "is inside"
    if out in inp.parents:
        return "contains"
    return None


def check_outputs(outputs: Iterable[Named], inputs: Iterable[Named]) -> None:
    """Refuse any output that is, is inside, or contains an input (links resolved).

    Args:
        outputs: ``(label, path)`` of every file or folder the command will write; None
            paths are skipped.
        inputs: ``(label, path)`` of every file or folder it reads; None paths are skipped.

    Raises:
        OutputOverlapError: naming both paths as given and where they resolve to.
    """
    resolved = [(label, p, Path(p).resolve()) for label, p in inputs if p is not None and str(p) != ""]
    for out_label, out_path in outputs:
        if out_path is None or str(out_path) == "":
            continue
        out = Path(out_path).resolve()
        for in_label, in_path, inp in resolved:
            relation = _relation(out, inp)
            if relation:
                linked = (out, inp) != (Path(out_path).absolute(), Path(in_path).absolute())
                where = f" (resolved: {out} and {inp})" if linked else ""
                raise OutputOverlapError(
                    f"{out_label} {out_path} {relation} the input {in_label} {in_path}{where}; writing there "
                    f"would overwrite the input: choose an output outside every input")


def check_outside_images(out_label: str, out_dir: str | os.PathLike, image_root: str | os.PathLike | None,
                         file_names: Sequence[str]) -> None:
    """Refuse an output folder that is the image root, holds it, or holds one of its images.

    An output folder elsewhere inside the image root (``root/masks`` beside ``root/images``)
    is allowed: it overwrites no image.

    Raises:
        OutputOverlapError: naming the output folder and the image root (or the image).
    """
    if image_root is None:
        return
    out, root = Path(out_dir).resolve(), Path(image_root).resolve()
    if out == root or out in root.parents:
        check_outputs([(out_label, out_dir)], [("image root", image_root)])
    if root not in out.parents:
        return
    inside = PurePosixPath(out.relative_to(root).as_posix())
    for name in file_names:
        if isinstance(name, str) and inside in PurePosixPath(name.replace("\\", "/")).parents:
            raise OutputOverlapError(f"{out_label} {out_dir} contains the input image {name!r} of the image "
                                     f"root {image_root}; writing there would overwrite it: choose another folder")


__all__ = ["OutputOverlapError", "check_outputs", "check_outside_images"]
