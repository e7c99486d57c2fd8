"""Output classes of a classifier from image-level labels: the class spec and its resolution.

A *class spec* is one line of text (``--classes``) naming the output classes and the
image-level label categories each one merges:

* ``"COVID-19,No Finding"``: two classes, one category each;
* ``"COVID=COVID-19,COVID-19, ARDS;other=*"``: ``;`` separates classes, ``name=`` names
  one, ``,`` separates its member categories. Category names may contain commas
  (``COVID-19, ARDS``): the longest run of comma-separated pieces that is a category
  of the file wins. ``*``, ``?`` and ``[...]`` are globs (``COVID=COVID-19*``); a glob
  only takes categories that no explicit name and no earlier class has taken, so
  ``other=*`` means "every other label";
* with ``one_vs_rest``, a spec naming one class gets a second class ``not <name>`` = ``*``.

Specs are resolved against each COCO file's label categories (categories used by
annotations without geometry, or with supercategory ``finding``), so the same spec works
for a test file holding findings that the training file did not. No TensorFlow here.
"""
from __future__ import annotations

import fnmatch

from cococxr.coco import CocoDataset
from cococxr.errors import ConfigError

_GLOB_CHARS = "*?["


def one_vs_rest_spec(spec: str) -> str:
    """``"X"`` -> ``"X=X;not X=*"``; ``"P=a,b"`` -> ``"P=a,b;not P=*"`` (one class only)."""
    parts = [p for p in spec.split(";") if p.strip()]
    if len(parts) != 1:
        raise ConfigError(f"one_vs_rest needs a class spec naming one class, got {spec!r}")
    name = parts[0].split("=", 1)[0].strip() if "=" in parts[0] else parts[0].strip()
    members = parts[0].split("=", 1)[1] if "=" in parts[0] else parts[0]
    return f"{name}={members.strip()};not {name}=*"


def label_categories(coco: CocoDataset) -> list[str]:
    """Names of the categories used as image-level labels (file order)."""
    used = {a.get("category_id") for a in coco.anns.values() if "segmentation" not in a and "bbox" not in a}
    return [cat["name"] for cat_id, cat in coco.cats.items()
            if cat_id in used or cat.get("supercategory") == "finding"]


def _split_names(text: str, known: set[str]) -> list[str]:
    """Comma-separated names, joining pieces back when their join is a known name (longest first)."""
    tokens = text.split(",")
    names, i = [], 0
    while i < len(tokens):
        for j in range(len(tokens), i, -1):
            candidate = ",".join(tokens[i:j]).strip()
            if candidate in known:
                break
        else:
            j, candidate = i + 1, tokens[i].strip()
        if candidate:
            names.append(candidate)
        i = j
    return names


def _parse(spec: str, known: set[str]) -> list[tuple[str, list[str]]]:
    """``[(class name, [member names or globs])]`` in spec order."""
    entries = []
    for part in (p for p in spec.split(";") if p.strip()):
        if "=" in part:
            name, members = part.split("=", 1)
            if not name.strip():
                raise ConfigError(f"class spec {spec!r}: {part!r} has no class name before '='")
            entries.append((name.strip(), _split_names(members, known)))
        else:
            entries += [(name, [name]) for name in _split_names(part, known)]
    return entries


def resolve_classes(spec: str, coco: CocoDataset, one_vs_rest: bool = False) -> dict[str, list[str]]:
    """Resolve a class spec against a COCO file's label categories.

    Args:
        spec: the class spec (see the module docstring).
        coco: the dataset whose label categories the names and globs refer to.
        one_vs_rest: add ``not <class>`` = every other label (the spec names one class).

    Returns:
        ``{class name: [member category names]}`` in spec order; members of a class
        that the file lacks are left out, but each class keeps at least one.

    Raises:
        ConfigError: unknown explicit names, a category in two classes, a class that
            matches nothing, fewer than two classes, or repeated class names.
    """
    if one_vs_rest:
        spec = one_vs_rest_spec(spec)
    labels = label_categories(coco)
    known = set(labels)
    entries = _parse(spec, known)
    names = [name for name, _ in entries]
    if len(set(names)) != len(names):
        raise ConfigError(f"class spec {spec!r} repeats a class name: {names}")
    if len(entries) < 2:
        raise ConfigError(f"class spec {spec!r} gives {len(entries)} class(es); a classifier needs at "
                          f"least two (add more, or use one_vs_rest / --one-vs-rest)")
    explicit = [m for _, members in entries for m in members if not any(c in m for c in _GLOB_CHARS)]
    unknown = [m for m in explicit if m not in known]
    if unknown:
        raise ConfigError(f"class spec {spec!r}: unknown label(s) {unknown} in {coco.source}; "
                          f"its labels are: {labels}")
    taken: dict[str, str] = {}
    for name, members in entries:
        for member in members:
            if member in known and not any(c in member for c in _GLOB_CHARS):
                if member in taken:
                    raise ConfigError(f"class spec {spec!r}: label {member!r} is in two classes "
                                      f"({taken[member]!r} and {name!r})")
                taken[member] = name
    for name, members in entries:
        for pattern in (m for m in members if any(c in m for c in _GLOB_CHARS)):
            for label in fnmatch.filter(labels, pattern):
                taken.setdefault(label, name)
    groups = {name: [label for label in labels if taken.get(label) == name] for name, _ in entries}
    empty = [name for name, members in groups.items() if not members]
    if empty:
        raise ConfigError(f"class spec {spec!r}: class(es) {empty} match no label of {coco.source} "
                          f"(labels: {labels})")
    return groups


def merge_labels(coco: CocoDataset, groups: dict[str, list[str]]) -> CocoDataset:
    """A copy of ``coco`` whose label annotations name the output classes instead of their members.

    The classification Sequence then balances batches per output class (a class merging
    one common and one rare finding is not split half and half between them), and label
    categories outside ``groups`` are dropped with their annotations. Geometry
    annotations (lung masks) and their categories are kept unchanged.

    Raises:
        ConfigError: a class name equals the name of a kept (geometry) category.
    """
    member_of = {m: name for name, members in groups.items() for m in members}
    labels = set(label_categories(coco))
    kept = [dict(c) for c in coco.dataset.get("categories", []) if c["name"] not in labels]
    clash = sorted({c["name"] for c in kept} & set(groups))
    if clash:
        raise ConfigError(f"class name(s) {clash} are also mask categories of {coco.source}; rename the classes")
    next_id = max([c["id"] for c in coco.dataset.get("categories", [])] + [0]) + 1
    class_ids = {name: next_id + k for k, name in enumerate(groups)}
    categories = kept + [{"id": class_ids[name], "name": name, "supercategory": "finding"} for name in groups]
    annotations = []
    for ann in coco.dataset.get("annotations", []):
        name = coco.cats[ann["category_id"]]["name"]
        if name not in labels:
            annotations.append(ann)
        elif name in member_of:
            annotations.append({**ann, "category_id": class_ids[member_of[name]]})
    dataset = {**coco.dataset, "categories": categories, "annotations": annotations}
    return CocoDataset(dataset, coco.image_root, validate=False)


__all__ = ["one_vs_rest_spec", "label_categories", "resolve_classes", "merge_labels"]
