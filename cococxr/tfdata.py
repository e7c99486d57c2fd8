"""``tf.data`` over the framework-free batches: TensorFlow only, no Keras of either flavour."""
from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf


def as_tf_dataset(batches, num_parallel_calls: int | None = None) -> tf.data.Dataset:
    """The batches of ``batches`` (a :class:`cococxr.batches.CocoBatches`) as a ``tf.data.Dataset``.

    Each full pass over the dataset is one epoch, starting from the batches' current
    epoch and counting up by itself (``fit(ds, epochs=n)`` sees the epochs a Sequence
    would). Built by a parallel map: whole batches are mapped (one Python call per batch, not per item) with
    ``num_parallel_calls`` threads (default ``AUTOTUNE``) in a deterministic order, then
    prefetched.
    """
    specs = batches.item_specs()  # first: raises for sources tf.data cannot run (a model as mask_with)
    epochs = itertools.count(batches.epoch)

    def indices():
        epoch = next(epochs)
        for b, examples in enumerate(batches._sampler.epoch_indices(epoch)):
            yield np.asarray(examples, np.int64), epoch, b * batches.batch_size

    def load(examples, epoch, first):
        outputs = tf.numpy_function(lambda e, ep, f: list(batches._batch(e, int(ep), int(f))),
                                    [examples, epoch, first], [tf.as_dtype(dtype) for dtype, _ in specs],
                                    stateful=False)
        for tensor, (_, shape) in zip(outputs, specs):
            tensor.set_shape((None, *shape))
        return outputs[0] if batches.subset == "predict" else tuple(outputs)

    scalar = tf.TensorSpec((), tf.int64)
    dataset = tf.data.Dataset.from_generator(
        indices, output_signature=(tf.TensorSpec((None,), tf.int64), scalar, scalar))
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    dataset = dataset.map(load, num_parallel_calls=parallel, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


__all__ = ["as_tf_dataset"]
