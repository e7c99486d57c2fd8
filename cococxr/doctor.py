"""``cococxr doctor``: run every dataset check and write a report a person can act on.

Checks, per COCO file: validation (every rule of :func:`cococxr.coco.validate_dataset`),
label annotations without a category, images without any mask, masks the converter
resized, unused categories; with the image files (unless ``check_files=False``): missing
files (one aggregated finding), unreadable images, image size versus the record, and
duplicate images by pixel content. Across split files given together: the same patient,
file or pixels in two files (leakage).

Each finding has a severity (``error``: the data cannot be used as is; ``warning``:
probably wrong; ``info``: worth knowing), a count, up to five examples naming image /
annotation ids, file names and JSON paths, and a one-line suggested fix. The report is
Markdown (default) or JSON; ``cococxr doctor`` exits with 1 when it holds an error.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from cococxr.coco import CocoDataset, ValidationIssue, is_label_annotation, validate_dataset
from cococxr.coco.files import read_json
from cococxr.coco.split import group_key_text
from cococxr.errors import CocoFormatError, ConfigError, ImageReadError, UnsafePathError
from cococxr.io import read_image

SEVERITIES = ("error", "warning", "info")
MAX_EXAMPLES = 5

#: One-line fix per finding code (validation codes included).
FIXES = {
    "unreadable_file": "check the path; the file must be UTF-8 COCO JSON (re-export it if it is truncated)",
    "bad_top_level": "the file must be a JSON object with 'images' and 'categories' lists",
    "not_an_object": "replace the entry by a JSON object (or delete it)",
    "bad_id": "give every record an integer 'id'",
    "duplicate_image_id": "renumber images so that ids are unique (cococxr merge renumbers)",
    "duplicate_annotation_id": "renumber annotations so that ids are unique (cococxr merge renumbers)",
    "duplicate_category_id": "give each category its own id and remap the annotations' category_id",
    "bad_image_size": "store the image's real height and width (positive integers, from the file)",
    "bad_file_name": "give every image a non-empty relative file_name",
    "unsafe_file_name": "make file_name relative to the image root, without '..', a drive or a leading '/'",
    "unsafe_image_root": "store info.image_root relative to the COCO file's folder and inside it, or pass --image-root",
    "unsafe_link": "replace the link by the file, or pass --image-root naming the folder the link points into",
    "duplicate_file_name": "merge the two records into one image, or fix the file name of one",
    "bad_category_name": "give every category a non-empty name",
    "duplicate_category_name": "merge the categories (remap category_id) or rename one",
    "category_id_zero": "renumber categories from 1: detectron2 and some pycocotools tools treat 0 as background",
    "unknown_image": "point image_id at an existing image, or drop the annotation",
    "unknown_category": "point category_id at an existing category, or add the category",
    "label_without_category": "add the finding category (supercategory 'finding') or drop the label annotation",
    "bad_segmentation": "store polygons [[x1, y1, ...]] or an RLE {'size', 'counts'}",
    "empty_segmentation": "drop the empty 'segmentation' key (an image-level label has none)",
    "bad_polygon": "fix or drop the polygon: x, y pairs, at least 3 points, finite, near the image",
    "bad_rle": "store the RLE size as [height, width]",
    "rle_size_mismatch": "re-encode the mask at the image's size (or fix the image's height/width)",
    "rle_size_swapped": "store RLE size as [height, width]; it is read correctly, but other tools may not",
    "bad_rle_counts": "re-encode the mask (pycocotools.mask.encode) so its runs cover height*width pixels",
    "bad_bbox": "store bbox as [x, y, width, height] with finite values >= 0 (or recompute it from the mask)",
    "bad_area": "store area as the mask's pixel count (pycocotools.mask.area)",
    "empty_mask": "drop the annotation or redraw it: it covers no pixel of the image",
    "bbox_mismatch": "recompute bbox from the segmentation (pycocotools.mask.toBbox)",
    "area_mismatch": "recompute area from the segmentation (pycocotools.mask.area)",
    "missing_files": "pass --image-root with the images folder (or --no-images to skip file checks)",
    "unreadable_image": "replace the file with a readable copy, or drop the image record",
    "image_size_mismatch": "set height/width to the file's size, or re-convert: masks will not line up",
    "duplicate_images": "keep one copy (or make sure the copies stay in one split)",
    "images_without_masks": "add their masks, or drop them from segmentation training (the default skips them)",
    "masks_resized": "nothing to do if intended; masks were enlarged with nearest neighbour",
    "label_category_not_finding": "use supercategory 'finding' for image-level label categories",
    "unused_category": "drop the category if nothing should have it",
    "no_patient_id": "add patient_id to every image so that splits can keep patients apart",
    "patient_leakage": "re-split by patient: cococxr split --by patient_id",
    "same_file_in_splits": "keep each image in one split only",
    "same_pixels_in_splits": "keep identical images in one split only (they leak the answer)",
}
_INDEX = re.compile(r"^(images|annotations|categories)\[(\d+)\]")


@dataclass
class Finding:
    """One problem (or fact) found, with what to do about it.

    Attributes:
        code: stable short name (a validation code or one of :data:`FIXES`).
        severity: ``"error"``, ``"warning"`` or ``"info"``.
        title: one line saying what was found.
        count: how many records (images, annotations, patients...) are concerned.
        fix: one-line suggested fix.
        dataset: the COCO file concerned (or several, for split checks).
        examples: up to five dicts with ``image_id``, ``file_name``, ``ann_id``, ``path``,
            ``patient_id`` and ``detail`` where known.
        fix: one-line suggested fix (default: from :data:`FIXES`).
        image_ids: every image id concerned, where known (not only the examples').
    """

    code: str
    severity: str
    title: str
    count: int
    dataset: str
    examples: list[dict] = field(default_factory=list)
    fix: str = ""
    image_ids: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fix = self.fix or FIXES.get(self.code, "")


@dataclass
class DoctorReport:
    """Everything ``cococxr doctor`` found.

    Attributes:
        datasets: one summary dict per file checked (path, counts, image root, split role).
        findings: sorted by severity, then file order.
    """

    datasets: list[dict]
    findings: list[Finding]

    def count(self, severity: str) -> int:
        """Number of findings of ``severity``."""
        return sum(f.severity == severity for f in self.findings)

    def codes(self, severity: str | None = None) -> set[str]:
        """Codes of the findings (of one severity)."""
        return {f.code for f in self.findings if severity in (None, f.severity)}

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"summary": {s: self.count(s) for s in SEVERITIES}, "datasets": self.datasets,
                "findings": [asdict(f) for f in self.findings]}

    def to_markdown(self) -> str:
        """The report as Markdown: a summary table, then each finding with examples and fix."""
        lines = ["# cococxr doctor report", ""]
        for ds in self.datasets:
            lines.append(f"- `{ds['path']}` ({ds['role']}): {ds.get('images', '?')} images, "
                         f"{ds.get('annotations', '?')} annotations, {ds.get('categories', '?')} categories; "
                         f"image root `{ds.get('image_root')}`; image files "
                         f"{'checked' if ds.get('files_checked') else 'not checked'}")
        lines += ["", f"**{self.count('error')} error(s), {self.count('warning')} warning(s), "
                      f"{self.count('info')} note(s).**", ""]
        if not self.findings:
            return "\n".join(lines + ["No problem found.", ""])
        lines += ["| severity | finding | count | file |", "| --- | --- | ---: | --- |"]
        lines += [f"| {f.severity} | {f.code} | {f.count} | {f.dataset} |" for f in self.findings]
        for f in self.findings:
            lines += ["", f"## {f.severity.upper()}: {f.title}", "",
                      f"`{f.code}` in `{f.dataset}` — {f.count} concerned.", ""]
            lines += [f"- {_format_example(e)}" for e in f.examples]
            if f.count > len(f.examples):
                lines.append(f"- ... and {f.count - len(f.examples)} more")
            lines += ["", f"**Fix:** {f.fix}"]
        return "\n".join(lines) + "\n"


def _format_example(example: dict) -> str:
    """One example as a Markdown list item."""
    parts = [f"{k.replace('_', ' ')} {example[k]!r}" if k != "path" else f"`{example[k]}`"
             for k in ("image_id", "ann_id", "patient_id", "file_name", "path") if example.get(k) is not None]
    detail = example.get("detail")
    return ", ".join(parts) + (f": {detail}" if detail else "")


# ----------------------------------------------------------------- one file
@dataclass
class _Checked:
    """What checking one file produced (the loaded dataset and pixel hashes for split checks)."""

    summary: dict
    findings: list[Finding]
    dataset: CocoDataset | None = None
    hashes: dict = field(default_factory=dict)


def _examples(items) -> list[dict]:
    """The first :data:`MAX_EXAMPLES` examples, without None values."""
    return [{k: v for k, v in item.items() if v is not None} for item in list(items)[:MAX_EXAMPLES]]


def _validation_findings(data: dict, issues: list[ValidationIssue], name: str) -> list[Finding]:
    """Group validation issues by code; unknown categories of label annotations get their own code."""
    images = {}
    for img in data.get("images", []) if isinstance(data.get("images"), list) else []:
        if isinstance(img, dict) and isinstance(img.get("id"), int):
            images.setdefault(img["id"], img)
    annotations = data.get("annotations") if isinstance(data.get("annotations"), list) else []
    groups: dict[tuple[str, str], list[ValidationIssue]] = defaultdict(list)
    for issue in issues:
        code = issue.code
        match = _INDEX.match(issue.path)
        if code == "unknown_category" and match and match.group(1) == "annotations":
            ann = annotations[int(match.group(2))]
            code = "label_without_category" if isinstance(ann, dict) and is_label_annotation(ann) else code
        groups[(issue.severity, code)].append(issue)
    findings = []
    for (severity, code), group in groups.items():
        first = group[0].message.split(": ", 1)[-1]
        title = f"{code.replace('_', ' ')}: {first}" if len(group) == 1 else \
            f"{code.replace('_', ' ')} ({len(group)} records), e.g. {first}"
        examples = _examples({"image_id": i.image_id, "ann_id": i.ann_id, "path": i.path,
                              "file_name": _file_name(images, i.image_id), "detail": i.message} for i in group)
        findings.append(Finding(code, severity, title, len(group), name, examples,
                                image_ids=_ids(i.image_id for i in group)))
    return findings


def _ids(values) -> list:
    """Distinct integer ids in first-seen order."""
    return list(dict.fromkeys(v for v in values if isinstance(v, int) and not isinstance(v, bool)))


def _file_name(images: dict, image_id) -> str | None:
    """The file name of an image id, when both are valid."""
    name = images.get(image_id, {}).get("file_name") if isinstance(image_id, int) else None
    return name if isinstance(name, str) else None


def _annotation_findings(ds: CocoDataset, name: str) -> list[Finding]:
    """Images without masks (by view), resized masks, label categories, unused categories."""
    findings = []
    geometry = {a["image_id"] for a in ds.anns.values() if not is_label_annotation(a)}
    bare = [img for i, img in ds.imgs.items() if i not in geometry]
    if geometry and bare:
        views = Counter(str(img.get("view")) for img in bare if "view" in img)
        totals = Counter(str(img.get("view")) for img in ds.imgs.values() if "view" in img)
        by_view = ", ".join(f"{v} {n}/{totals[v]}" for v, n in views.most_common())
        findings.append(Finding(
            "images_without_masks", "warning",
            f"{len(bare)} of {len(ds.imgs)} images have no segmentation"
            + (f" (by view, unannotated/all: {by_view})" if by_view else ""), len(bare), name,
            _examples({"image_id": img["id"], "file_name": img.get("file_name"),
                       "detail": f"view {img['view']}" if "view" in img else None} for img in bare),
            image_ids=_ids(img["id"] for img in bare)))
    resized = [img for img in ds.imgs.values() if "mask_resized_from" in img]
    if resized:
        sizes = Counter(f"{img['mask_resized_from']} -> [{img.get('height')}, {img.get('width')}]" for img in resized)
        findings.append(Finding(
            "masks_resized", "info", f"{len(resized)} masks were resized to their image: "
            + ", ".join(f"{s} ({n})" for s, n in sizes.most_common(3)), len(resized), name,
            _examples({"image_id": img["id"], "file_name": img.get("file_name")} for img in resized),
            image_ids=_ids(img["id"] for img in resized)))
    labels = [a for a in ds.anns.values() if is_label_annotation(a)
              and ds.cats.get(a["category_id"], {}).get("supercategory", "finding") != "finding"]
    if labels:
        findings.append(Finding(
            "label_category_not_finding", "info", f"{len(labels)} image-level labels use categories whose "
            "supercategory is not 'finding'", len(labels), name,
            _examples({"image_id": a["image_id"], "ann_id": a["id"],
                       "detail": f"category {ds.cats[a['category_id']].get('name')!r}"} for a in labels),
            image_ids=_ids(a["image_id"] for a in labels)))
    used = {a["category_id"] for a in ds.anns.values()}
    unused = [c for i, c in ds.cats.items() if i not in used]
    if unused:
        findings.append(Finding(
            "unused_category", "info", f"{len(unused)} categories have no annotation: "
            + ", ".join(repr(c.get("name")) for c in unused[:MAX_EXAMPLES]), len(unused), name,
            _examples({"detail": f"category {c.get('id')} {c.get('name')!r}"} for c in unused)))
    return findings


def _pixel_hash(image) -> str:
    """Hash of the decoded pixels (shape, type and values): equal images, any encoding."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.shape}{image.dtype}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _file_findings(ds: CocoDataset, name: str) -> tuple[list[Finding], dict]:
    """Missing, unreadable, wrongly sized and duplicate image files; returns (findings, image id -> hash)."""
    missing, unreadable, wrong_size, hashes = [], [], [], {}
    quiet = len(ds.imgs) < 50 or os.environ.get("COCOCXR_PROGRESS", "1") == "0"
    for image_id, img in tqdm(ds.imgs.items(), desc="reading images", unit="img", disable=quiet):
        try:
            path = ds.image_path(image_id)
        except (UnsafePathError, ConfigError):
            continue  # reported by validation
        if not path.is_file():
            missing.append(img)
            continue
        try:
            image = read_image(path)
        except ImageReadError as exc:
            unreadable.append({"image_id": image_id, "file_name": img.get("file_name"), "detail": str(exc)})
            continue
        hashes[image_id] = _pixel_hash(image)
        if image.shape[:2] != (img.get("height"), img.get("width")):
            wrong_size.append({"image_id": image_id, "file_name": img.get("file_name"),
                               "detail": f"file is {image.shape[0]}x{image.shape[1]} (HxW), record says "
                                         f"{img.get('height')}x{img.get('width')}"})
    findings = []
    if missing:
        where = f"under the image root {ds.image_root}"
        title = (f"none of the {len(ds.imgs)} image files exist {where}" if len(missing) == len(ds.imgs)
                 else f"{len(missing)} of {len(ds.imgs)} image files are missing {where}")
        findings.append(Finding("missing_files", "error", title, len(missing), name,
                                _examples({"image_id": i["id"], "file_name": i.get("file_name")} for i in missing),
                                image_ids=_ids(i["id"] for i in missing)))
    if unreadable:
        findings.append(Finding("unreadable_image", "error", f"{len(unreadable)} image files cannot be read",
                                len(unreadable), name, _examples(unreadable),
                                image_ids=_ids(u["image_id"] for u in unreadable)))
    if wrong_size:
        findings.append(Finding("image_size_mismatch", "error", f"{len(wrong_size)} image files differ in size "
                                "from their record", len(wrong_size), name, _examples(wrong_size),
                                image_ids=_ids(w["image_id"] for w in wrong_size)))
    findings += _duplicate_findings(ds, hashes, name)
    return findings, hashes


def _duplicate_findings(ds: CocoDataset, hashes: dict, name: str) -> list[Finding]:
    """Images of one file with identical pixels."""
    groups = defaultdict(list)
    for image_id, digest in hashes.items():
        groups[digest].append(image_id)
    dupes = [ids for ids in groups.values() if len(ids) > 1]
    if not dupes:
        return []
    count = sum(len(ids) - 1 for ids in dupes)
    examples = _examples({"image_id": ids[0], "file_name": ds.imgs[ids[0]].get("file_name"),
                          "detail": "same pixels as " + ", ".join(_describe(ds.imgs[i]) for i in ids[1:])
                          + _patients_note(ds, ids)} for ids in dupes)
    return [Finding("duplicate_images", "warning", f"{count} images repeat another image's pixels "
                    f"({len(dupes)} groups)", count, name, examples,
                    image_ids=[i for ids in dupes for i in ids])]


def _describe(img: dict) -> str:
    """``image 3 'a.png'`` plus its patient and view when recorded."""
    facts = [f"{k} {img[k]!r}" for k in ("patient_id", "view") if k in img]
    return f"image {img['id']} {img.get('file_name')!r}" + (f" ({', '.join(facts)})" if facts else "")


def _patients_note(ds: CocoDataset, ids: list) -> str:
    """A warning when copies of one image carry different patient ids."""
    patients = {str(ds.imgs[i].get("patient_id")) for i in ids if "patient_id" in ds.imgs[i]}
    if len(patients) < 2:
        return ""
    first = ds.imgs[ids[0]]
    return (f"; this one has patient_id {first.get('patient_id')!r}: the copies have different patient ids, "
            "so a split by patient can put them on both sides")


def _check_file(path: str | Path, image_root: str | Path | None = None, *, check_files: bool = True,
               role: str = "dataset") -> _Checked:
    """Run every single-file check on one COCO file."""
    name = str(path)
    summary = {"path": name, "role": role, "files_checked": False}
    try:
        ds = CocoDataset(path, image_root, validate=False)
    except CocoFormatError as exc:
        data = _raw_json(path)
        if data is None or exc.issues:
            issues = exc.issues or [ValidationIssue("error", "unreadable_file", str(exc), "$")]
            return _Checked(summary, _validation_findings({}, issues, name))
        issues = validate_dataset(data)
        if isinstance(exc, UnsafePathError):  # the file's own info.image_root leaves its folder
            issues.append(ValidationIssue("error", "unsafe_image_root", str(exc), "$.info.image_root"))
        return _Checked(summary, _validation_findings(data, issues, name))
    findings = _validation_findings(ds.dataset, ds.validate() + ds.link_issues(), name)
    summary.update(images=len(ds.imgs), annotations=len(ds.anns), categories=len(ds.cats),
                   image_root=str(ds.image_root) if ds.image_root is not None else None)
    findings += _annotation_findings(ds, name)
    hashes = {}
    if check_files and ds.image_root is not None:
        file_findings, hashes = _file_findings(ds, name)
        findings += file_findings
        summary["files_checked"] = True
    return _Checked(summary, findings, ds, hashes)


def _raw_json(path: str | Path):
    """The parsed JSON of a file that indexing refused, or None when it does not read (duplicate keys too)."""
    try:
        return read_json(Path(path))
    except CocoFormatError:
        return None


# ------------------------------------------------------------- split files
def _file_key(ds: CocoDataset, image_id, img: dict) -> str | None:
    """Where an image's file is (resolved path, else its file name), to compare across files."""
    name = img.get("file_name")
    if not isinstance(name, str):
        return None
    try:
        return str(ds.image_path(image_id))
    except (UnsafePathError, ConfigError):
        return name


def _patient(value) -> str | None:
    """A patient id compared as the split compares group keys (1, "1" and 1.0 are one patient)."""
    try:
        return group_key_text(value)
    except ConfigError:
        return json.dumps(value, sort_keys=True, default=str)  # a list or dict: compared as written


def _split_findings(checked: list[_Checked], patient_key: str) -> list[Finding]:
    """The same patient, image file or pixels in two of the files given together."""
    parts = [c for c in checked if c.dataset is not None]
    names = ", ".join(c.summary["path"] for c in parts)
    patients, files, pixels = defaultdict(dict), defaultdict(dict), defaultdict(dict)
    no_patient = []
    for part in parts:
        label, ds = part.summary["path"], part.dataset
        for image_id, img in ds.imgs.items():
            value, key = _patient(img.get(patient_key)), _file_key(ds, image_id, img)
            if value is None:
                no_patient.append({"image_id": image_id, "file_name": img.get("file_name"), "detail": label})
            else:
                patients[value].setdefault(label, []).append(img.get("file_name"))
            if key is not None:
                files[key][label] = img["file_name"]
            if image_id in part.hashes:
                pixels[part.hashes[image_id]].setdefault(label, set()).add(key)
    findings = []
    leaks = {p: where for p, where in patients.items() if len(where) > 1}
    if leaks:
        findings.append(Finding(
            "patient_leakage", "error", f"{len(leaks)} patients have images in several split files",
            len(leaks), names, _examples(
                {"patient_id": p, "detail": "; ".join(f"{f}: {len(v)} image(s) ({', '.join(map(str, v[:3]))})"
                                                      for f, v in where.items())} for p, where in leaks.items())))
    if no_patient:
        findings.append(Finding("no_patient_id", "warning", f"{len(no_patient)} images have no {patient_key!r}: "
                                "leakage between splits cannot be checked for them", len(no_patient), names,
                                _examples(no_patient)))
    shared = [where for where in files.values() if len(where) > 1]
    if shared:
        findings.append(Finding("same_file_in_splits", "error", f"{len(shared)} image files are in several split "
                                "files", len(shared), names, _examples(
                                    {"file_name": next(iter(w.values())), "detail": ", ".join(w)} for w in shared)))
    copies = [where for where in pixels.values()
              if len(where) > 1 and len(set().union(*where.values())) > 1]  # one shared file is reported above
    if copies:
        findings.append(Finding("same_pixels_in_splits", "error", f"{len(copies)} images appear in several split "
                                "files under different file names (same pixels)", len(copies), names, _examples(
                                    {"detail": "; ".join(f"{f}: {', '.join(sorted(map(str, k)))}"
                                                         for f, k in where.items())} for where in copies)))
    return findings


def diagnose(dataset: str | Path, image_root: str | Path | None = None, *, splits=(), check_files: bool = True,
             patient_key: str = "patient_id") -> DoctorReport:
    """Run every check on a COCO file (and on split files given with it).

    Args:
        dataset: the COCO JSON file.
        image_root: folder of the images for every file (default: each file's own).
        splits: other split files of the same data; they are checked too, and all files
            together are checked for leakage (patient, file name, pixels).
        check_files: read the image files (missing, unreadable, size, duplicates).
        patient_key: image key identifying the patient.

    Returns:
        The :class:`DoctorReport` (findings sorted: errors, warnings, then notes).
    """
    checked = [_check_file(dataset, image_root, check_files=check_files)]
    checked += [_check_file(p, image_root, check_files=check_files, role="split") for p in splits]
    findings = [f for c in checked for f in c.findings]
    if splits:
        findings += _split_findings(checked, patient_key)
    findings.sort(key=lambda f: SEVERITIES.index(f.severity))
    return DoctorReport([c.summary for c in checked], findings)


__all__ = ["FIXES", "DoctorReport", "Finding", "diagnose"]
