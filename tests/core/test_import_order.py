"""The import-order matrix: cococxr before/after TensorFlow, TF_USE_LEGACY_KERAS set/unset, each adapter.

Every cell runs in a fresh interpreter and either works or raises the documented error.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

USES_TF_KERAS = """
    from cococxr.sequences import CocoSegmentationSequence
    from cococxr._tf import keras
    assert keras.__version__.startswith("2.")
    import tensorflow as tf
    assert tf.keras.layers.Dense is keras.layers.Dense, "tf.keras is not tf-keras"
"""
USES_KERAS3 = """
    import keras, sys
    from cococxr.keras3 import CocoPyDataset
    assert keras.__version__.startswith("3.")
"""
USES_TORCH = """
    from cococxr.torch_data import make_loader
    assert "tf_keras" in LOADED or "tf_keras" not in sys.modules, "the torch adapter imported tf-keras"
"""
BEFORE = {
    "cococxr": "import cococxr",
    "tensorflow": "import tensorflow",
    "tensorflow, tf.keras used": "import tensorflow as tf; tf.keras.layers.Dense",
    "keras 3": "import keras",
}
ADAPTERS = {"tf-keras": USES_TF_KERAS, "keras3": USES_KERAS3, "torch": USES_TORCH}
TF_KERAS_ERROR = "needs tf.keras to be tf-keras"


def _expected(before: str, legacy: str | None, adapter: str) -> str | None:
    """None when the cell must work, else a fragment of the documented error."""
    if adapter != "tf-keras":
        return None
    if legacy == "0":
        return TF_KERAS_ERROR  # the user chose Keras 3 for tf.keras
    if before == "tensorflow, tf.keras used" and legacy is None:
        return TF_KERAS_ERROR  # tf.keras was resolved to Keras 3 before cococxr could say otherwise
    return None


CELLS = [(b, legacy, a) for b in BEFORE for legacy in (None, "1") for a in ADAPTERS]
CELLS += [("cococxr", "0", a) for a in ADAPTERS]


@pytest.mark.parametrize("before,legacy,adapter", CELLS)
def test_import_order_matrix(before, legacy, adapter):
    if adapter == "torch" and importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (baseline extra)")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "SM_FRAMEWORK", "KERAS_BACKEND")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if legacy is not None:
        env["TF_USE_LEGACY_KERAS"] = legacy
    code = (textwrap.dedent(BEFORE[before]) + "\nimport sys\nLOADED = set(sys.modules)\n"
            + textwrap.dedent(ADAPTERS[adapter]) + "\nprint('WORKS')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    expected = _expected(before, legacy, adapter)
    if expected is None:
        assert done.returncode == 0 and "WORKS" in done.stdout, done.stderr[-2000:]
    else:
        assert done.returncode != 0 and expected in done.stderr, done.stderr[-2000:]
        assert "Keras 3 adapter" in done.stderr  # the message says what to do


def test_import_cococxr_changes_nothing_global():
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "SM_FRAMEWORK")}
    code = textwrap.dedent("""
        import os, sys
        before = dict(os.environ)
        import cococxr
        from cococxr import CocoDataset, SegmentationBatches
        from cococxr.batches import ClassificationBatches
        changed = {k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k)}
        assert changed <= {"LD_LIBRARY_PATH"}, changed  # opencv's own loader sets LD_LIBRARY_PATH
        assert not {"tensorflow", "tf_keras", "keras", "torch"} & set(sys.modules), "a framework was imported"
        print("CLEAN")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "CLEAN" in done.stdout, done.stderr[-2000:]
