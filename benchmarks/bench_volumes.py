"""Benchmark: volumes -> COCO slices, cococxr vs a plain nibabel / pydicom loop and datumaro's BraTS importer.

Inputs (real files of ``../shared/data/volumes``):

- NIfTI: TotalSegmentator's two CT references with their multi-label maps
  (``example_ct_sm`` 30 slices + ``example_seg``; ``example_ct`` 112 slices +
  ``example_seg_fast_force_split``), laid out as ``imagesTr/`` + ``labelsTr/`` (symlinks);
- DICOM: the NSCLC-Radiomics CT (134 slices of 512x512) with its RTSTRUCT (4 ROIs, 358 contours).

Tools, each run in a fresh process (peak RSS is that process's ``ru_maxrss``, or its largest
worker's; times exclude interpreter start and imports):

- cococxr: ``convert_nifti`` on the imagesTr/labelsTr folder, ``convert_rtstruct`` on the
  NSCLC folder (``--workers 1``, and 2 unless ``--quick``);
- baseline: the straightforward loop one would write: nibabel ``get_fdata`` of each
  volume, ``cv2.imwrite`` of every axial slice as it is stored, ``pycocotools.mask.encode``
  of every label value; for the RTSTRUCT: ``pydicom.dcmread`` of every file, slices sorted
  by z, contours put on the image their ContourImageSequence names and filled with
  ``cv2.fillPoly`` (rt-utils' method), then encoded;
- datumaro: ``Dataset.import_from(..., "brats")`` on the same imagesTr/labelsTr folder,
  every mask materialised, in its own virtual environment (``.bench/venv-datumaro``,
  created with ``pip install datumaro nibabel`` when missing: datumaro would downgrade
  opencv-python-headless and pillow in the project's environment). datumaro has no
  RTSTRUCT importer.

Ratios are against the baseline measured in the same run. ``--quick`` (``make bench``)
runs each tool once, without the 2-worker runs.

Usage: ``python benchmarks/bench_volumes.py [--quick] [--repeat N] [--no-datumaro]``
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("COCOCXR_SHARED_DATA", REPO.parent / "shared" / "data")) / "volumes"
TOTALSEG = DATA / "nifti" / "TotalSegmentator"
NSCLC = DATA / "rtstruct" / "mirp_NSCLC_LUNG1-001"
VENV = REPO / ".bench" / "venv-datumaro"
CASES = {"ct_sm": ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
         "ct": ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz")}

DATUMARO_SCRIPT = """
import json, sys, time
start = time.perf_counter()
from datumaro.components.dataset import Dataset
dataset = Dataset.import_from(sys.argv[1], "brats")
frames = masks = annotated = 0
for item in dataset:
    frames += len(item.media.data) if item.media is not None else 0
    annotated += bool(item.annotations)
    for ann in item.annotations:
        ann.image
        masks += 1
import resource
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"seconds": time.perf_counter() - start, "slices": frames, "annotations": masks,
                  "annotated_volumes": annotated, "volumes": len(dataset), "rss_mib": rss / 1024}))
"""


# ----------------------------------------------------------------------------- tools (run in a child process)
def run_cococxr_nifti(src: Path, out: Path, workers: int) -> dict:
    from cococxr.converters.nifti import convert_nifti

    start = time.perf_counter()
    _, report = convert_nifti(src, out=out / "coco.json", out_images=out / "images", workers=workers)
    return {"seconds": time.perf_counter() - start, "slices": report.counts["images out"],
            "annotations": sum(v for k, v in report.counts.items() if k.startswith("annotations out"))}


def run_cococxr_rtstruct(src: Path, out: Path, workers: int) -> dict:
    from cococxr.converters.rtstruct import convert_rtstruct

    start = time.perf_counter()
    _, report = convert_rtstruct(src, out=out / "coco.json", out_images=out / "images", workers=workers)
    return {"seconds": time.perf_counter() - start, "slices": report.counts["images out"],
            "annotations": sum(v for k, v in report.counts.items() if k.startswith("annotations out"))}


def _annotation(mask_utils, np, mask, image_id: int, category_id: int, ann_id: int) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "iscrowd": 0,
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
            "area": float(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).tolist()}


def run_baseline_nifti(src: Path, out: Path, workers: int) -> dict:
    import cv2
    import nibabel as nib
    import numpy as np
    from pycocotools import mask as mask_utils

    start = time.perf_counter()
    images, annotations = [], []
    for image_path in sorted((src / "imagesTr").glob("*.nii.gz")):
        case = image_path.name[: -len(".nii.gz")]
        volume = nib.load(image_path).get_fdata()
        labels = nib.load(src / "labelsTr" / image_path.name).get_fdata()
        low = volume.min()
        (out / "images" / case).mkdir(parents=True, exist_ok=True)
        for z in range(volume.shape[2]):
            name = f"{case}/{z:04d}.png"
            cv2.imwrite(str(out / "images" / name), (volume[:, :, z] - low).astype(np.uint16))
            images.append({"id": len(images) + 1, "file_name": name, "height": volume.shape[0],
                           "width": volume.shape[1]})
            plane = labels[:, :, z]
            for value in np.unique(plane):
                if value:
                    annotations.append(_annotation(mask_utils, np, plane == value, len(images), int(value),
                                                   len(annotations) + 1))
    categories = [{"id": v, "name": f"label_{v}"} for v in sorted({a["category_id"] for a in annotations})]
    (out / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                               "categories": categories}))
    return {"seconds": time.perf_counter() - start, "slices": len(images), "annotations": len(annotations)}


def run_baseline_rtstruct(src: Path, out: Path, workers: int) -> dict:
    import cv2
    import numpy as np
    import pydicom
    from pycocotools import mask as mask_utils

    start = time.perf_counter()
    slices = sorted((pydicom.dcmread(p) for p in glob.glob(str(src / "image" / "*.dcm"))),
                    key=lambda ds: float(ds.ImagePositionPatient[2]))
    rt = pydicom.dcmread(next((src / "mask_rtstruct").glob("*.dcm")))
    by_uid = {ds.SOPInstanceUID: k for k, ds in enumerate(slices)}
    polygons: dict[tuple[int, int], list] = {}
    for roi in rt.ROIContourSequence:
        for contour in roi.ContourSequence:
            k = by_uid[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
            ds = slices[k]
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            columns = (points[:, 0] - float(ds.ImagePositionPatient[0])) / float(ds.PixelSpacing[1])
            rows = (points[:, 1] - float(ds.ImagePositionPatient[1])) / float(ds.PixelSpacing[0])
            polygons.setdefault((k, int(roi.ReferencedROINumber)), []).append(
                np.round(np.stack([columns, rows], 1)).astype(np.int32))
    images, annotations = [], []
    (out / "images").mkdir(parents=True, exist_ok=True)
    for k, ds in enumerate(slices):
        name = f"{k:04d}.png"
        cv2.imwrite(str(out / "images" / name), ds.pixel_array.astype(np.uint16))
        images.append({"id": k + 1, "file_name": name, "height": int(ds.Rows), "width": int(ds.Columns)})
        for (kk, roi), polys in polygons.items():
            if kk == k:
                mask = np.zeros((ds.Rows, ds.Columns), np.uint8)
                cv2.fillPoly(mask, polys, 1)
                annotations.append(_annotation(mask_utils, np, mask, k + 1, roi, len(annotations) + 1))
    (out / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": []}))
    return {"seconds": time.perf_counter() - start, "slices": len(images), "annotations": len(annotations)}


TOOLS = {"cococxr-nifti": run_cococxr_nifti, "cococxr-rtstruct": run_cococxr_rtstruct,
         "baseline-nifti": run_baseline_nifti, "baseline-rtstruct": run_baseline_rtstruct}


# ----------------------------------------------------------------------------- driver
def measure(command: list[str]) -> dict:
    """Run ``command``; its last stdout line is a JSON result (with the process's own ``rss_mib``)."""
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "COCOCXR_PROGRESS": "0", "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """Peak RSS (MiB) of this process, or of its largest worker process if that was larger."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, workers) / 1024.0


def child(tool: str, src: str, out: str, workers: int) -> None:
    """Entry point of the child process: run one tool, print its JSON result."""
    result = TOOLS[tool](Path(src), Path(out), workers)
    print(json.dumps({**result, "rss_mib": peak_rss_mib()}))


def ensure_datumaro() -> tuple[Path | None, str]:
    """The datumaro venv's python, creating it when missing; (None, why) when impossible."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} and installing datumaro + nibabel (one time) ...", flush=True)
        for command in ([sys.executable, "-m", "venv", str(VENV)],
                        [str(python), "-m", "pip", "install", "-q", "datumaro", "nibabel"]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                return None, f"{' '.join(command[:4])} failed: {(done.stderr or done.stdout).strip()[-400:]}"
    done = subprocess.run([str(python), "-c", "import datumaro, nibabel"], capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"datumaro does not import: {done.stderr.strip()[-400:]}"
    return python, ""


def build_layout(root: Path) -> None:
    """imagesTr/ + labelsTr/ (symlinks to the TotalSegmentator files) and datumaro's ``labels`` file."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for case, (image, labels) in CASES.items():
        (root / "imagesTr" / f"{case}.nii.gz").symlink_to(TOTALSEG / image)
        (root / "labelsTr" / f"{case}.nii.gz").symlink_to(TOTALSEG / labels)
    (root / "labels").write_text("".join(f"label_{v}\n" for v in range(256)))


def _line(name: str, result: dict, baseline: dict | None) -> str:
    rate = result["slices"] / result["seconds"]
    text = (f"  {name:<26} {result['seconds']:7.2f} s  {rate:8.1f} slices/s  peak RSS {result['rss_mib']:7.0f} MiB"
            f"  ({result['slices']} slices, {result['annotations']} annotations)")
    if baseline is not None:
        text += (f"  x{rate / (baseline['slices'] / baseline['seconds']):.2f} speed, "
                 f"x{result['rss_mib'] / baseline['rss_mib']:.2f} RSS vs baseline")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per tool, no 2-worker runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the fastest counts (default 3)")
    parser.add_argument("--no-datumaro", action="store_true", help="leave datumaro out")
    parser.add_argument("--child", nargs=4, metavar=("TOOL", "SRC", "OUT", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.child[2], int(args.child[3]))
        return 0
    if not (TOTALSEG.is_dir() and NSCLC.is_dir()):
        print(f"benchmark data {DATA} not found (../shared/data is not beside this checkout)")
        return 1
    repeat = 1 if args.quick else args.repeat
    worker_counts = (1,) if args.quick else (1, 2)
    python, why = (None, "--no-datumaro") if args.no_datumaro else ensure_datumaro()
    with tempfile.TemporaryDirectory(prefix="bench_volumes_") as tmp:
        nifti = Path(tmp) / "nifti"
        build_layout(nifti)
        runs = [("baseline-nifti", nifti, 1), *[("cococxr-nifti", nifti, w) for w in worker_counts],
                ("baseline-rtstruct", NSCLC, 1), *[("cococxr-rtstruct", NSCLC, w) for w in worker_counts]]
        best: dict[str, dict] = {}
        for k in range(repeat):  # interleaved, so that every tool sees the same machine load
            for n, (tool, src, workers) in enumerate(runs):
                out = Path(tmp) / f"out_{n}_{k}"
                result = measure([sys.executable, __file__, "--child", tool, str(src), str(out), str(workers)])
                key = f"{tool} w{workers}"
                if key not in best or result["seconds"] < best[key]["seconds"]:
                    best[key] = {**result, "out": out}
            if python is not None:
                try:
                    result = measure([str(python), "-c", DATUMARO_SCRIPT, str(nifti)])
                    if "datumaro" not in best or result["seconds"] < best["datumaro"]["seconds"]:
                        best["datumaro"] = result
                except RuntimeError as exc:
                    python, why = None, str(exc)
        print("NIfTI: TotalSegmentator example_ct_sm (30 slices) + example_ct (112 slices), multi-label maps")
        base = best["baseline-nifti w1"]
        print(_line("baseline nibabel loop", base, None))
        for workers in worker_counts:
            print(_line(f"cococxr --workers {workers}", best[f"cococxr-nifti w{workers}"], base))
        if "datumaro" in best:
            result = best["datumaro"]
            print(_line("datumaro brats import", result, base))
            print(f"    datumaro: {result['annotated_volumes']} of {result['volumes']} volumes got annotations (its "
                  "BraTS reader files every label map under the last image read) and the background of every "
                  "slice is a mask of its own")
        else:
            print(f"  datumaro: not run ({why})")
        print("DICOM: NSCLC LUNG1-001 CT (134 slices) + RTSTRUCT (358 contours)")
        base = best["baseline-rtstruct w1"]
        print(_line("baseline pydicom + fillPoly", base, None))
        for workers in worker_counts:
            print(_line(f"cococxr --workers {workers}", best[f"cococxr-rtstruct w{workers}"], base))
        same = all((best[f"{tool} w1"]["out"] / "coco.json").read_bytes() ==
                   (best[f"{tool} w2"]["out"] / "coco.json").read_bytes()
                   for tool in ("cococxr-nifti", "cococxr-rtstruct")) if len(worker_counts) > 1 else None
        if same is not None:
            print(f"cococxr output identical for --workers 1 and 2: {same}")
    return 0 if same in (None, True) else 1


if __name__ == "__main__":
    sys.exit(main())
