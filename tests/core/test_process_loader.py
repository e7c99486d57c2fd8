"""ProcessLoader: batches loaded by worker processes into shared memory, exactly as batch_at makes them."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from cococxr.batches import ClassificationBatches, ProcessLoader, SegmentationBatches, WorkerError
from cococxr.errors import ConfigError, ImageReadError
from helpers import labelled_coco, tiny_coco


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return tiny_coco(tmp_path_factory.mktemp("processes"), n_train=10, n_val=2)[0]


def _batches(train, **kwargs):
    options = dict(batch_size=3, input_size=32, seed=5)
    return SegmentationBatches(str(train), ["lung"], **{**options, **kwargs})


def _same(got, expected) -> bool:
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    return len(got) == len(expected) and all(g.dtype == e.dtype and np.array_equal(g, e)
                                             for g, e in zip(got, expected))


def test_passes_are_the_epochs_batch_at_makes(train_file):
    batches = _batches(train_file, augment="light")
    assert len(batches) == 4  # 10 images in batches of 3: the last one holds 1
    with ProcessLoader(batches, workers=2) as loader:
        for epoch in range(3):  # the workers run ahead across the epoch ends
            got = list((np.array(x), np.array(y)) for x, y in loader)
            assert len(got) == 4 and len(got[-1][0]) == 1
            assert all(_same(g, batches.batch_at(epoch, i)) for i, g in enumerate(got))
    first, second = (batches.batch_at(e, 0)[0] for e in (0, 1))
    assert not np.array_equal(first, second)  # each epoch is shuffled and augmented anew


def test_out_of_order_keys_and_jumps(train_file):
    batches = _batches(train_file)
    keys = [(0, 2), (0, 0), (5, 3), (5, 0), (5, 1), (1, 1), (1, 1), (0, 3)]
    with ProcessLoader(batches, workers=2, prefetch=3) as loader:
        for epoch, index in keys:
            assert _same(loader.get(epoch, index, copy=True), batches.batch_at(epoch, index))
        with pytest.raises(IndexError, match="out of range"):
            loader.get(0, 4)


def test_predict_and_classification(train_file):
    predict = _batches(train_file, subset="predict")
    labels = ClassificationBatches(labelled_coco(train_file), ["COVID-19", "No Finding"], batch_size=4,
                                   input_size=24, balance="batch", seed=1)
    for batches in (predict, labels):
        with ProcessLoader(batches, workers=1) as loader:
            for epoch in range(2):
                got = [loader.get(epoch, i, copy=True) for i in range(len(batches))]
                assert all(_same(g, batches.batch_at(epoch, i)) for i, g in enumerate(got))
    assert isinstance(got[0], tuple) and got[0][1].shape == (4, 2)


def test_held_batches_are_never_overwritten(train_file):
    """A consumer that keeps every batch gets correct ones (loaded in its own process) and a warning."""
    batches = _batches(train_file)
    with ProcessLoader(batches, workers=2, prefetch=2) as loader:
        with pytest.warns(UserWarning, match="holds all 2 shared-memory slots"):
            held = [list(loader) for _ in range(2)]
    assert all(_same(batch, batches.batch_at(epoch, i)) for epoch, passes in enumerate(held)
               for i, batch in enumerate(passes))


def test_released_slots_are_reused_without_warning(train_file):
    batches = _batches(train_file)
    with ProcessLoader(batches, workers=2, prefetch=2) as loader, warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*shared-memory slots")
        for epoch in range(3):
            for i, (x, y) in enumerate(loader):
                assert _same((x, y), batches.batch_at(epoch, i))
                del x, y


def test_worker_errors_name_the_file_and_skips_reach_the_report(tmp_path):
    train = tiny_coco(tmp_path, n_train=6, n_val=1)[0]
    broken = _batches(train, shuffle=False)
    name = broken.coco.imgs[broken.image_ids[4]]["file_name"]
    (broken.coco.image_root / name).write_bytes(b"not a png")
    with ProcessLoader(broken, workers=2) as loader:
        assert _same(loader.get(0, 0), broken.batch_at(0, 0))
        with pytest.raises(ImageReadError, match=name) as raised:
            loader.get(0, 1)
    assert "in a loader worker process" in str(raised.value.__cause__)

    skipping = _batches(train, shuffle=False, on_error="skip")
    with ProcessLoader(skipping, workers=2) as loader:
        list(loader)
    report = skipping.error_report
    assert report["skipped"] == 1 and list(report["failed"]) == [skipping.image_ids[4]]
    assert name in report["failed"][skipping.image_ids[4]]


def test_a_dead_worker_raises_instead_of_hanging(train_file):
    loader = ProcessLoader(_batches(train_file), workers=2)
    loader.get(0, 0, copy=True)
    victim = loader._processes[0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(timeout=10)
    with pytest.raises(WorkerError, match="exit code -9"):
        loader.get(0, 1)
    with pytest.raises(WorkerError, match="closed"):
        loader.get(0, 2)
    assert not any(p.is_alive() for p in [victim, *loader._processes])


def test_stuck_workers_time_out_instead_of_hanging(train_file):
    loader = ProcessLoader(_batches(train_file), workers=2, timeout=1)
    loader.get(0, 0, copy=True)
    processes = list(loader._processes)
    for process in processes:  # alive, but doing nothing: as a read hung on a network disk
        os.kill(process.pid, signal.SIGSTOP)
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"within timeout=1 s while batch 1 of epoch 7 .*stuck"):
        loader.get(7, 1)  # far ahead of the prefetch: not loaded yet
    assert time.monotonic() - start < 10
    for process in processes:
        process.join(timeout=10)
    assert not any(p.is_alive() for p in processes)
    with pytest.raises(WorkerError, match="closed"):
        loader.get(0, 0)
    for bad in (0, -1.5, True, "5"):
        with pytest.raises(ConfigError, match="timeout must be a positive number"):
            ProcessLoader(_batches(train_file), timeout=bad)


def test_close_stops_the_workers(train_file):
    loader = ProcessLoader(_batches(train_file), workers=2)
    loader.get(0, 0, copy=True)
    processes = list(loader._processes)
    assert all(p.is_alive() for p in processes)
    loader.close()
    loader.close()  # idempotent
    assert not any(p.is_alive() for p in processes)


def _double(image):
    return image * 2


def test_what_cannot_reach_a_worker_is_a_config_error(train_file):
    lambda_loader = ProcessLoader(_batches(train_file, preprocessing=lambda image: image), workers=1,
                                  start_method="spawn")
    with pytest.raises(ConfigError, match="does not pickle"):
        lambda_loader.get(0, 0)
    with ProcessLoader(_batches(train_file, preprocessing=_double), workers=1, start_method="spawn") as loader:
        assert _same(loader.get(0, 0, copy=True), _batches(train_file, preprocessing=_double).batch_at(0, 0))
    with pytest.raises(ConfigError, match="workers must be"):
        ProcessLoader(_batches(train_file), workers=0)
    with pytest.raises(ConfigError, match="start_method"):
        ProcessLoader(_batches(train_file), start_method="threads")


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_other_start_methods_give_the_same_batches(train_file, start_method):
    if start_method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {start_method} here")
    batches = _batches(train_file, augment="light")
    with ProcessLoader(batches, workers=2, start_method=start_method) as loader:
        assert all(_same(loader.get(1, i, copy=True), batches.batch_at(1, i)) for i in range(len(batches)))


def test_batch_at_writes_x_into_out_unless_a_function_makes_it_anew(train_file):
    for preprocessing, in_place in ((None, True), (_double, False)):
        batches = _batches(train_file, preprocessing=preprocessing)
        expected = batches.batch_at(0, 1)
        out = [np.full_like(part, -1) for part in expected]
        got = batches.batch_at(0, 1, out=out)
        assert (got[0] is out[0]) is in_place
        assert _same(got, expected)
    with pytest.raises(ValueError, match="out must be float32"):
        batches.batch_at(0, 1, out=[np.zeros((2, 32, 32, 3), np.float32)])


FORK_AFTER_OPENCV_THREADS = """
import sys
import time
from concurrent.futures import ThreadPoolExecutor
import cv2, numpy as np
from cococxr.batches import ProcessLoader, SegmentationBatches
big = np.random.default_rng(0).integers(0, 255, (2048, 2048), dtype=np.uint8)
with ThreadPoolExecutor(2) as pool:  # OpenCV's own thread pool is busy in the parent
    list(pool.map(lambda _: cv2.GaussianBlur(cv2.resize(big, (1500, 1500)), (9, 9), 0), range(8)))
batches = SegmentationBatches(sys.argv[1], ["lung"], batch_size=3, input_size=32)
with ProcessLoader(batches, workers=2, start_method="fork") as loader:
    print(sum(len(x) for x, _ in loader))
"""


def test_forked_workers_do_not_wait_on_the_parents_opencv_threads(train_file):
    """A forked worker that reconfigured OpenCV's threads would wait for ever on the parent's pool."""
    done = subprocess.run([sys.executable, "-c", FORK_AFTER_OPENCV_THREADS, str(train_file)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "10"


class _OddError(Exception):
    pass


def _failing(image):
    raise _OddError("no such window")


def test_other_exceptions_come_back_as_a_worker_error_with_their_name(train_file):
    with ProcessLoader(_batches(train_file, preprocessing=_failing), workers=1) as loader:
        with pytest.raises(WorkerError, match="_OddError: no such window") as raised:
            loader.get(0, 0)
    assert "_failing" in str(raised.value.__cause__)  # the worker's traceback
