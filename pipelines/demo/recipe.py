"""The models ``cococxr demo`` trains, as data: ``configs/demo.yaml`` and ``configs/demo-quick.yaml``.

:class:`Recipe` is the schema of those files (read through :mod:`cococxr.config`); its
defaults are ``demo.yaml``'s values, and ``demo-quick.yaml`` (``--quick``) is read on
top of ``demo.yaml``. The other settings of each training are the built-in recipes of
``cococxr train segmentation`` and ``train classifier``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cococxr.config import load_config, option
from cococxr.configs import recipe_path
from cococxr.pipelines.demo.config import DemoConfig


@dataclass(frozen=True)
class Recipe:
    """The training settings the demo passes to the segmentation and classifier pipelines."""

    RECIPE: ClassVar[Path] = recipe_path("demo")

    seg_arch: str = option("plain_unet", "segmentation architecture")
    seg_filters: list[int] = option([16, 32, 64, 128, 128], "plain_unet filters per level")
    seg_size: int = option(192, "segmentation input size (pixels)")
    seg_epochs: int = option(40, "segmentation epochs")
    seg_batch: int = option(4, "segmentation batch size")
    seg_lr: float = option(1e-3, "segmentation learning rate")
    seg_steps: int | None = option(None, "segmentation steps per epoch (none: one pass)")
    seg_seconds: float | None = option(360.0, "segmentation wall-clock budget (seconds)")
    cls_model: str = option("cnn", "classifier architecture")
    cls_model_options: str = option("base_filters=16;dense_units=64", "options of the classifier builder")
    cls_bn_momentum: float = option(0.9, "classifier BatchNormalization momentum")
    cls_size: int = option(128, "classifier input size (pixels)")
    cls_epochs: int = option(15, "classifier epochs")
    cls_batch: int = option(16, "classifier batch size")
    cls_steps: int | None = option(None, "classifier steps per epoch (none: one balanced pass)")
    cls_seconds: float | None = option(120.0, "classifier wall-clock budget (seconds)")
    n_boot: int = option(1000, "bootstrap resamples of the AUC interval")


DEFAULT_RECIPE = load_config(Recipe)
QUICK_RECIPE = load_config(Recipe, recipe_path("demo-quick"))


def recipe_for(cfg: DemoConfig) -> Recipe:
    """The recipe of a config: default or quick, with the epoch overrides applied."""
    recipe = QUICK_RECIPE if cfg.quick else DEFAULT_RECIPE
    return dataclasses.replace(recipe, seg_epochs=cfg.epochs_seg or recipe.seg_epochs,
                               cls_epochs=cfg.epochs_cls or recipe.cls_epochs)


__all__ = ["Recipe", "DEFAULT_RECIPE", "QUICK_RECIPE", "recipe_for"]
