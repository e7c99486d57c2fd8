"""The environment of the tf-keras path, set only when that path is imported.

segmentation_models and the tf-keras models in this package need the Keras 2 API:

* ``TF_USE_LEGACY_KERAS=1`` makes ``tf.keras`` resolve to the ``tf_keras`` package
  instead of Keras 3 (which is installed alongside by TensorFlow >= 2.16);
* ``SM_FRAMEWORK=tf.keras`` makes ``segmentation_models`` build on ``tf.keras``
  instead of the standalone ``keras`` package (with which ``import
  segmentation_models`` fails: "module 'keras.utils' has no attribute
  'generic_utils'").

``import cococxr`` sets nothing: :func:`use_tf_keras` runs when :mod:`cococxr._tf` (the
tf-keras import point: Sequences, models, training) is first imported, without
overriding a value the user chose. The Keras 3 (:mod:`cococxr.keras3`) and torch
(:mod:`cococxr.torch_data`) adapters never call it. Never ``import keras`` on the tf-keras
path: Keras 3 objects do not mix with tf-keras ones.
"""
import os

TF_KERAS_ENVIRONMENT = {"TF_USE_LEGACY_KERAS": "1", "SM_FRAMEWORK": "tf.keras", "TF_CPP_MIN_LOG_LEVEL": "2"}


def use_tf_keras() -> None:
    """Set the tf-keras environment variables that the user has not set."""
    for name, value in TF_KERAS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
