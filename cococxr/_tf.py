"""The package's one import point for TensorFlow and tf-keras.

Every module that needs Keras does ``from cococxr._tf import tf, keras``. ``keras`` here
is the ``tf_keras`` package (Keras 2 API), never Keras 3.
"""
from cococxr import _env  # noqa: F401  (sets TF_USE_LEGACY_KERAS / SM_FRAMEWORK first)

import tensorflow as tf
import tf_keras as keras

if not keras.__version__.startswith("2."):  # pragma: no cover - guarded misconfiguration
    raise ImportError(
        f"cococxr needs tf-keras (Keras 2), found Keras {keras.__version__}. "
        "Install tf-keras matching your TensorFlow version."
    )
if getattr(tf.keras, "__version__", "2.").startswith("3."):
    raise ImportError(
        "TensorFlow was imported before cococxr with TF_USE_LEGACY_KERAS unset, so tf.keras "
        "is Keras 3. Import cococxr before tensorflow, or set TF_USE_LEGACY_KERAS=1 and "
        "SM_FRAMEWORK=tf.keras in the environment."
    )

__all__ = ["tf", "keras"]
