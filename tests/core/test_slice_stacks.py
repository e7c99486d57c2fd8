"""2.5D slice stacks: neighbours of the same volume as channels, edges repeated, the centre's mask."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from cococxr.batches import SegmentationBatches
from cococxr.batches.slices import slice_neighbours
from cococxr.coco import CocoDataset
from cococxr.converters.nifti import convert_nifti
from cococxr.errors import ConfigError
from cococxr.io import read_image
from cococxr.volumes.layout import SliceLayout

from helpers import SAMPLE, las_affine, save_nifti, shared, synthetic_case


@pytest.fixture
def volume_coco(tmp_path):
    """A LAS CT volume and its labels converted to COCO slices; the raw volume and its layout."""
    image, labels = synthetic_case(shape=(12, 10, 7))
    save_nifti(tmp_path / "in" / "ct.nii.gz", image, las_affine())
    save_nifti(tmp_path / "in" / "ct_seg.nii.gz", labels, las_affine())
    (tmp_path / "map.json").write_text(json.dumps({"1": "liver", "2": "spleen", "5": "kidney"}))
    dataset, _ = convert_nifti(tmp_path / "in" / "ct.nii.gz", tmp_path / "in" / "ct_seg.nii.gz",
                               out=tmp_path / "out" / "coco.json", out_images=tmp_path / "out" / "images",
                               label_map=str(tmp_path / "map.json"))
    return dataset, tmp_path / "in"


def _check_stacks(dataset: CocoDataset, ct_path, label_path, context: int, stride: int, label_value: int,
                  class_name: str):
    """Every channel j of X is slice clamp(s + (j - context) * stride) read with nibabel; y is slice s's mask."""
    first = next(iter(dataset.imgs.values()))
    layout = SliceLayout.from_record(first)
    raw = layout.to_display(np.asanyarray(nib.load(ct_path).dataobj)).astype(np.float64)
    truth = layout.to_display(np.asanyarray(nib.load(label_path).dataobj)) == label_value
    size = layout.display_shape[1:]
    batches = SegmentationBatches(dataset, [class_name], batch_size=4, input_size=size, context=context,
                                  stride=stride, include_empty=True, shuffle=False, seed=0)
    assert batches.channels == 2 * context + 1 and batches.item_specs()[0][1] == (*size, 2 * context + 1)
    seen = 0
    for index in range(len(batches)):
        x, y = batches[index]
        assert x.shape[1:] == (*size, 2 * context + 1) and x.dtype == np.float32
        for item, image_id in enumerate(batches.batch_image_ids(index)):
            record = dataset.imgs[image_id]
            centre = record["slice_index"]
            for j in range(2 * context + 1):
                neighbour = min(max(centre + (j - context) * stride, 0), layout.num_slices - 1)
                values = np.rint(x[item, :, :, j] * 65535) * record["rescale_slope"] + record["rescale_intercept"]
                np.testing.assert_array_equal(values, raw[neighbour])
            np.testing.assert_array_equal(y[item, :, :, 0], truth[centre])
            seen += 1
    assert seen == layout.num_slices


@pytest.mark.parametrize("context, stride", [(2, 1), (1, 3)])
def test_channels_are_the_neighbour_slices_read_with_nibabel(volume_coco, context, stride):
    dataset, folder = volume_coco
    _check_stacks(dataset, folder / "ct.nii.gz", folder / "ct_seg.nii.gz", context, stride, 1, "liver")


def test_real_totalsegmentator_ct_stacks(tmp_path):
    root = shared("volumes/nifti/TotalSegmentator")
    dataset, _ = convert_nifti(root / "example_ct_sm.nii.gz", root / "example_seg.nii.gz",
                               out=tmp_path / "c.json", out_images=tmp_path / "images")
    category = max(dataset.cats.values(), key=lambda c: len(dataset.cat_to_imgs[c["id"]]))
    _check_stacks(dataset, root / "example_ct_sm.nii.gz", root / "example_seg.nii.gz", 2, 1,
                  category["label_value"], category["name"])


def _plain_records() -> list[dict]:
    """Image records of the embedded sample's X-rays (no volume keys)."""
    files = sorted((SAMPLE / "images").glob("*.png"))[:2]
    return [{"id": n + 1, "file_name": f"images/{f.name}", "height": read_image(f).shape[0],
             "width": read_image(f).shape[1]} for n, f in enumerate(files)]


def _coco(images) -> CocoDataset:
    return CocoDataset({"images": images, "annotations": [], "categories": [{"id": 1, "name": "lung"}]},
                       SAMPLE, validate=False)


def _uw_coco(slices, case=7, day=1) -> CocoDataset:
    """UW-Madison-style records (case, day, slice) on one sample X-ray."""
    record = _plain_records()[0]
    return _coco([{**record, "id": n + 1, "case": case, "day": day, "slice": s} for n, s in enumerate(slices)])


def test_uw_madison_records_group_by_case_and_day_and_order_by_slice():
    coco = _uw_coco([3, 1, 2, 5, 4])
    other_day = _uw_coco([1, 2], day=2).dataset["images"]
    data = dict(coco.dataset, images=coco.dataset["images"] + [{**r, "id": r["id"] + 10} for r in other_day])
    coco = _coco(data["images"])
    by_slice = {r["slice"]: r["id"] for r in coco.imgs.values() if r["day"] == 1}
    stacks = slice_neighbours(coco, list(coco.imgs), context=2)
    assert stacks[by_slice[1]] == tuple(by_slice[s] for s in (1, 1, 1, 2, 3))  # edge repeated
    assert stacks[by_slice[3]] == tuple(by_slice[s] for s in (1, 2, 3, 4, 5))
    assert stacks[11] == (11, 11, 11, 12, 12)  # day 2 is another volume
    assert slice_neighbours(coco, [by_slice[3]], context=1, stride=2)[by_slice[3]] == (by_slice[1], by_slice[3],
                                                                                       by_slice[5])


@pytest.mark.parametrize("coco, kwargs, message", [
    (lambda: _uw_coco([1, 2, 4]), {}, "slice 3 of its volume is not in"),
    (lambda: _uw_coco([1, 2, 2]), {}, "are both slice 2 of volume"),
    (lambda: _uw_coco(["1", "2"]), {}, "is not an integer"),
    (lambda: _coco(_plain_records()), {},
     "does not say which volume and slice"),
    (lambda: _uw_coco([1, 2]), {"slice_keys": "slice"}, "slice_keys must list"),
])
def test_stacks_that_cannot_be_built_name_the_image(coco, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SegmentationBatches(coco(), ["lung"], input_size=32, context=1, include_empty=True, **kwargs)


def test_context_refuses_rgb_channels_and_backbone_preprocessing():
    with pytest.raises(ConfigError, match="stacks gray slices"):
        SegmentationBatches(_uw_coco([1, 2]), ["lung"], context=1, channels=3, include_empty=True)
    with pytest.raises(ConfigError, match="normalises RGB"):
        SegmentationBatches(_uw_coco([1, 2]), ["lung"], context=1, preprocessing="efficientnetb0",
                            include_empty=True)


def test_one_augmentation_moves_every_slice_of_a_stack_and_the_mask(volume_coco):
    dataset, _ = volume_coco
    plain = SegmentationBatches(dataset, ["liver"], batch_size=7, input_size=32, context=2, seed=3,
                                shuffle=False)
    moved = SegmentationBatches(dataset, ["liver"], batch_size=7, input_size=32, context=2, seed=3,
                                shuffle=False, augment="rotate+zoom")
    (x, y), (xa, ya) = plain[0], moved[0]
    assert not np.array_equal(xa, x)
    # the same geometric transform on every channel: a slice shared by two stacks lands identically
    ids = plain.batch_image_ids(0)
    assert len(ids) >= 2
    for item in range(len(ids)):
        stack = plain._neighbours[ids[item]]
        for j in range(5):
            for k in range(5):
                if stack[j] == stack[k]:
                    np.testing.assert_array_equal(xa[item, :, :, j], xa[item, :, :, k])
    assert ya.shape == y.shape and set(np.unique(ya)) <= {0.0, 1.0}


def test_tiny_unet_trains_on_stacks_of_five_slices(volume_coco):
    from cococxr.models.segmentation import build_plain_unet, compile_segmentation_model

    dataset, _ = volume_coco
    data = SegmentationBatches(dataset, ["liver", "spleen"], batch_size=2, input_size=32, context=2, seed=0)
    from cococxr.sequences import CocoSegmentationSequence

    seq = CocoSegmentationSequence(dataset, ["liver", "spleen"], batch_size=2, input_size=32, context=2, seed=0)
    x, y = seq[0]
    np.testing.assert_array_equal(x, data[0][0])
    model = build_plain_unet((32, 32, 5), classes=2, filters=(4, 8))
    compile_segmentation_model(model, loss="bce_dice", lr=1e-3)
    history = model.fit(seq, epochs=2, workers=1, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["loss"]))
    assert model.predict(x, verbose=0).shape == (*x.shape[:3], 2)


def test_read_image_of_a_stack_slice_is_the_png(volume_coco):
    dataset, _ = volume_coco
    record = dataset.imgs[3]
    batches = SegmentationBatches(dataset, ["liver"], batch_size=1, input_size=(record["height"], record["width"]),
                                  context=1, include_empty=True, shuffle=False)
    x, _ = batches[2]
    assert batches.batch_image_ids(2) == [3]
    np.testing.assert_array_equal(np.rint(x[0, :, :, 1] * 65535).astype(np.uint16),
                                  read_image(dataset.image_path(3)))


@pytest.mark.torch
def test_tf_data_and_torch_workers_yield_the_same_stacks(volume_coco):
    from cococxr import torch_data

    dataset, _ = volume_coco
    batches = SegmentationBatches(dataset, ["liver"], batch_size=3, input_size=16, context=1, seed=5)
    reference = [batches.batch_at(0, i) for i in range(len(batches))]
    from_tf = [tuple(t.numpy() for t in b) for b in batches.as_tf_dataset()]
    from_torch = [tuple(t.numpy() for t in b)
                  for b in torch_data.make_loader(batches, num_workers=2, channels_first=False)]
    for got in (from_tf, from_torch):
        assert len(got) == len(reference)
        for (x, y), (xr, yr) in zip(got, reference):
            assert x.shape[-1] == 3
            np.testing.assert_array_equal(x, xr)
            np.testing.assert_array_equal(y, yr)
