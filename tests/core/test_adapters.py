"""One framework-free core, four adapters: tf-keras Sequence, Keras 3 PyDataset, torch DataLoader, tf.data.

For one seed every adapter yields the same batches (images, masks, labels, order), with
augmentation and balanced sampling, for any number of workers; Keras 3 and smp models
train from them.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cococxr.batches import ClassificationBatches, SegmentationBatches
from helpers import labelled_coco, tiny_coco

EPOCHS = 2


@pytest.fixture(scope="module")
def coco_files(tmp_path_factory):
    return tiny_coco(tmp_path_factory.mktemp("adapters"), n_train=6, n_val=3)


def _segmentation(train, **kwargs):
    options = dict(batch_size=4, input_size=32, channels=3, augment="light", seed=7)
    return SegmentationBatches(str(train), ["lung"], **{**options, **kwargs})


def _epochs(batches_of_epoch) -> list:
    """Every batch of EPOCHS epochs as tuples of numpy arrays."""
    return [tuple(np.asarray(part) for part in batch) for epoch in range(EPOCHS) for batch in batches_of_epoch(epoch)]


def _reference(train) -> list:
    core = _segmentation(train)
    out = []
    for _ in range(EPOCHS):
        out += [core[i] for i in range(len(core))]
        core.on_epoch_end()
    return [tuple(batch) for batch in out]


def _assert_same(batches, reference):
    assert len(batches) == len(reference) == EPOCHS * 2
    for got, want in zip(batches, reference):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_tf_keras_sequence_and_tf_data_yield_the_core_batches(coco_files):
    from cococxr.sequences import CocoSegmentationSequence

    train, _ = coco_files
    reference = _reference(train)
    sequence = CocoSegmentationSequence(str(train), ["lung"], batch_size=4, input_size=32, channels=3,
                                        augment="light", seed=7)

    def sequence_epoch(epoch):
        batches = [sequence[i] for i in range(len(sequence))]
        sequence.on_epoch_end()
        return batches

    _assert_same(_epochs(sequence_epoch), reference)
    dataset = _segmentation(train).as_tf_dataset()
    _assert_same(_epochs(lambda epoch: [tuple(t.numpy() for t in b) for b in dataset]), reference)


@pytest.mark.torch
@pytest.mark.parametrize("num_workers", [0, 2])
def test_torch_loader_yields_the_core_batches_for_any_number_of_workers(coco_files, num_workers):
    torch_data = pytest.importorskip("cococxr.torch_data")
    train, _ = coco_files
    reference = _reference(train)
    loader = torch_data.make_loader(_segmentation(train), num_workers=num_workers, channels_first=False)
    _assert_same(_epochs(lambda epoch: [tuple(t.numpy() for t in batch) for batch in loader]), reference)
    images, masks = next(iter(torch_data.make_loader(_segmentation(train))))
    assert tuple(images.shape) == (4, 3, 32, 32) and tuple(masks.shape) == (4, 1, 32, 32)


def test_keras3_pydataset_yields_the_core_batches_with_two_workers(coco_files):
    keras3 = pytest.importorskip("cococxr.keras3")
    train, _ = coco_files
    reference = _reference(train)
    for workers in (1, 2):
        dataset = keras3.CocoPyDataset(_segmentation(train), workers=workers)

        def epoch_of(epoch, dataset=dataset):
            batches = [dataset[i] for i in range(len(dataset))]
            dataset.on_epoch_end()
            return batches

        _assert_same(_epochs(epoch_of), reference)


def test_balanced_classification_batches_match_across_adapters(coco_files):
    from cococxr.sequences import CocoClassificationSequence

    train, _ = coco_files
    labelled = labelled_coco(train)
    options = dict(batch_size=4, input_size=32, channels=1, balance="batch", equalize="hist", seed=3)
    core = ClassificationBatches(labelled, ["COVID-19", "No Finding"], **options)
    sequence = CocoClassificationSequence(labelled, ["COVID-19", "No Finding"], **options)
    for _ in range(EPOCHS):
        for i in range(len(core)):
            for a, b in zip(core[i], sequence[i]):
                np.testing.assert_array_equal(a, b)
            assert set(core[i][1].argmax(axis=1)) == {0, 1}  # both classes in every batch
        core.on_epoch_end()
        sequence.on_epoch_end()


def _run(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "SM_FRAMEWORK",
                                                                     "KERAS_BACKEND")}
    environment.update({k: v for k, v in env.items() if v is not None})
    environment["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, timeout=300)


KERAS3_FIT = """
    import keras
    from cococxr.keras3 import segmentation_dataset
    data = segmentation_dataset({train!r}, ["lung"], batch_size=3, input_size=32, channels=1, augment="light",
                                seed=0, workers=2)
    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))
    model.compile("adam", "binary_crossentropy")
    served = []
    batch_at = data.batches.batch_at
    data.batches.batch_at = lambda epoch, index: served.append(epoch) or batch_at(epoch, index)
    history = model.fit(data, epochs=3, shuffle=False, verbose=0, callbacks=[data.epochs])
    losses = history.history["loss"]
    assert len(losses) == 3 and all(l == l for l in losses), losses
    # fit's epoch e trained on the batches' epoch e (warm-up fetches come first, from epoch 0)
    assert served[-3 * len(data):] == [0, 0, 1, 1, 2, 2], served
    import sys
    assert "tf_keras" not in sys.modules, "the Keras 3 adapter imported tf-keras"
    print("backend", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_a_keras3_model_trains_from_the_pydataset(coco_files, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    train, _ = coco_files
    done = _run(KERAS3_FIT.format(train=str(train)), KERAS_BACKEND=backend)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"backend {backend}" in done.stdout


SMP_FIT = """
    import sys
    import numpy as np
    import segmentation_models_pytorch as smp
    import torch
    from cococxr.batches import SegmentationBatches
    from cococxr.torch_data import make_loader

    torch.manual_seed(0)
    batches = SegmentationBatches({train!r}, ["lung"], batch_size=4, input_size=32, channels=3, augment="light",
                                  seed=7)
    model = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = make_loader(batches, num_workers=2)
    losses = []
    for _ in range(2):
        for images, masks in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images), masks)
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
    assert len(losses) == 4 and all(np.isfinite(losses)), losses
    assert "tensorflow" not in sys.modules and "tf_keras" not in sys.modules, "the torch path loaded TensorFlow"
    print("losses", losses)
"""


@pytest.mark.torch
def test_an_smp_unet_trains_from_the_torch_loader_with_two_workers(coco_files):
    """In a process of its own: the torch path never loads TensorFlow.

    (Importing segmentation_models_pytorch where TensorFlow is loaded crashes the process
    in triton's import, measured with torch 2.14 / TF 2.21: smp stays out of this one.)
    """
    if importlib.util.find_spec("segmentation_models_pytorch") is None:
        pytest.skip("segmentation_models_pytorch is not installed (baseline extra)")
    train, _ = coco_files
    done = _run(SMP_FIT.format(train=str(train)))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "losses" in done.stdout
