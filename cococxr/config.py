"""Pipeline configs: one dataclass schema shared by command-line flags and config files.

A pipeline declares its settings as a dataclass whose fields are made with
:func:`option`. The same schema then gives:

* the command-line flags (``input_size`` -> ``--input-size``, booleans get
  ``--flag/--no-flag``, lists accept ``a,b`` or ``a b``) via :func:`add_config_arguments`;
  field types are ``str``, ``int``, ``float``, ``bool``, ``list[str]``, ``list[int]``,
  each optionally ``| None``;
* the keys of a YAML or JSON file passed as ``--config file.yaml`` (the same names,
  ``input_size`` or ``input-size``);
* validation (types, choices, required keys) with a :class:`~cococxr.errors.ConfigError`
  naming every unknown or bad key.

Resolution order: dataclass defaults < the schema's built-in recipe < config file <
flags given on the command line (or keyword overrides in Python). A schema names its
built-in recipe (a YAML or JSON file with the same keys, shipped with the package) in a
``RECIPE`` class attribute (``typing.ClassVar``); schemas without one skip that layer. The
resolved config is what a run folder stores as ``config.json``, and that file can be fed
back with ``--config``.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

from cococxr.atomic import atomic_write_json
from cococxr.errors import ConfigError

_NONE_WORDS = ("none", "null", "")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def option(default: Any = None, help: str = "", *, choices: tuple | None = None,
           required: bool = False, metavar: str | None = None) -> Any:
    """Declare a config field (a ``dataclasses.field`` with CLI metadata).

    Args:
        default: default value (lists are copied per instance).
        help: one-line help shown by ``--help``.
        choices: allowed values (for strings or numbers).
        required: the resolved config must set it (not None).
        metavar: name of the value in ``--help``.
    """
    metadata = {"help": help, "choices": choices, "required": required, "metavar": metavar}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _fields(schema) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(schema)
    return [(f, hints[f.name]) for f in dataclasses.fields(schema)]


def _base_type(hint) -> tuple[Any, bool]:
    """``(type, optional)`` for ``T``, ``T | None`` or ``list[T]``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    if optional and len(args) == 1:
        hint = args[0]
    return hint, optional


def flag_name(name: str) -> str:
    """The command-line flag of field ``name`` (``input_size`` -> ``--input-size``)."""
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, schema) -> None:
    """Add ``--config`` and one flag per field of ``schema`` to ``parser``.

    Flags default to "not given" (``argparse.SUPPRESS``) so that only flags typed on
    the command line override the config file; ``--help`` shows the schema default.
    """
    parser.add_argument("--config", metavar="FILE",
                        help="YAML or JSON file with the same keys as these flags; flags override it")
    for f, hint in _fields(schema):
        base, _ = _base_type(hint)
        meta = f.metadata
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        text = meta.get("help", "")
        if meta.get("required"):
            text += " [required]"
        elif default not in (None, []) and "default:" not in text:
            text += f" (default: {','.join(map(str, default)) if isinstance(default, list) else default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": text}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            choices = meta.get("choices")
            kwargs["metavar"] = (meta.get("metavar") or f.name.upper() if not choices
                                 else "{" + ",".join(map(str, choices)) + "}")
            if typing.get_origin(base) is list:
                kwargs["nargs"] = "+"
        parser.add_argument(flag_name(f.name), **kwargs)


def read_config_file(path: str | os.PathLike) -> dict:
    """Read a YAML (``.yaml``/``.yml``) or JSON config file into a dict."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc})") from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError or yaml.YAMLError
        kind = "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"
        raise ConfigError(f"config file {path}: not valid {kind} ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of keys to values, "
                          f"got {type(data).__name__}")
    return data


def _coerce(name: str, hint, value: Any, source: str) -> Any:
    base, optional = _base_type(hint)
    where = f"{source}: {name}"
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required, got {value!r}")
    if typing.get_origin(base) is list:
        (item_type,) = typing.get_args(base)
        items = value if isinstance(value, (list, tuple)) else [value]
        parts = [p for v in items for p in (v.split(",") if isinstance(v, str) else [v])]
        return [_coerce(name, item_type, p.strip() if isinstance(p, str) else p, source)
                for p in parts if not isinstance(p, str) or p.strip()]
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if base in (int, float):
        number = _number(value)
        if number is None or (base is int and number != int(number)):
            raise ConfigError(f"{where}: expected {'an integer' if base is int else 'a number'}, "
                              f"got {value!r}")
        return base(number)
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    raise TypeError(f"config field {name}: unsupported type {hint}")  # a schema bug


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _normalise_keys(data: Mapping, schema, source: str) -> dict:
    names = [f.name for f in dataclasses.fields(schema)]
    result, unknown = {}, []
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in names:
            result[name] = value
        else:
            unknown.append(str(key))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key.replace("-", "_"), names, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{source}: unknown key(s) {', '.join(hints)}; "
                          f"known keys: {', '.join(names)}")
    return result


def build_config(schema, *layers: tuple[Mapping, str]):
    """Build a validated ``schema`` instance from ``(values, source name)`` layers.

    Later layers override earlier ones. Every value is checked against the field's type
    and choices; unknown keys and missing required fields raise :class:`ConfigError`.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for data, source in layers:
        for name, value in _normalise_keys(data, schema, source).items():
            values[name], sources[name] = value, source
    kwargs = {}
    for f, hint in _fields(schema):
        if f.name not in values:
            continue
        value = _coerce(f.name, hint, values[f.name], sources[f.name])
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise ConfigError(f"{sources[f.name]}: {f.name}={value!r} is not one of "
                              f"{', '.join(map(str, choices))}")
        kwargs[f.name] = value
    config = schema(**kwargs)
    missing = [f.name for f in dataclasses.fields(schema)
               if f.metadata.get("required") and getattr(config, f.name) is None]
    if missing:
        raise ConfigError("missing required setting(s): " + ", ".join(
            f"{name} (flag {flag_name(name)} or key {name!r} in the config file)" for name in missing))
    return config


def recipe_layers(schema) -> list[tuple[Mapping, str]]:
    """The layer of ``schema``'s built-in recipe (its ``RECIPE`` file), or none."""
    path = getattr(schema, "RECIPE", None)
    if path is None:
        return []
    return [(read_config_file(path), f"built-in recipe {path}")]


def load_config(schema, source: Any = None, **overrides):
    """Resolve a config for the Python API.

    Args:
        schema: the config dataclass.
        source: None, an instance of ``schema``, a dict, or the path of a YAML/JSON file.
        **overrides: field values that win over ``source``.

    Returns:
        A validated ``schema`` instance.
    """
    layers = recipe_layers(schema)
    if isinstance(source, schema):
        layers.append((dataclasses.asdict(source), f"{schema.__name__} object"))
    elif isinstance(source, Mapping):
        layers.append((source, "config dict"))
    elif source is not None:
        layers.append((read_config_file(source), f"config file {source}"))
    layers.append((overrides, "keyword arguments"))
    return build_config(schema, *layers)


def config_from_args(schema, args: argparse.Namespace):
    """Resolve a config from parsed flags: built-in recipe, ``--config`` file, then the flags given."""
    names = {f.name for f in dataclasses.fields(schema)}
    layers = recipe_layers(schema)
    if getattr(args, "config", None):
        layers.append((read_config_file(args.config), f"config file {args.config}"))
    flags = {name: value for name, value in vars(args).items() if name in names}
    layers.append((flags, "command line"))
    return build_config(schema, *layers)


def config_to_dict(config) -> dict:
    """The config as a JSON-able dict (the same keys a config file uses)."""
    return dataclasses.asdict(config)


def save_config(config, path: str | os.PathLike) -> Path:
    """Write the resolved config as JSON, atomically; it can be read back with ``--config``."""
    atomic_write_json(path, config_to_dict(config), indent=2)
    return Path(path)


__all__ = [
    "option",
    "flag_name",
    "add_config_arguments",
    "read_config_file",
    "recipe_layers",
    "build_config",
    "load_config",
    "config_from_args",
    "config_to_dict",
    "save_config",
]
