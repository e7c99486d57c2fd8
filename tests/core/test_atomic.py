"""Atomic writes: all or nothing, with ordinary file permissions."""
from __future__ import annotations

import os
import stat

import pytest

from cococxr.atomic import atomic_open, atomic_write_json, atomic_write_text
from cococxr.paths import check_relative_name, safe_join
from cococxr.errors import UnsafePathError


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "previous"
    assert os.listdir(tmp_path) == ["out.json"]


def test_nan_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_written_file_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "hi")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


@pytest.mark.parametrize("name", ["../x.png", "/etc/passwd", "a/../../b.png", "C:\\x.png", "\\\\server\\x", "", "a\x00b"])
def test_unsafe_names_are_refused(name, tmp_path):
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, name)


@pytest.mark.parametrize("name", ["a.png", "sub dir/ü ñ.png", "x..y.png"])
def test_ordinary_names_pass(name, tmp_path):
    assert check_relative_name(name) == name
    assert safe_join(tmp_path, name).is_relative_to(tmp_path.resolve())


def test_symlink_escaping_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(UnsafePathError, match="outside the image root"):
        safe_join(root, "link.png")
