"""Security properties: no code execution from user files, paths confined, uploads contained.

- The package source (cococxr/, converters/, pipelines/) never unpickles, never evals or
  execs, never loads YAML/torch/Keras files unsafely and never runs a shell (AST scan).
- Image paths from a dataset stay inside the image root: ``CocoDataset.image_path`` and
  the Keras Sequence refuse ``../``, absolute names and symbolic links that lead out.
- Uploads (``cococxr.uploads.save_upload``, used by the app) are size-limited, typed by
  content, renamed safely and written only inside a fresh private temp folder.
"""
from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from cococxr.coco import CocoDataset
from cococxr.errors import CocoFormatError, ConfigError, ImageReadError, UnsafePathError
from cococxr.io import read_image
from cococxr.uploads import MAX_UPLOAD_BYTES, safe_upload_name, save_upload
from helpers import REPO

PACKAGE_DIRS = ("cococxr", "converters", "pipelines")


# ------------------------------------------------------------- source scan
def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ``""``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword(call: ast.Call, name: str):
    """The constant value of keyword ``name`` (``...`` when absent, None when not a constant)."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else None
    return ...


UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "jsonpickle"}


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Every call in ``source`` that could run code from data, as ``file:line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{filename}:{node.lineno}: imports {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name, short = _dotted(node.func), _dotted(node.func).rsplit(".", 1)[-1]
        where = f"{filename}:{node.lineno}: {name or short}"
        if isinstance(node.func, ast.Name) and name in ("eval", "exec", "compile", "__import__"):
            found.append(f"{where}() builtin")
        elif name.split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where}() deserialises arbitrary objects")
        elif short in ("read_pickle", "unsafe_load", "full_load") or name in ("joblib.load", "os.system",
                                                                                  "os.popen"):
            found.append(f"{where}()")
        elif short == "load" and name.split(".")[0] in ("np", "numpy") and _keyword(node, "allow_pickle") not in (
                ..., False):
            found.append(f"{where}(allow_pickle=...) may unpickle")
        elif name in ("yaml.load",) and "Safe" not in ast.unparse(node):
            found.append(f"{where}() without a SafeLoader")
        elif name == "torch.load" and _keyword(node, "weights_only") is not True:
            found.append(f"{where}() without weights_only=True")
        elif short == "load_model" and _keyword(node, "safe_mode") is False:
            found.append(f"{where}(safe_mode=False)")
        elif _keyword(node, "shell") not in (..., False):
            found.append(f"{where}(shell=...)")
    return found


def _package_files() -> list[Path]:
    return sorted(p for d in PACKAGE_DIRS for p in (REPO / d).rglob("*.py"))


def test_package_source_has_no_unsafe_calls():
    files = _package_files()
    assert len(files) > 20
    found = [hit for path in files
             for hit in unsafe_calls(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert not found, "unsafe calls on user data:\n" + "\n".join(found)


@pytest.mark.parametrize("snippet", [
    "import pickle\npickle.load(open(p, 'rb'))",
    "from pickle import loads",
    "import numpy as np\nnp.load(p, allow_pickle=True)",
    "import numpy\nnumpy.load(p, allow_pickle=flag)",
    "eval(text)",
    "exec(code)",
    "import yaml\nyaml.load(text)",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)",
    "torch.load(path)",
    "torch.load(path, weights_only=False)",
    "keras.models.load_model(p, safe_mode=False)",
    "subprocess.run(cmd, shell=True)",
    "import os\nos.system(cmd)",
    "pd.read_pickle(p)",
    "import dill",
])
def test_scanner_catches_unsafe_code(snippet):
    assert unsafe_calls(snippet)


@pytest.mark.parametrize("snippet", [
    "np.load(p)", "np.load(p, allow_pickle=False)", "yaml.safe_load(t)",
    "yaml.load(t, Loader=yaml.SafeLoader)", "torch.load(p, weights_only=True)", "model.eval()",
    "subprocess.run(['ls'])", "json.loads(t)", "keras.models.load_model(p)",
])
def test_scanner_allows_safe_code(snippet):
    assert unsafe_calls(snippet) == []


# ------------------------------------------------------------ path confinement
def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buffer = cv2.imencode(".png", np.full((4, 4), 7, np.uint8))
    path.write_bytes(buffer.tobytes())
    return path


@pytest.fixture
def rooted(tmp_path):
    """An image root with a normal file, a symlink inside and symlinks leading out."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    _png(root / "ok.png")
    secret = _png(outside / "secret.png")
    links = {"inside_link.png": root / "ok.png", "out_link.png": secret, "out_dir": outside}
    for name, target in links.items():
        try:
            (root / name).symlink_to(target)
        except OSError:  # pragma: no cover - Windows without symlink rights
            pytest.skip("symbolic links are not available")
    return root


def _dataset(root: Path, names: list[str]) -> CocoDataset:
    images = [{"id": i + 1, "file_name": n, "height": 4, "width": 4} for i, n in enumerate(names)]
    data = {"images": images, "categories": [{"id": 1, "name": "lung", "supercategory": "anatomy"}],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "segmentation": [[0, 0, 3, 0, 3, 3]],
                             "area": 6, "bbox": [0.0, 0.0, 3.0, 3.0], "iscrowd": 0} for i in range(len(names))]}
    return CocoDataset(data, root, validate=False)


ESCAPES = ["../outside/secret.png", "/etc/passwd", "C:\\Windows\\win.ini", "sub/../../outside/secret.png",
           "..\\outside\\secret.png", "out_link.png", "out_dir/secret.png", "ok.png\x00.txt"]


@pytest.mark.parametrize("name", ESCAPES)
def test_image_path_refuses_escapes(rooted, name):
    dataset = _dataset(rooted, [name])
    with pytest.raises(UnsafePathError) as info:
        dataset.image_path(1)
    assert "image 1 file_name" in str(info.value)


def test_image_path_allows_links_inside_the_root(rooted):
    dataset = _dataset(rooted, ["ok.png", "inside_link.png"])
    assert dataset.image_path(1) == (rooted / "ok.png").resolve()
    assert read_image(dataset.image_path(2)).shape == (4, 4)


@pytest.mark.parametrize("name", ["../outside/secret.png", "/etc/passwd"])
def test_validation_refuses_escaping_file_names(tmp_path, name):
    with pytest.raises(CocoFormatError) as info:
        CocoDataset({"images": [{"id": 1, "file_name": name, "height": 4, "width": 4}], "categories": []})
    assert "images[0].file_name" in str(info.value)


def test_sequence_refuses_symlinks_out_of_the_root(rooted):
    from cococxr.sequences import CocoSegmentationSequence

    names = ["ok.png", "out_link.png", "out_dir/secret.png", "../outside/secret.png"]
    sequence = CocoSegmentationSequence(_dataset(rooted, names), ["lung"], batch_size=1, input_size=4,
                                        shuffle=False, seed=0)
    assert sequence[0][0].shape == (1, 4, 4, 3)
    for index in (1, 2, 3):
        with pytest.raises(UnsafePathError):
            sequence[index]


# ---------------------------------------------------------------- uploads
def _png_bytes() -> bytes:
    return cv2.imencode(".png", np.full((4, 4), 9, np.uint8))[1].tobytes()


def _jpeg_bytes() -> bytes:
    return cv2.imencode(".jpg", np.full((8, 8), 9, np.uint8))[1].tobytes()


def test_upload_refuses_oversize_with_the_limit(tmp_path):
    with pytest.raises(ConfigError, match="limit is 1,000 bytes"):
        save_upload(_png_bytes() + bytes(1000), "big.png", max_bytes=1000, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert MAX_UPLOAD_BYTES == 20 * 1024 * 1024
    with pytest.raises(ConfigError, match="20 MB"):
        save_upload(b"\x89PNG\r\n\x1a\n" + bytes(MAX_UPLOAD_BYTES), "huge.png", tmp_dir=tmp_path)


@pytest.mark.parametrize("filename", ["../../etc/passwd", "..\\..\\boot.ini", "/abs/path/x.png", "a\x00b.png",
                                      "....", "", "con:evil.png", "ü ñ 漢字 scan (1).png", "x" * 500 + ".png",
                                      ".bashrc", "-rf.png"])
def test_upload_names_are_sanitised_and_stay_inside(tmp_path, filename):
    path = save_upload(_png_bytes(), filename, tmp_dir=tmp_path)
    assert path.parent.parent == tmp_path
    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert path.suffix == ".png" and not path.name.startswith(".")
    assert len(path.name) <= 104 and "/" not in path.name and "\\" not in path.name and "\x00" not in path.name
    assert read_image(path).shape == (4, 4)


def test_upload_folder_is_private_and_fresh(tmp_path):
    first = save_upload(_png_bytes(), "scan.png", tmp_dir=tmp_path)
    second = save_upload(_png_bytes(), "scan.png", tmp_dir=tmp_path)
    assert first.parent != second.parent and first.read_bytes() == second.read_bytes()
    if os.name == "posix":
        assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(first.stat().st_mode) == 0o600


def test_upload_default_folder_is_the_system_temp(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    path = save_upload(_png_bytes(), "x.png")
    assert path.parent.parent == tmp_path and path.parent.name.startswith("cococxr-upload-")


def test_upload_type_is_decided_by_content(tmp_path):
    assert save_upload(_jpeg_bytes(), "photo.png", tmp_dir=tmp_path).suffix == ".jpg"
    assert save_upload(_png_bytes(), "scan.dcm", tmp_dir=tmp_path).suffix == ".png"
    dicom = bytes(128) + b"DICM" + bytes(64)
    assert save_upload(dicom, "study", tmp_dir=tmp_path).suffix == ".dcm"
    for data in (b"GIF89a" + bytes(20), b"<svg></svg>", b"BM" + bytes(60), b"II*\x00" + bytes(20)):
        with pytest.raises(ImageReadError, match="PNG, JPEG or DICOM"):
            save_upload(data, "x.png", tmp_dir=tmp_path)


def test_upload_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigError):
        save_upload("text", "x.png", tmp_dir=tmp_path)
    with pytest.raises(ConfigError):
        save_upload(_png_bytes(), None, tmp_dir=tmp_path)
    assert safe_upload_name("../x.tar.gz", ".png") == "x.tar.png"
