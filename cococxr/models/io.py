"""Save and load Keras models (``.h5`` or ``.keras``) with cococxr's custom objects.

* :data:`CUSTOM_OBJECTS` maps names to the custom layers, losses and metrics that
  :func:`load_model` must know; other modules add theirs with
  :func:`register_custom_object`.
* A model compiled by a cococxr factory carries a *compile spec* (a small JSON-able dict
  such as ``{"recipe": "segmentation", "loss": "bce_dice", "lr": 0.001, ...}``, see
  :func:`set_compile_spec`). :func:`save_model` stores it inside the file (an HDF5 root
  attribute for ``.h5``, a ``cococxr_compile.json`` member of the ``.keras`` zip), and
  :func:`load_model` uses the registered recipe (:func:`register_compile_recipe`) to
  rebuild the loss and metric objects.

Formats: ``.h5`` reloads compiled with its optimizer state (Keras restores the training
config using the recipe's objects as custom objects); ``.keras`` is loaded with
``compile=False`` and recompiled from the spec, so its optimizer starts afresh (same
learning rate as at compile time, new moments).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import h5py

from cococxr._tf import keras
from cococxr.atomic import default_file_mode
from cococxr.errors import ConfigError

CUSTOM_OBJECTS: dict[str, Any] = {}
COMPILE_RECIPES: dict[str, Callable[[dict], dict]] = {}
MODEL_SUFFIXES = (".h5", ".keras")

_SPEC_ATTR = "_cococxr_compile"
_H5_ATTR = "cococxr_compile"
_ZIP_MEMBER = "cococxr_compile.json"
_KERAS_CONFIG = "config.json"
_KERAS_WEIGHTS = "model.weights.h5"
# Modules that register custom objects or recipes when imported; imported by name before
# a model is loaded (they import this module, and segmentation_models, at their top).
_REGISTERING_MODULES = (
    "cococxr.models.segmentation",
    "cococxr.models.layers",
    "cococxr.models.classifiers",
)


def register_custom_object(obj=None, *, name: str | None = None):
    """Register a layer/loss/metric for :func:`load_model`; usable as a decorator.

    Args:
        obj: the class or callable; omitted when used as ``@register_custom_object(name=...)``.
        name: the name Keras stores in the model file; defaults to ``obj.__name__``.

    Returns:
        ``obj`` unchanged (or a decorator when ``obj`` is omitted).
    """
    def add(item):
        CUSTOM_OBJECTS[name or item.__name__] = item
        return item

    return add if obj is None else add(obj)


def register_compile_recipe(name: str):
    """Register ``fn(spec) -> dict(optimizer=..., loss=..., metrics=[...])`` under ``name``.

    The returned dict is passed to ``model.compile``; the loss and metric objects must be
    fresh ones built from the spec alone.
    """
    def add(fn):
        COMPILE_RECIPES[name] = fn
        return fn

    return add


def set_compile_spec(model, spec: dict) -> None:
    """Attach a compile spec (JSON-able dict with a ``"recipe"`` key) to ``model``."""
    if spec.get("recipe") not in COMPILE_RECIPES:
        raise ConfigError(f"unknown compile recipe {spec.get('recipe')!r}; "
                          f"registered: {sorted(COMPILE_RECIPES)}")
    _attach_spec(model, spec)


def _attach_spec(model, spec: dict) -> None:
    # Stored as JSON text: Keras would wrap a dict attribute in a tracking object.
    setattr(model, _SPEC_ATTR, json.dumps(spec))


def get_compile_spec(model) -> dict | None:
    """Return the compile spec attached to ``model``, or None."""
    text = getattr(model, _SPEC_ATTR, None)
    return json.loads(text) if text is not None else None


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ConfigError(f"model file {path} must end in .h5 or .keras")


def _write_spec(path: Path, spec: dict) -> None:
    text = json.dumps(spec)
    if path.suffix.lower() == ".h5":
        with h5py.File(path, "a") as f:
            f.attrs[_H5_ATTR] = text
    else:
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr(_ZIP_MEMBER, text)


def _read_spec(path: Path) -> dict | None:
    if path.suffix.lower() == ".h5":
        with h5py.File(path, "r") as f:
            text = f.attrs.get(_H5_ATTR)
    else:
        with zipfile.ZipFile(path) as zf:
            text = zf.read(_ZIP_MEMBER) if _ZIP_MEMBER in zf.namelist() else None
    return json.loads(text) if text is not None else None


def save_model(model, path: str | os.PathLike) -> Path:
    """Save ``model`` atomically as ``.h5`` or ``.keras`` (chosen by the suffix).

    The model is written to a temporary file with the same suffix in the target folder
    (``.name.tmp-XXXX.h5``), its compile spec is embedded, and the file is renamed over
    ``path``; a failure leaves any previous file untouched.

    Returns:
        The path written.
    """
    path = Path(path)
    _check_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix,
                                    dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings():  # .h5 was chosen on purpose: no "legacy format" nag
            warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy", category=UserWarning)
            model.save(tmp)
        spec = get_compile_spec(model)
        if spec is not None:
            _write_spec(tmp, spec)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path


def _import_registering_modules() -> None:
    for name in _REGISTERING_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def _object_name(obj) -> str:
    return getattr(obj, "__name__", None) or obj.name


def _compile_kwargs(spec: dict) -> dict:
    recipe = COMPILE_RECIPES.get(spec.get("recipe"))
    if recipe is None:
        raise ConfigError(f"model file uses compile recipe {spec.get('recipe')!r}, which is "
                          f"not registered (registered: {sorted(COMPILE_RECIPES)})")
    return recipe(spec)


def _load_keras_zip(path: Path, objects: dict):
    """Load an uncompiled model from a ``.keras`` zip, extracting its weights first.

    Keras reads ``model.weights.h5`` in place inside the zip, where every seek re-reads
    the compressed member from its start (about 10 s for a 50 MB U-Net); reading the
    extracted copy takes well under a second.
    """
    with zipfile.ZipFile(path) as zf, tempfile.TemporaryDirectory() as tmp:
        names = zf.namelist()
        if _KERAS_WEIGHTS not in names or any(n.startswith("assets") for n in names):
            return keras.models.load_model(path, custom_objects=objects, compile=False)
        config = json.loads(zf.read(_KERAS_CONFIG))
        config["compile_config"] = None
        model = keras.saving.deserialize_keras_object(config, custom_objects=objects)
        model.load_weights(zf.extract(_KERAS_WEIGHTS, tmp))
    return model


def load_model(path: str | os.PathLike, compile: bool = True,
               custom_objects: dict[str, Any] | None = None):
    """Load a model saved by :func:`save_model` (or by Keras) from ``.h5`` or ``.keras``.

    Args:
        path: the model file.
        compile: recompile the model (from its embedded compile spec when it has one,
            otherwise from the training config Keras stored).
        custom_objects: extra name -> object entries, on top of :data:`CUSTOM_OBJECTS`.

    Returns:
        The tf-keras model, with its compile spec re-attached.
    """
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    _import_registering_modules()
    spec = _read_spec(path)
    objects = {**CUSTOM_OBJECTS, **(custom_objects or {})}
    kwargs = _compile_kwargs(spec) if spec is not None and compile else None
    if path.suffix.lower() == ".h5":
        if kwargs is not None:
            objects.update({_object_name(o): o for o in [kwargs["loss"], *kwargs["metrics"]]})
        model = keras.models.load_model(path, custom_objects=objects, compile=compile)
    else:
        model = (_load_keras_zip(path, objects) if not compile or spec is not None
                 else keras.models.load_model(path, custom_objects=objects))
        if kwargs is not None:
            model.compile(**kwargs)
    if spec is not None:
        _attach_spec(model, spec)
    return model


__all__ = [
    "CUSTOM_OBJECTS",
    "COMPILE_RECIPES",
    "register_custom_object",
    "register_compile_recipe",
    "set_compile_spec",
    "get_compile_spec",
    "save_model",
    "load_model",
]
