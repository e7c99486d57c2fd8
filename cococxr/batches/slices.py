"""2.5D: the neighbouring slices of each COCO image of a volume, for slice stacks.

A slice's volume and its place in it come from its image record:

- the volume converters (``convert nifti``, ``rtstruct``, ``dicom-seg``) write
  ``case_id`` (one volume per case, with ``series_uid`` and ``axis``) and ``slice_index``;
- the UW-Madison preset of ``convert rle-csv`` writes ``case``, ``day`` and ``slice``.

Other layouts name their keys: ``slice_keys=("patient", "series", "z")`` groups by every
key but the last and orders by the last one.
"""
from __future__ import annotations

from collections.abc import Sequence

from cococxr.coco import CocoDataset
from cococxr.errors import ConfigError

#: the key sets recognised without ``slice_keys``: (group keys, order key)
KNOWN_SLICE_KEYS = ((("case_id", "series_uid", "axis"), "slice_index"), (("case", "day"), "slice"))


def _keys_of(record: dict, slice_keys) -> tuple[tuple[str, ...], str] | None:
    """(group keys present, order key) of a record, or None when it has none of them."""
    if slice_keys is not None:
        return tuple(slice_keys[:-1]), slice_keys[-1]
    for group, order in KNOWN_SLICE_KEYS:
        if order in record and group[0] in record:
            return tuple(k for k in group if k in record), order
    return None


def _check_slice_keys(slice_keys) -> tuple[str, ...] | None:
    if slice_keys is None:
        return None
    if isinstance(slice_keys, str) or len(slice_keys) < 2 or not all(isinstance(k, str) for k in slice_keys):
        raise ConfigError(f"slice_keys must list at least two image-record keys (the volume's keys, then "
                          f"the slice order key), got {slice_keys!r}")
    return tuple(slice_keys)


def slice_neighbours(coco: CocoDataset, image_ids: Sequence, context: int, stride: int = 1,
                     slice_keys: Sequence[str] | None = None) -> dict:
    """For each of ``image_ids``, the ids of slices ``s - context*stride ... s + context*stride``.

    Neighbours are looked up among every image of ``coco`` (not only ``image_ids``, so
    a training subset still sees the slices next to its own). Beyond the first or last
    slice of a volume, the edge slice is repeated.

    Args:
        coco: the dataset.
        image_ids: the centre slices.
        context: slices on each side (``2 * context + 1`` in all).
        stride: step between stacked slices, in slice positions.
        slice_keys: image-record keys of the volume then of the slice order (default:
            see :data:`KNOWN_SLICE_KEYS`).

    Returns:
        ``{image_id: (id of slice s - context*stride, ..., id of s, ..., s + context*stride)}``.

    Raises:
        ConfigError: a record without the keys, two slices of a volume at one position,
            or a neighbour missing inside a volume (a gap in the slice positions).
    """
    for name, value, low in (("context", context, 1), ("stride", stride, 1)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    slice_keys = _check_slice_keys(slice_keys)
    volumes: dict[tuple, dict] = {}
    place: dict = {}
    for image_id, record in coco.imgs.items():
        keys = _keys_of(record, slice_keys)
        if keys is None or any(k not in record for k in (*keys[0], keys[1])):
            continue
        volume = tuple(str(record[k]) for k in keys[0])
        position = record[keys[1]]
        if isinstance(position, bool) or not isinstance(position, int):
            raise ConfigError(f"image id {image_id} ({record.get('file_name')}): slice position "
                              f"{keys[1]}={position!r} is not an integer")
        slices = volumes.setdefault(volume, {})
        if position in slices:
            raise ConfigError(f"image ids {slices[position]} and {image_id} are both slice {position} of "
                              f"volume {dict(zip(keys[0], volume))}: a stack needs one image per slice")
        slices[position] = image_id
        place[image_id] = (volume, position)
    neighbours = {}
    for image_id in image_ids:
        if image_id not in place:
            record = coco.imgs[image_id]
            wanted = (f"{list(slice_keys)}" if slice_keys else
                      " or ".join(f"{[*g, o]}" for g, o in KNOWN_SLICE_KEYS))
            raise ConfigError(f"context={context}: image id {image_id} ({record.get('file_name')}) does not "
                              f"say which volume and slice it is; its record needs the keys {wanted} "
                              "(written by convert nifti / rtstruct / dicom-seg and the uw-madison preset), "
                              "or pass slice_keys")
        volume, centre = place[image_id]
        slices = volumes[volume]
        low, high = min(slices), max(slices)
        stack = []
        for j in range(-context, context + 1):
            position = min(max(centre + j * stride, low), high)
            if position not in slices:
                raise ConfigError(f"image id {image_id}: slice {position} of its volume is not in "
                                  f"{coco.source} (the stack of slice {centre} needs it); keep every slice "
                                  "when converting (do not leave out empty slices)")
            stack.append(slices[position])
        neighbours[image_id] = tuple(stack)
    return neighbours


__all__ = ["KNOWN_SLICE_KEYS", "slice_neighbours"]
