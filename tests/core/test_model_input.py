"""One model-input path: every caller gives a model the same array for the same spec (real X-rays).

Training Sequences, evaluate/predict (``predict_sequence``), the lung masker, the classifier's
Sequence at training and at inference (which Grad-CAM also uses), and the app all prepare
images through :class:`cococxr.model_input.ModelInput`; these tests compare their arrays
bit for bit on hand-masked chest X-rays from ``../shared/data/cxr-lungs``.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from helpers import shared
from cococxr.coco import CocoDataset
from cococxr.converters.mask_folders import convert_mask_folders
from cococxr.errors import ConfigError
from cococxr.io import read_image
from cococxr.model_input import ModelInput
from cococxr.pipelines.engine.segmenter import resize_probabilities
from cococxr.preprocess import equalize_hist, resize_image

N_IMAGES = 6
SEG = ModelInput(48, channels=1, equalize="hist")
CLS = ModelInput(64, channels=3, equalize="hist")


@pytest.fixture(scope="module")
def xrays(tmp_path_factory):
    """A COCO file of real X-rays of several sizes with their hand-drawn lung masks and a label each."""
    root = shared("cxr-lungs")
    folder = tmp_path_factory.mktemp("xrays")
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    names = sorted(p.name for p in (root / "masks").glob("*.png"))[:N_IMAGES]
    for name in names:
        shutil.copy(root / "images" / name, folder / "images" / name)
        shutil.copy(root / "masks" / name, folder / "masks" / name)
    converted, _ = convert_mask_folders(folder / "images", folder / "masks", folder / "lungs.json",
                                        class_name="lung")
    dataset = converted.dataset
    cats = [dataset["categories"][0]["id"] + 1, dataset["categories"][0]["id"] + 2]
    dataset["categories"] += [{"id": cats[0], "name": "COVID-19", "supercategory": "finding"},
                              {"id": cats[1], "name": "No Finding", "supercategory": "finding"}]
    next_id = max(a["id"] for a in dataset["annotations"]) + 1
    for k, record in enumerate(dataset["images"]):
        dataset["annotations"].append({"id": next_id + k, "image_id": record["id"], "category_id": cats[k % 2]})
    coco = CocoDataset(dataset, folder / "images")
    assert len({(r["height"], r["width"]) for r in coco.imgs.values()}) > 1  # several native sizes
    return coco


def _decoded(coco, image_ids):
    return [read_image(coco.image_path(i)) for i in image_ids]


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory):
    """A real tf-keras U-Net stand-in (lung = brighter than mid-gray) saved with its model card."""
    from cococxr._tf import keras
    from cococxr.models.io import save_model
    from cococxr.pipelines.engine.cards import write_card

    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.full((1, 1, 1, 1), 20.0, np.float32), np.array([-10.0], np.float32)])
    path = tmp_path_factory.mktemp("seg") / "lungs.h5"
    save_model(model, path)
    write_card(path, "segmentation", ["lung"], SEG, arch="test")
    return path


def test_the_order_is_equalise_at_native_size_then_resize(xrays):
    image = _decoded(xrays, [next(iter(xrays.imgs))])[0]
    expected = resize_image(equalize_hist(image if image.ndim == 2 else image[..., 0]), (48, 48))
    np.testing.assert_array_equal(SEG.prepare(image), expected)
    np.testing.assert_array_equal(SEG([image])[0, ..., 0], expected * np.float32(1 / 255))


def test_segmentation_paths_give_one_array(xrays, seg_model):
    from cococxr.pipelines.engine.segmenter import LungMasker, predict_sequence
    from cococxr.pipelines.engine.cards import input_spec
    from cococxr.sequences import CocoSegmentationSequence

    training = CocoSegmentationSequence(xrays, ["lung"], batch_size=N_IMAGES, input_size=48, channels=1,
                                        equalize="hist", shuffle=False, include_empty=True)
    ids = training.batch_image_ids(0)
    x_train = training[0][0]
    masker = LungMasker(seg_model)
    spec = input_spec(masker.model, seg_model)
    assert spec.model_input() == SEG
    x_predict = predict_sequence(xrays, spec, ids, batch_size=N_IMAGES)[0]  # evaluate and predict
    x_direct = SEG(_decoded(xrays, ids))
    x_masker = masker.model_input(_decoded(xrays, ids))
    for other in (x_predict, x_direct, x_masker):
        np.testing.assert_array_equal(other, x_train)


def _classifier(folder, seg_model):
    from cococxr._tf import keras
    from cococxr.models.io import save_model
    from cococxr.pipelines.engine.cards import ClassifierSidecar, write_sidecar

    inputs = keras.Input((64, 64, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probabilities")(x))
    path = folder / "classifier.h5"
    save_model(model, path)
    sidecar = ClassifierSidecar(["COVID-19", "No Finding"], "COVID-19,No Finding",
                                {"COVID-19": ["COVID-19"], "No Finding": ["No Finding"]}, 64, channels=3,
                                equalize="hist", mask_with=str(seg_model.resolve()))
    write_sidecar(path, sidecar)
    return path, sidecar


def test_a_classifier_masked_by_a_unet_sees_at_inference_what_it_saw_in_training(xrays, seg_model, tmp_path):
    from cococxr.pipelines.app.analysis import Models, classify
    from cococxr.pipelines.classification.data import labelled_coco
    from cococxr.pipelines.engine.classifier import classifier_sequence, load_classifier, mask_source

    cls_path, trained_with = _classifier(tmp_path, seg_model)
    train_coco = labelled_coco(xrays, trained_with)
    training = classifier_sequence(train_coco, trained_with, masker=mask_source(trained_with.mask_with),
                                   batch_size=N_IMAGES)  # as `train classifier --mask-with MODEL` builds it
    ids = training.batch_image_ids(0)
    x_train = training[0][0]

    model, sidecar = load_classifier(cls_path)  # evaluate, predict and Grad-CAM start here
    masker = mask_source(sidecar.mask_with, sidecar.mask_classes)
    inference = classifier_sequence(xrays, sidecar, masker=masker, subset="predict", batch_size=N_IMAGES,
                                    image_ids=ids)
    np.testing.assert_array_equal(inference[0], x_train)
    models = Models(masker=masker, classifier=model, sidecar=sidecar, seg_path=str(seg_model),
                    cls_path=str(cls_path))
    for k, image_id in enumerate(ids):  # the app
        np.testing.assert_array_equal(classify(models, xrays, image_id)[0], x_train[k])

    # and by hand: the U-Net fed from the decoded film as in its training, the classifier as in its own
    expected = []
    for image in _decoded(xrays, ids):
        prob = masker.model.predict_on_batch(SEG([image]))[0]
        lung = (resize_probabilities(np.asarray(prob, np.float32), 64, 64)[..., 0] > 0.5).astype(np.uint8)
        assert 0 < lung.mean() < 1
        expected.append(CLS.masked(CLS.prepare(image), lung))
    np.testing.assert_array_equal(CLS.batch(expected), x_train)


def test_model_input_refuses_bad_specs():
    with pytest.raises(ConfigError, match="channels must be one of"):
        ModelInput(64, channels=2)
    with pytest.raises(ConfigError, match="equalize must be one of"):
        ModelInput(64, equalize="gamma")
    with pytest.raises(ConfigError, match="input_size must be positive"):
        ModelInput((0, 64))
    with pytest.raises(ConfigError, match="normalises RGB channels"):
        ModelInput(64, channels=1, preprocessing="resnet18")
    with pytest.raises(ConfigError, match="cannot be recorded"):
        ModelInput(64, preprocessing=lambda x: x).describe()


def test_the_composite_follows_the_same_order_within_rounding(xrays, seg_model, tmp_path):
    """The one-file composite runs the same steps in float32 TF ops: masks agree, inputs within grey levels."""
    from cococxr._tf import keras
    from cococxr.models.composite import build_segment_then_classify
    from cococxr.models.io import load_model
    from cococxr.pipelines.engine.classifier import classifier_sequence, mask_source

    cls_path, sidecar = _classifier(tmp_path, seg_model)
    masker = mask_source(sidecar.mask_with)
    sequence = classifier_sequence(xrays, sidecar, masker=masker, subset="predict", batch_size=1)
    composite = build_segment_then_classify(masker.model, load_model(cls_path, compile=False), seg_input=SEG,
                                            cls_input=CLS, channels=1)
    seen = keras.Model(composite.input, composite.get_layer("equalize").output)
    agree, differences = [], []
    for index, image in enumerate(_decoded(xrays, xrays.imgs)):
        x = (image.astype(np.float32) / 255)[np.newaxis, ..., np.newaxis]
        python_path = sequence[index][0, ..., 0]
        graph = np.asarray(seen.predict(x, verbose=0))[0, ..., 0]
        agree.append(np.mean((python_path > 0) == (graph > 0)))
        differences.append(np.abs(python_path - graph))
    differences = np.concatenate([d.ravel() for d in differences])
    print(f"composite vs Python path: mask agreement min {min(agree):.4f}, input |diff| median "
          f"{np.median(differences) * 255:.2f} mean {np.mean(differences) * 255:.2f} "
          f"max {differences.max() * 255:.1f} grey levels")
    assert min(agree) > 0.99  # the lung masks (and so what is zeroed) agree
    assert np.median(differences) == 0 and np.mean(differences) < 0.5 / 255
