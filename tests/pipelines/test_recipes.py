"""The built-in recipes (configs/*.yaml, installed as cococxr.configs): read through the schemas, equal to
the documented defaults, and layered as schema defaults < recipe < --config file < flags."""
from __future__ import annotations

import argparse
import dataclasses
import tomllib
from pathlib import Path

import pytest

from cococxr.config import add_config_arguments, config_from_args, load_config, read_config_file
from cococxr.configs import RECIPES, RECIPES_DIR, recipe_path
from cococxr.errors import ConfigError
from cococxr.pipelines.classification.config import ClassificationConfig
from cococxr.pipelines.demo.recipe import DEFAULT_RECIPE, QUICK_RECIPE, Recipe
from cococxr.pipelines.segmentation.config import SegmentationConfig
from helpers import REPO

REQUIRED = {SegmentationConfig: {"train": "t.json", "val": "v.json"},
            ClassificationConfig: {"train": "t.json", "val": "v.json", "classes": "A,B"}}


def test_every_recipe_ships_as_package_data():
    assert RECIPES_DIR == REPO / "configs"
    assert sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) == sorted(RECIPES)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert project["package-dir"]["cococxr.configs"] == "configs"
    assert project["package-data"]["cococxr.configs"] == ["*.yaml"]
    with pytest.raises(ValueError, match="segmentation"):
        recipe_path("nope")


@pytest.mark.parametrize("schema", [SegmentationConfig, ClassificationConfig], ids=lambda s: s.__name__)
def test_training_recipes_hold_the_documented_defaults(schema):
    """Each value of the recipe file is the schema default that --help and docs/cli.md show."""
    values = read_config_file(schema.RECIPE)
    defaults = schema(**REQUIRED[schema])
    assert values, schema.RECIPE
    for key, value in values.items():
        assert key in {f.name for f in dataclasses.fields(schema)}, key
        resolved = load_config(schema, {key: value}, **REQUIRED[schema])
        assert getattr(resolved, key) == getattr(defaults, key), key
    assert load_config(schema, None, **REQUIRED[schema]) == defaults
    data_keys = {"train", "val", "image_root", "classes", "out", "runs_dir", "name"}
    assert not data_keys & set(values), "a recipe holds training choices, not data or run folders"


def test_segmentation_recipe_is_the_documented_cxr_lungs_recipe():
    recipe = read_config_file(recipe_path("segmentation"))
    assert (recipe["arch"], recipe["filters"], recipe["input_size"], recipe["loss"], recipe["optimizer"],
            recipe["lr"], recipe["batch_size"], recipe["epochs"], recipe["max_train_seconds"], recipe["augment"]) == (
        "plain_unet", [8, 16, 32, 64, 128], 320, "dice", "adam", 0.001, 8, 100, None, "light+letterbox+exposure")


def test_demo_recipes():
    assert DEFAULT_RECIPE == Recipe()
    assert read_config_file(recipe_path("demo")) == {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(Recipe()).items()}
    assert QUICK_RECIPE == dataclasses.replace(
        Recipe(), seg_filters=[8, 16, 32, 64, 64], seg_size=64, seg_epochs=1, seg_steps=2, seg_seconds=None,
        cls_size=64, cls_epochs=1, cls_batch=4, cls_steps=2, cls_seconds=None, n_boot=50)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, SegmentationConfig)
    return parser.parse_args(["--train", "t.json", "--val", "v.json", *argv])


def test_resolution_order_defaults_recipe_file_flags(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("epochs: 7\nlr: 0.01\nbatch_size: 2\n")
    monkeypatch.setattr(SegmentationConfig, "RECIPE", recipe)
    mine = tmp_path / "mine.yaml"
    mine.write_text("epochs: 5\nlr: 0.02\n")
    assert (config_from_args(SegmentationConfig, _parse([])).epochs, SegmentationConfig().epochs) == (7, 100)
    from_file = config_from_args(SegmentationConfig, _parse(["--config", str(mine)]))
    assert (from_file.epochs, from_file.lr, from_file.batch_size, from_file.input_size) == (5, 0.02, 2, 320)
    flags = config_from_args(SegmentationConfig, _parse(["--config", str(mine), "--epochs", "3"]))
    assert (flags.epochs, flags.lr, flags.batch_size) == (3, 0.02, 2)
    python = load_config(SegmentationConfig, str(mine), train="t.json", val="v.json", lr=0.5)
    assert (python.epochs, python.lr, python.batch_size) == (5, 0.5, 2)
    recipe.write_text("epoch: 7\n")
    with pytest.raises(ConfigError, match=r"built-in recipe .*recipe.yaml: unknown key\(s\) 'epoch' "
                                          r"\(did you mean 'epochs'\?\)"):
        config_from_args(SegmentationConfig, _parse([]))


def test_a_run_config_fed_back_wins_over_the_recipe(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("epochs: 7\n")
    monkeypatch.setattr(SegmentationConfig, "RECIPE", recipe)
    saved = SegmentationConfig(train="t.json", val="v.json", epochs=40)
    assert load_config(SegmentationConfig, saved).epochs == 40
