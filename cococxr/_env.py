"""The one place that configures the Keras flavour before TensorFlow loads.

segmentation_models and the tf-keras models in this package need the Keras 2 API:

* ``TF_USE_LEGACY_KERAS=1`` makes ``tf.keras`` resolve to the ``tf_keras`` package
  instead of Keras 3 (which is installed alongside by TensorFlow >= 2.16);
* ``SM_FRAMEWORK=tf.keras`` makes ``segmentation_models`` build on ``tf.keras``
  instead of the standalone ``keras`` package (with which ``import
  segmentation_models`` fails: "module 'keras.utils' has no attribute
  'generic_utils'").

Importing :mod:`cococxr` sets both (without overriding a value the user chose), so
``import cococxr`` must come before ``import tensorflow`` in user code. Never
``import keras`` in this code base: Keras 3 objects do not mix with tf-keras ones.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations must not look for updates offline
