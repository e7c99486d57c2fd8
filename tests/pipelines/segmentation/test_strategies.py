"""Distribution strategies on CPU: MirroredStrategy over two logical devices, and two
MultiWorkerMirroredStrategy workers on loopback ports, each training 2 steps of a tiny model.

Each run is a subprocess (logical devices and collective ops must be configured before
TensorFlow initialises) with a time limit; a process still running at the limit is killed.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cococxr.errors import ConfigError
from helpers import tiny_coco

TIMEOUT = 900  # generous: on a heavily shared 2-core machine a multi-worker run took ~9 min

SCRIPT = """
import json
import cococxr
from cococxr._tf import tf
if {logical_cpus}:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * {logical_cpus})
from cococxr.pipelines.segmentation.train import train_segmentation
result = train_segmentation(train={train!r}, val={val!r}, out={out!r}, strategy={strategy!r},
                            arch="plain_unet", filters=[4, 8], input_size=64, epochs=1, steps_per_epoch=2,
                            validation_steps=1,
                            batch_size=2, progress=0, overlays=1, tensorboard=False)
print("RESULT " + json.dumps({{"run_dir": result["run_dir"], "metrics": result["metrics"]}}))
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update({"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2", **extra})
    return env


def _script(train, val, out, strategy: str, logical_cpus: int = 0) -> str:
    return SCRIPT.format(train=str(train), val=str(val), out=str(out),
                         strategy=strategy, logical_cpus=logical_cpus)


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def _run_all(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """Wait for every process within TIMEOUT seconds; kill them all on timeout."""
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            outputs.append((proc.returncode, out, err))
    except subprocess.TimeoutExpired:
        tails = []
        for proc in procs:
            proc.kill()
            tails.append(proc.communicate()[1][-1500:])
        pytest.fail(f"strategy run did not finish within {TIMEOUT} s (processes killed); stderr tails:\n"
                    + "\n---\n".join(tails))
    return outputs


def _free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("strategy-data")
    return tiny_coco(folder)


def _check_run(result: dict, replicas: int) -> None:
    run = Path(result["run_dir"])
    for name in ("config.json", "model.h5", "history.csv", "metrics.json"):
        assert (run / name).is_file(), name
    metrics = result["metrics"]
    assert metrics["replicas"] == replicas and 0.0 <= metrics["dice"] <= 1.0


def test_mirrored_strategy_on_two_logical_cpus(tiny, tmp_path):
    train, val = tiny
    proc = subprocess.Popen([sys.executable, "-c", _script(train, val, tmp_path / "run", "mirrored", 2)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    [(code, out, err)] = _run_all([proc])
    assert code == 0, err[-3000:]
    result = _result(out)
    _check_run(result, replicas=2)
    assert result["metrics"]["strategy"] == "mirrored"


def test_multiworker_strategy_with_two_local_workers(tiny, tmp_path):
    train, val = tiny
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _script(train, val, tmp_path / "run", "multiworker")],
            env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = _run_all(procs)
    for code, _, err in outputs:
        assert code == 0, err[-3000:]
    chief, other = (_result(out) for _, out, _ in outputs)
    _check_run(chief, replicas=2)
    assert other["run_dir"] is None and other["metrics"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_strategy_errors_are_config_errors(tiny, monkeypatch):
    from cococxr.pipelines.engine.distribute import make_strategy
    from cococxr.pipelines.segmentation.train import train_segmentation

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        make_strategy("multiworker")
    with pytest.raises(ConfigError, match="unknown strategy"):
        make_strategy("tpu")
    train, val = tiny
    with pytest.raises(ConfigError, match="max_train_seconds is not supported"):
        train_segmentation(train=str(train), val=str(val), strategy="multiworker", max_train_seconds=60)
