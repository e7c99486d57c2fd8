"""The package's one import point for TensorFlow and tf-keras.

Every module that needs Keras 2 does ``from cococxr._tf import tf, keras``. ``keras`` here
is the ``tf_keras`` package, never Keras 3. Importing this module sets the tf-keras
environment (:func:`cococxr._env.use_tf_keras`) before TensorFlow loads.
"""
import os
import sys

from cococxr._env import use_tf_keras

_LEGACY_UNSET = "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS", "0").lower() in ("0", "false")
use_tf_keras()

import tensorflow as tf  # noqa: E402  (after the environment above)
import tf_keras as keras  # noqa: E402

if not keras.__version__.startswith("2."):  # pragma: no cover - guarded misconfiguration
    raise ImportError(
        f"cococxr needs tf-keras (Keras 2), found Keras {keras.__version__}. "
        "Install tf-keras matching your TensorFlow version."
    )
if getattr(tf.keras, "__version__", "2.").startswith("3."):
    raise ImportError(
        "cococxr's tf-keras path (cococxr.sequences, cococxr.models, training) needs tf.keras to be "
        "tf-keras, but TensorFlow already resolved tf.keras to Keras 3"
        + (" (it was imported before cococxr with TF_USE_LEGACY_KERAS unset)" if _LEGACY_UNSET else "")
        + ". Either import cococxr.sequences (or set TF_USE_LEGACY_KERAS=1 and SM_FRAMEWORK=tf.keras) "
        "before anything uses tf.keras, or stay on Keras 3 and use the Keras 3 adapter: "
        "from cococxr.keras3 import CocoPyDataset."
    )

__all__ = ["tf", "keras"]
