"""cococxr's built-in recipes as YAML (installed as ``cococxr.configs``).

Each file holds settings with the keys of a pipeline's config schema, read through
:mod:`cococxr.config` like a ``--config`` file:

* ``segmentation.yaml``: the default recipe of ``cococxr train segmentation`` (and of ``compare``);
* ``classifier.yaml``: the default recipe of ``cococxr train classifier``;
* ``demo.yaml`` / ``demo-quick.yaml``: the models ``cococxr demo`` trains (``demo-quick.yaml``
  changes ``demo.yaml`` for ``--quick``).

A copy of a recipe, edited, can be passed with ``--config``: its keys win over the built-in
recipe, flags win over both.
"""
from __future__ import annotations

from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent
RECIPES = ("segmentation", "classifier", "demo", "demo-quick")


def recipe_path(name: str) -> Path:
    """The file of the built-in recipe ``name`` (one of :data:`RECIPES`)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; cococxr ships {', '.join(RECIPES)}")
    return RECIPES_DIR / f"{name}.yaml"


__all__ = ["RECIPES", "RECIPES_DIR", "recipe_path"]
