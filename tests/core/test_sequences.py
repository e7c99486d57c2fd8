"""CocoSegmentationSequence, CocoClassificationSequence and DataGeneratorFromCocoJson."""
from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from cococxr._tf import keras
from cococxr.coco import CocoBuilder, CocoDataset
from cococxr.errors import CocoFormatError, ConfigError, ImageReadError, RLEError
from cococxr.io import read_image, read_mask, write_png
from cococxr.masks import mask_to_annotations
from cococxr.preprocess import equalize_hist, resize_mask
from cococxr.sequences import (CocoClassificationSequence, CocoSegmentationSequence, DataGeneratorFromCocoJson,
                               ProcessSequence)
from helpers import SAMPLE, shared

CAT_IDS = (3, 7, 12)


# ------------------------------------------------------------------ fixtures
def build_from_folders(images: Path, masks: Path, names: list[str], metadata: Path | None = None,
                       root: Path | None = None) -> CocoDataset:
    """COCO of images + binary lung masks (+ finding labels from metadata.csv)."""
    findings = {}
    if metadata is not None:
        findings = {r["filename"]: r["finding"] for r in csv.DictReader(metadata.open())}
    builder = CocoBuilder()
    lung = builder.add_category("lung", "anatomy")
    for name in names:
        image = read_image(images / name)
        image_id = builder.add_image(name, *image.shape[:2])
        if name in findings:
            builder.add_label(image_id, builder.add_category(findings[name], "finding"))
        if (masks / name).exists():
            for ann in mask_to_annotations(read_mask(masks / name) > 0, lung, image_id):
                builder.add_annotation(image_id, lung, ann["segmentation"])
    return builder.build(root or images)


@pytest.fixture(scope="module")
def sample_coco() -> CocoDataset:
    """The embedded sample: 56 chest X-rays, 51 with lung masks, COVID-19 / No Finding labels."""
    names = sorted(p.name for p in (SAMPLE / "images").glob("*.png"))
    return build_from_folders(SAMPLE / "images", SAMPLE / "masks", names, SAMPLE / "metadata.csv")


def synthetic_coco(root: Path, sizes=((40, 60), (50, 50), (33, 47), (48, 36)), dtype=np.uint8) -> dict:
    """Images with shapes of three classes whose category ids have gaps (3, 7, 12).

    Class 7 is stored as polygons, the others as RLE; there is also an image-level label
    and an unused category 5.
    """
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    images, anns = [], []
    for image_id, (h, w) in enumerate(sizes, start=1):
        write_png(root / f"img{image_id}.png", rng.integers(0, top, (h, w), dtype=dtype, endpoint=True))
        images.append({"id": image_id, "file_name": f"img{image_id}.png", "height": h, "width": w})
        for cat_id in CAT_IDS:
            mask = np.zeros((h, w), np.uint8)
            for _ in range(2):
                y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
                mask[y0:y0 + rng.integers(4, h // 2), x0:x0 + rng.integers(4, w // 2)] = 1
            anns += mask_to_annotations(mask, cat_id, image_id, instances=True, polygons=cat_id == 7)
        anns.append({"image_id": image_id, "category_id": 5, "iscrowd": 0, "area": 0})
    for ann_id, ann in enumerate(anns, start=1):
        ann["id"] = ann_id
    categories = [{"id": c, "name": f"c{c}", "supercategory": "anatomy"} for c in CAT_IDS]
    categories.append({"id": 5, "name": "finding5", "supercategory": "finding"})
    return {"images": images, "annotations": anns, "categories": categories}


def oracle_mask(coco: COCO, image_id: int, cat_id: int, size, flag=cv2.INTER_NEAREST_EXACT) -> np.ndarray:
    """pycocotools annToMask union of one class, resized with nearest neighbour by cv2."""
    info = coco.imgs[image_id]
    mask = np.zeros((info["height"], info["width"]), np.uint8)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=[cat_id])):
        mask |= coco.annToMask(ann)
    return cv2.resize(mask, (size[1], size[0]), interpolation=flag)


def pycocotools(data: dict) -> COCO:
    """A pycocotools index over the geometry annotations of ``data``."""
    coco = COCO()
    coco.dataset = {**data, "annotations": [a for a in data["annotations"] if "segmentation" in a]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def all_items(seq) -> tuple[list, np.ndarray, np.ndarray]:
    """Image ids, X and y of a whole (unshuffled) epoch."""
    ids = [i for b in range(len(seq)) for i in seq.batch_image_ids(b)]
    batches = [seq[b] for b in range(len(seq))]
    return ids, np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def tiny_unet(size, channels: int, outputs: int) -> keras.Model:
    """A two-level U-Net with a few thousand weights."""
    inputs = keras.Input((*size, channels))
    c1 = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    c2 = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(keras.layers.MaxPooling2D()(c1))
    merged = keras.layers.Concatenate()([keras.layers.UpSampling2D()(c2), c1])
    outputs = keras.layers.Conv2D(outputs, 1, activation="sigmoid")(merged)
    return keras.Model(inputs, outputs)


def tiny_cnn(size, channels: int, classes: int) -> keras.Model:
    """Conv, pool, dense softmax."""
    inputs = keras.Input((*size, channels))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


# ------------------------------------------------------------------ masks
@pytest.mark.parametrize("classes", [["c3", "c7", "c12"], ["c12", "c3", "c7"], ["c7"]])
def test_channel_k_is_the_mask_of_classes_k(tmp_path, classes):
    data = synthetic_coco(tmp_path)
    size = (24, 32)
    seq = CocoSegmentationSequence(data, classes, batch_size=3, input_size=size, image_root=tmp_path,
                                   shuffle=False)
    ids, _, y = all_items(seq)
    assert y.shape == (4, *size, len(classes)) and y.dtype == np.float32
    assert set(np.unique(y)) <= {0.0, 1.0}
    coco = pycocotools(data)
    by_name = {c["name"]: c["id"] for c in data["categories"]}
    for image_id, target in zip(ids, y):
        for k, name in enumerate(classes):
            np.testing.assert_array_equal(target[..., k], oracle_mask(coco, image_id, by_name[name], size))


def test_integer_upscale_equals_cv2_inter_nearest(tmp_path):
    """Where cv2's INTER_NEAREST and INTER_NEAREST_EXACT agree (integer upscaling), y equals both."""
    data = synthetic_coco(tmp_path, sizes=((20, 30),))
    seq = CocoSegmentationSequence(data, ["c12", "c3"], batch_size=1, input_size=(60, 90), image_root=tmp_path)
    _, y = seq[0]
    coco = pycocotools(data)
    for k, cat_id in enumerate((12, 3)):
        np.testing.assert_array_equal(y[0, ..., k], oracle_mask(coco, 1, cat_id, (60, 90), cv2.INTER_NEAREST))


def test_background_channel_and_sparse_label_map(tmp_path):
    data = synthetic_coco(tmp_path)
    kw = dict(batch_size=4, input_size=32, image_root=tmp_path, shuffle=False)
    _, plain = CocoSegmentationSequence(data, ["c3", "c7"], **kw)[0]
    _, last = CocoSegmentationSequence(data, ["c3", "c7"], background=True, **kw)[0]
    _, first = CocoSegmentationSequence(data, ["c3", "c7"], background="first", **kw)[0]
    background = 1 - plain.max(axis=3)
    np.testing.assert_array_equal(last[..., :2], plain)
    np.testing.assert_array_equal(last[..., 2], background)
    np.testing.assert_array_equal(first[..., 0], background)
    np.testing.assert_array_equal(first[..., 1:], plain)
    sparse = CocoSegmentationSequence(data, ["c3", "c7"], mask_mode="sparse", **kw)
    _, label_map = sparse[0]
    assert label_map.shape == (4, 32, 32, 1) and label_map.dtype == np.int32
    expected = np.where(plain[..., 1] > 0, 2, np.where(plain[..., 0] > 0, 1, 0))  # later class wins
    np.testing.assert_array_equal(label_map[..., 0], expected)


def test_real_lung_masks_survive_coco_and_resizing():
    data = shared("cxr-lungs")
    names = sorted(p.name for p in (data / "masks").glob("*.png"))[:6]
    coco = build_from_folders(data / "images", data / "masks", names)
    seq = CocoSegmentationSequence(coco, ["lung"], batch_size=6, input_size=(256, 256), shuffle=False)
    ids, x, y = all_items(seq)
    for image_id, target in zip(ids, y):
        drawn = (read_mask(data / "masks" / coco.imgs[image_id]["file_name"]) > 0).astype(np.uint8)
        np.testing.assert_array_equal(target[..., 0], resize_mask(drawn, (256, 256)))
    assert x.shape == (6, 256, 256, 3) and 0 <= x.min() and x.max() <= 1


# ------------------------------------------------------------------ images
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_x_is_scaled_0_1_for_8_and_16_bit(tmp_path, dtype):
    data = synthetic_coco(tmp_path, sizes=((32, 32), (32, 32)), dtype=dtype)
    top = np.iinfo(dtype).max
    for channels in (1, 3):
        seq = CocoSegmentationSequence(data, ["c3"], batch_size=2, input_size=32, channels=channels,
                                       image_root=tmp_path, shuffle=False)
        x, _ = seq[0]
        assert x.shape == (2, 32, 32, channels) and x.dtype == np.float32
        for image, image_id in zip(x, seq.batch_image_ids(0)):
            raw = read_image(tmp_path / f"img{image_id}.png").astype(np.float32) / top
            for c in range(channels):
                np.testing.assert_allclose(image[..., c], raw, atol=1e-6)
    augmented, _ = CocoSegmentationSequence(data, ["c3"], batch_size=2, input_size=32, augment="medium",
                                            image_root=tmp_path, seed=1)[0]
    assert augmented.dtype == np.float32 and 0 <= augmented.min() and 0.9 < augmented.max() <= 1


def test_equalize_and_backbone_preprocessing(tmp_path):
    import segmentation_models as sm

    data = synthetic_coco(tmp_path, sizes=((32, 32),))
    kw = dict(batch_size=1, input_size=32, image_root=tmp_path)
    raw = read_image(tmp_path / "img1.png")
    x, _ = CocoSegmentationSequence(data, ["c3"], equalize="hist", **kw)[0]
    np.testing.assert_allclose(x[0, ..., 0], equalize_hist(raw) / 255.0, atol=1e-6)
    x, _ = CocoSegmentationSequence(data, ["c3"], preprocessing="efficientnetb0", **kw)[0]
    rgb = np.repeat(raw[..., None], 3, axis=2).astype(np.float32)
    np.testing.assert_allclose(x[0], sm.get_preprocessing("efficientnetb0")(rgb), atol=1e-5)
    x, _ = CocoSegmentationSequence(data, ["c3"], preprocessing=lambda a: a - 128, channels=1, **kw)[0]
    np.testing.assert_allclose(x[0, ..., 0], raw.astype(np.float32) - 128, atol=1e-4)
    with pytest.raises(ConfigError, match="channels=3"):
        CocoSegmentationSequence(data, ["c3"], preprocessing="efficientnetb0", channels=1, **kw)
    with pytest.raises(ConfigError, match="No such model"):
        CocoSegmentationSequence(data, ["c3"], preprocessing="efficientnetb99", **kw)


# ------------------------------------------------------------------ selection and batching
def test_unknown_class_lists_the_known_ones(sample_coco):
    with pytest.raises(ConfigError) as info:
        CocoSegmentationSequence(sample_coco, ["lung", "heart"])
    assert "'heart'" in str(info.value) and "'lung'" in str(info.value) and "'COVID-19'" in str(info.value)
    with pytest.raises(ConfigError, match="Normal"):
        CocoClassificationSequence(sample_coco, {"ill": ["COVID-19"], "well": ["Normal"]})


def test_empty_images_partial_batches_and_predict(sample_coco):
    with_masks = CocoSegmentationSequence(sample_coco, ["lung"], batch_size=16, input_size=32)
    every = CocoSegmentationSequence(sample_coco, ["lung"], batch_size=16, input_size=32, include_empty=True)
    assert len(with_masks.image_ids) == 51 and len(every.image_ids) == 56
    assert [len(with_masks[i][0]) for i in range(len(with_masks))] == [16, 16, 16, 3]
    dropped = CocoSegmentationSequence(sample_coco, ["lung"], batch_size=16, input_size=32, drop_last=True)
    assert len(dropped) == 3
    predict = CocoSegmentationSequence(sample_coco, ["lung"], batch_size=16, input_size=32, subset="predict")
    assert len(predict.image_ids) == 56 and predict.image_ids == list(sample_coco.imgs)
    batch = predict[3]
    assert isinstance(batch, np.ndarray) and batch.shape == (8, 32, 32, 3)
    chosen = list(sample_coco.imgs)[10:15][::-1]
    restricted = CocoSegmentationSequence(sample_coco, ["lung"], image_ids=chosen + chosen[:2], batch_size=8,
                                          input_size=32, include_empty=True, shuffle=False)
    assert restricted.image_ids == chosen
    with pytest.raises(ConfigError, match="not in"):
        CocoSegmentationSequence(sample_coco, ["lung"], image_ids=[10_000])


def test_same_seed_same_batches_and_epochs_reshuffle(sample_coco):
    def make(seed):
        return CocoSegmentationSequence(sample_coco, ["lung"], batch_size=8, input_size=32, seed=seed,
                                        augment="medium")

    a, b, c = make(1), make(1), make(2)
    order = [a.batch_image_ids(i) for i in range(len(a))]
    assert order == [b.batch_image_ids(i) for i in range(len(b))]
    assert order != [c.batch_image_ids(i) for i in range(len(c))]
    for x, y in zip(a[2], b[2]):
        np.testing.assert_array_equal(x, y)
    a.on_epoch_end()
    assert a.epoch == 1 and [a.batch_image_ids(i) for i in range(len(a))] != order
    b.set_epoch(1)
    np.testing.assert_array_equal(a[0][0], b[0][0])


def test_threads_do_not_change_results(sample_coco):
    seq = CocoSegmentationSequence(sample_coco, ["lung"], batch_size=4, input_size=32, seed=3, augment="medium")
    serial = [seq[i] for i in range(len(seq))]
    order = np.random.default_rng(0).permutation(len(seq))
    with ThreadPoolExecutor(4) as pool:
        parallel = dict(zip(order, pool.map(seq.__getitem__, order)))
    for i, (x, y) in enumerate(serial):
        np.testing.assert_array_equal(parallel[i][0], x)
        np.testing.assert_array_equal(parallel[i][1], y)


def test_as_tf_dataset_yields_the_sequence_batches(sample_coco):
    kw = dict(batch_size=8, input_size=32, seed=5, augment="light", image_ids=sample_coco.img_ids(["lung"])[:20])
    seq = CocoSegmentationSequence(sample_coco, ["lung"], **kw)
    dataset = seq.as_tf_dataset()
    for epoch in range(2):
        reference = CocoSegmentationSequence(sample_coco, ["lung"], **kw)
        reference.set_epoch(epoch)
        got = list(dataset.as_numpy_iterator())
        assert len(got) == len(reference) == 3 and len(got[2][0]) == 4
        for (x, y), (rx, ry) in zip(got, reference):
            np.testing.assert_array_equal(x, rx)
            np.testing.assert_array_equal(y, ry)


# ------------------------------------------------------------------ bad input
def copy_sample(tmp_path: Path, sample_coco: CocoDataset, n: int = 6) -> CocoDataset:
    """The first ``n`` sample images copied to tmp_path, with their COCO."""
    ids = sample_coco.img_ids(["lung"])[:n]
    for image_id in ids:
        shutil.copy(sample_coco.image_path(image_id), tmp_path)
    return CocoDataset(sample_coco.subset(ids).dataset, tmp_path)


def test_image_missing_mid_epoch_names_file_and_id(tmp_path, sample_coco):
    coco = copy_sample(tmp_path, sample_coco)
    seq = CocoSegmentationSequence(coco, ["lung"], batch_size=2, input_size=32, seed=0)
    victim = seq.batch_image_ids(1)[1]
    name = coco.imgs[victim]["file_name"]
    seq[0]
    (tmp_path / name).unlink()
    with pytest.raises(ImageReadError) as info:
        seq[1]
    assert name in str(info.value) and f"image id {victim}" in str(info.value)


def test_on_error_skip_replaces_and_counts(tmp_path, sample_coco):
    coco = copy_sample(tmp_path, sample_coco)
    seq = CocoSegmentationSequence(coco, ["lung"], batch_size=3, input_size=32, seed=0, on_error="skip")
    victim = seq.batch_image_ids(0)[0]
    (tmp_path / coco.imgs[victim]["file_name"]).write_bytes(b"not an image")
    x, y = seq[0]
    assert x.shape == (3, 32, 32, 3) and y.shape == (3, 32, 32, 1)
    report = seq.error_report
    assert report["skipped"] == 1 and list(report["failed"]) == [victim]
    assert coco.imgs[victim]["file_name"] in report["failed"][victim]
    seq.on_epoch_end()
    for i in range(len(seq)):
        seq[i]
    assert seq.error_report["skipped"] == 2


def test_unvalidated_dataset_gets_its_rles_checked_per_item(sample_coco):
    """Only a validated dataset's RLEs skip the check: bad counts never reach pycocotools."""
    data = copy.deepcopy(sample_coco.subset(sample_coco.img_ids(["lung"])[:4]).dataset)
    index, bad = next((i, a) for i, a in enumerate(data["annotations"]) if isinstance(a.get("segmentation"), dict))
    bad["segmentation"] = {**bad["segmentation"], "counts": "0:0"}  # overruns the image
    coco = CocoDataset(data, sample_coco.image_root, validate=False)
    assert not coco.validated and sample_coco.validated and sample_coco.subset([1]).validated
    seq = CocoSegmentationSequence(coco, ["lung"], batch_size=4, input_size=32, shuffle=False)
    with pytest.raises(RLEError, match=f"annotation {bad['id']}: compressed COCO RLE counts"):
        seq[0]
    with pytest.raises(CocoFormatError, match=rf"annotations\[{index}\]"):
        CocoDataset(data, sample_coco.image_root)


# ------------------------------------------------------------------ training
def test_fit_tiny_unet(sample_coco):
    seq = CocoSegmentationSequence(sample_coco, ["lung"], batch_size=8, input_size=32, seed=0, augment="light",
                                   background=True, equalize="clahe")
    model = tiny_unet((32, 32), 3, seq.n_outputs)
    model.compile("adam", "binary_crossentropy")
    history = model.fit(seq, epochs=2, steps_per_epoch=2, workers=1, shuffle=False, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert seq.epoch == 2
    predict = CocoSegmentationSequence(sample_coco, ["lung"], batch_size=8, input_size=32, subset="predict",
                                       image_ids=list(sample_coco.imgs)[:12])
    assert model.predict(predict, verbose=0).shape == (12, 32, 32, 2)


class SlowEpochEnd(keras.callbacks.Callback):
    """Like validation or checkpointing: lets tf-keras' enqueuer thread reach on_epoch_end first."""

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(0.3)


def test_fit_with_two_workers_or_processes_sees_the_batches_of_one_worker(sample_coco):
    ids = sample_coco.img_ids(["lung"])[:12]

    def batches_seen(workers: int, processes: bool = False) -> list:
        seen = []

        class Recorder(keras.Model):
            def train_step(self, data):
                seen.append(data[0].numpy().sum(axis=(1, 2, 3)))
                return super().train_step(data)

        seq = CocoSegmentationSequence(sample_coco, ["lung"], image_ids=ids, batch_size=4, input_size=16,
                                       seed=4, augment="medium")
        base = tiny_unet((16, 16), 3, 1)
        model = Recorder(base.inputs, base.outputs)
        model.compile("adam", "binary_crossentropy", run_eagerly=True)
        with ProcessSequence(seq, workers) if processes else contextlib.nullcontext(seq) as data:
            model.fit(data, epochs=2, workers=1 if processes else workers, use_multiprocessing=False,
                      shuffle=False, verbose=0, callbacks=[SlowEpochEnd()])
        assert seq.epoch == 2
        return seen

    one, two, processes = batches_seen(1), batches_seen(2), batches_seen(2, processes=True)
    assert len(one) == len(two) == len(processes) == 6
    for a, b, c in zip(one, two, processes):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


# ------------------------------------------------------------------ Kaggle alias
def test_kaggle_alias_keywords_and_fixes(tmp_path):
    data = synthetic_coco(tmp_path, sizes=((40, 60), (50, 50), (33, 47)))
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0] = 200  # pure red: BGR reading would put it in channel 2
    write_png(tmp_path / "img1.png", rgb)
    (tmp_path / "ann.json").write_text(json.dumps(data))
    records = data["images"]
    gen = DataGeneratorFromCocoJson(batch_size=2, subset="train", image_list=records, classes=["c12", "c7"],
                                    input_image_size=(24, 40), annFile=str(tmp_path / "ann.json"),
                                    shuffle=False, image_root=tmp_path)
    assert len(gen) == 2  # the kernel's int(3 / 2) == 1 dropped the last image
    x, y = gen[0]
    assert x.shape == (2, 24, 40, 3) and y.shape == (2, 24, 40, 2)
    assert set(np.unique(y)) == {0.0, 1.0}
    np.testing.assert_allclose(x[0, ..., 0], 200 / 255, atol=1e-6)
    assert x[0, ..., 2].max() == 0
    coco = pycocotools(data)
    np.testing.assert_array_equal(y[1, ..., 0], oracle_mask(coco, 2, 12, (24, 40)))
    x_last = gen[1]
    assert x_last[0].shape == (1, 24, 40, 3)
    test = DataGeneratorFromCocoJson(subset="test", image_list=[1, 2], annFile=tmp_path / "ann.json",
                                     image_root=tmp_path, augment="light")
    assert test.classes == ["c3", "c7", "c12"] and test[0].shape == (2, 128, 128, 3)


# ------------------------------------------------------------------ classification
def test_classification_labels_merging_and_balance(sample_coco):
    kw = dict(batch_size=8, input_size=32, seed=0)
    plain = CocoClassificationSequence(sample_coco, ["No Finding", "COVID-19"], **kw)
    assert len(plain.image_ids) == 56 and len(plain) == 7
    _, y = plain[0]
    assert y.shape == (8, 2) and y.dtype == np.float32 and np.all(y.sum(axis=1) == 1)
    for image_id, label in zip(plain.image_ids, plain.labels):
        assert plain.classes[label] in sample_coco.image_labels(image_id)
    balanced = CocoClassificationSequence(sample_coco, {"ill": ["COVID-19"], "well": ["No Finding"]},
                                          balance="batch", label_mode="int", **kw)
    assert balanced.classes == ["ill", "well"] and len(balanced) == 13  # 51 COVID x 2 slots / 8
    seen = set()
    for i in range(len(balanced)):
        _, labels = balanced[i]
        assert labels.dtype == np.int32 and np.bincount(labels, minlength=2).tolist() == [4, 4]
        seen |= set(balanced.batch_image_ids(i))
    assert seen == set(balanced.image_ids)


def test_classification_lung_masking_from_coco_and_from_a_model(sample_coco):
    ids = sample_coco.img_ids(["lung"])[:8]
    kw = dict(batch_size=8, input_size=32, image_ids=ids, shuffle=False, label_mode="int")
    masked = CocoClassificationSequence(sample_coco, ["COVID-19"], mask_with="coco", mask_classes=["lung"],
                                        equalize="hist", **kw)
    x, _ = masked[0]
    lungs = CocoSegmentationSequence(sample_coco, ["lung"], image_ids=ids, batch_size=8, input_size=32,
                                     shuffle=False)[0][1]
    assert np.all(x[lungs[..., 0] == 0] == 0) and x[lungs[..., 0] == 1].max() == 1.0
    calls = []

    def lung_model(batch):
        calls.append(batch.shape)
        return lungs.copy()

    by_model, _ = CocoClassificationSequence(sample_coco, ["COVID-19"], mask_with=lung_model, equalize="hist",
                                             **kw)[0]
    assert calls == [(8, 32, 32, 3)]
    np.testing.assert_array_equal(by_model, x)
    with pytest.raises(ConfigError, match="no \\['lung'\\] mask"):
        CocoClassificationSequence(sample_coco, ["COVID-19", "No Finding"], mask_with="coco")


def test_fit_tiny_cnn_on_balanced_masked_batches(sample_coco):
    seq = CocoClassificationSequence(sample_coco, {"covid": ["COVID-19"], "other": ["No Finding"]},
                                     balance="batch", batch_size=8, input_size=32, channels=1, seed=1,
                                     augment="light", equalize="hist")
    model = tiny_cnn((32, 32), 1, 2)
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(seq, epochs=1, steps_per_epoch=3, workers=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    predict = CocoClassificationSequence(sample_coco, ["COVID-19"], subset="predict", batch_size=8,
                                         input_size=32, channels=1)
    assert model.predict(predict, verbose=0).shape == (56, 2)
    assert seq.epoch == 1
    tf_batches = list(seq.as_tf_dataset().take(2).as_numpy_iterator())
    for (x, y), (rx, ry) in zip(tf_batches, [seq[0], seq[1]]):
        assert x.shape == (8, 32, 32, 1) and y.shape == (8, 2)
        np.testing.assert_array_equal(x, rx)
        np.testing.assert_array_equal(y, ry)
