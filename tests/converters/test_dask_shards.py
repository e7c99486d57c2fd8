"""Converters over shards on a Dask LocalCluster of 2 workers: byte-identical to one process."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cococxr.cli import main
from cococxr.converters.mask_folders import convert_mask_folders
from cococxr.converters.rle_csv import convert_rle_csv
from cococxr.distributed import SHARDS_PER_THREAD, active_client, dask_engine, shard_bounds
from cococxr.errors import ConfigError, RLEError
from cococxr.rle import kaggle_rle_encode
from helpers import FAST, shared

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch):
    monkeypatch.setenv("COCOCXR_PROGRESS", "0")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local:
        yield local


def uw_tree(root, cases: int = 3, days: int = 2, slices: int = 8):
    """A UW-Madison-style tree (16-bit slices, row-major RLE CSV, three organs), 48 slices by default."""
    lines = ["id,class,segmentation"]
    rng = np.random.default_rng(0)
    for case in range(1, cases + 1):
        for day in range(1, days + 1):
            scans = root / "train" / f"case{case}" / f"case{case}_day{day}" / "scans"
            scans.mkdir(parents=True)
            for slc in range(1, slices + 1):
                cv2.imwrite(str(scans / f"slice_{slc:04d}_40_30_1.50_1.50.png"),
                            rng.integers(0, 4000, (30, 40), dtype=np.uint16))
                for organ in ("large_bowel", "small_bowel", "stomach"):
                    mask = np.zeros((30, 40), np.uint8)
                    if rng.random() < 0.7:
                        y, x = rng.integers(2, 20), rng.integers(2, 30)
                        mask[y:y + rng.integers(2, 9), x:x + rng.integers(2, 9)] = 1
                    rle = kaggle_rle_encode(mask, "row") if mask.any() else ""
                    lines.append(f"case{case}_day{day}_slice_{slc:04d},{organ},{rle}")
    csv = root / "train.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_rle_csv_on_the_cluster_is_byte_identical(cluster, tmp_path):
    csv = uw_tree(tmp_path)
    convert_rle_csv(csv, out=tmp_path / "local.json", preset="uw-madison")
    with dask_engine(cluster.scheduler_address) as client:
        assert active_client() is client
        dataset, report = convert_rle_csv(csv, out=tmp_path / "dask.json", preset="uw-madison")
    assert active_client() is None
    assert len(dataset.imgs) == 48 and report.output == str(tmp_path / "dask.json")
    assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "local.json").read_bytes()


def test_mask_folders_on_the_cluster_are_byte_identical(cluster, sample_dir, tmp_path):
    options = dict(class_name="lung", allow_missing_masks=True, instances=True)
    convert_mask_folders(sample_dir / "images", sample_dir / "masks", tmp_path / "local.json", **options)
    with distributed.Client(cluster.scheduler_address) as client, dask_engine(client):
        convert_mask_folders(sample_dir / "images", sample_dir / "masks", tmp_path / "dask.json", **options)
        assert client.status == "running"  # a client passed in is left open
    assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "local.json").read_bytes()


def test_real_lung_masks_on_the_cluster_match_two_local_workers(cluster, tmp_path):
    lungs = shared("cxr-lungs")
    options = dict(class_name="lung", allow_missing_masks=True)
    convert_mask_folders(lungs / "images", lungs / "masks", tmp_path / "two.json", workers=2, **options)
    with dask_engine(cluster.scheduler_address):
        convert_mask_folders(lungs / "images", lungs / "masks", tmp_path / "dask.json", **options)
    assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "two.json").read_bytes()


def test_cli_flag_runs_the_converter_on_the_scheduler(cluster, tmp_path):
    csv = uw_tree(tmp_path, cases=1, slices=4)
    assert main(["convert", "rle-csv", str(csv), "--preset", "uw-madison", "--out", str(tmp_path / "a.json")]) == 0
    assert main(["--dask-scheduler", cluster.scheduler_address, "convert", "rle-csv", str(csv),
                 "--preset", "uw-madison", "--out", str(tmp_path / "b.json")]) == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_a_bad_row_on_a_worker_names_the_line_and_writes_nothing(cluster, tmp_path):
    csv = uw_tree(tmp_path, cases=1, slices=4)
    lines = csv.read_text().splitlines()
    lines[7] = lines[7].split(",")[0] + ",stomach,5 3 7"  # odd number of tokens
    csv.write_text("\n".join(lines) + "\n")
    with dask_engine(cluster.scheduler_address), pytest.raises(RLEError, match=r"line 8 .*odd number"):
        convert_rle_csv(csv, out=tmp_path / "out.json", preset="uw-madison")
    assert not list(tmp_path.glob("out.json*"))


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    import dask

    csv = uw_tree(tmp_path, cases=1, slices=2)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["--dask-scheduler", "tcp://127.0.0.1:9", "convert", "rle-csv", str(csv),
                     "--preset", "uw-madison", "--out", str(tmp_path / "x.json")])
        assert code == 2 and not (tmp_path / "x.json").exists()
        with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
            with dask_engine("tcp://127.0.0.1:9"):
                pass


@FAST
@given(n=st.integers(0, 5000), threads=st.integers(1, 64), min_size=st.integers(1, 64))
def test_shards_cover_the_items_in_order(n, threads, min_size):
    bounds = shard_bounds(n, threads, min_size)
    assert [i for start, stop in bounds for i in range(start, stop)] == list(range(n))
    assert all(stop > start for start, stop in bounds)
    assert len(bounds) <= max(1, threads * SHARDS_PER_THREAD)
    assert len({stop - start for start, stop in bounds[:-1]}) <= 1  # equal shards, the last one shorter
    if n >= min_size * threads * SHARDS_PER_THREAD:
        assert len(bounds) >= threads  # every worker thread gets work
