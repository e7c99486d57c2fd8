"""Option schemas: one dataclass shared by command-line flags, config files and Python keywords.

A command declares its settings as a dataclass whose fields are made with
:func:`option`. Field types are ``str``, ``int``, ``float``, ``bool``, ``list[str]``,
``list[int]``, :data:`PathArg` (a path given as text or ``os.PathLike``, kept as given)
or ``Any``, each optionally ``| None``; a field with a ``parse`` function may have any type.
The same schema then gives, in one of two styles:

* **configs** (the pipelines): flags via :func:`add_config_arguments` (``input_size`` ->
  ``--input-size``, booleans get ``--flag/--no-flag``, lists accept ``a,b`` or ``a b``),
  the keys of a YAML or JSON file passed as ``--config file.yaml`` (the same names,
  ``input_size`` or ``input-size``), and :func:`load_config` for Python. Values may be
  text (``"none"``, ``"true"``, ``"64"``) and are converted to the field's type. Resolution
  order: dataclass defaults < config file < flags given on the command line (or keyword
  overrides in Python), with the schema's recipe (below) after the defaults. The resolved config is what a run folder stores as
  ``config.json``, and that file can be fed back with ``--config``.
* **plain options** (the converters): arguments via :func:`add_arguments` (positionals,
  short aliases, ``store_true`` switches, repeatable flags; ``argparse`` checks types and
  choices as it reads them) and :func:`load_options` for Python keywords. Values are
  taken as given: checked, never reinterpreted (``""`` stays ``""``).

Either way, validation (types, choices, parsers, required fields) raises a
:class:`~cococxr.errors.ConfigError` naming every unknown key, with a did-you-mean.

For configs, a schema may name a built-in recipe (a YAML or JSON file with the same keys,
shipped with the package) in a ``RECIPE`` class attribute (``typing.ClassVar``); the
resolution order is then dataclass defaults < recipe < config file < flags.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import numbers
import os
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import yaml

from cococxr.atomic import atomic_write_json
from cococxr.errors import ConfigError

#: The type of a path field: text or ``os.PathLike``, kept as given.
PathArg = Union[str, os.PathLike]

_NONE_WORDS = ("none", "null", "")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def option(default: Any = None, help: str = "", *, choices: tuple | None = None,
           required: bool = False, metavar: str | None = None, positional: bool = False,
           flags: tuple[str, ...] = (), repeat: bool = False, cli_required: bool = False,
           parse: Callable[[Any], Any] | None = None, role: str | None = None) -> Any:
    """Declare a config field (a ``dataclasses.field`` with CLI metadata).

    Args:
        default: default value (lists are copied per instance); with ``parse``, the
            parsed form.
        help: one-line help shown by ``--help``.
        choices: allowed values (for strings or numbers).
        required: the resolved config must set it (not None).
        metavar: name of the value in ``--help``.
        positional: a positional argument instead of a flag (:func:`add_arguments` only).
        flags: the option strings, e.g. ``("--out", "-o")`` (default: ``--<name>``).
        repeat: the flag may be given several times, each value appended to the list.
        cli_required: the command line must give it, the Python API may leave it unset
            (e.g. ``--out``: nothing is written without it).
        parse: turns a given value (command-line text, or any value the Python API
            accepts) into the field's value, raising :class:`ConfigError`; replaces the
            type check. Not applied to None nor to the default.
        role: ``"input"`` or ``"output"`` for a path the command reads or writes (a
            :data:`PathArg` field is an input unless marked ``"output"``); the CLI refuses
            an output that is, is inside or contains an input (:mod:`cococxr.outputs`).
    """
    metadata = {"help": help, "choices": choices, "required": required, "metavar": metavar,
                "positional": positional, "flags": tuple(flags), "repeat": repeat,
                "cli_required": cli_required, "parse": parse, "role": role}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _fields(schema) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(schema)
    return [(f, hints[f.name]) for f in dataclasses.fields(schema)]


def _base_type(hint) -> tuple[Any, bool]:
    """``(type, optional)`` for ``T`` or ``T | None`` (``T`` may itself be a union, e.g. PathArg)."""
    args = typing.get_args(hint)
    if type(None) not in args:
        return hint, False
    rest = tuple(a for a in args if a is not type(None))
    return (rest[0] if len(rest) == 1 else Union[rest]), True


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def flag_name(name: str) -> str:
    """The command-line flag of field ``name`` (``input_size`` -> ``--input-size``)."""
    return "--" + name.replace("_", "-")


def _flags(f: dataclasses.Field) -> tuple[str, ...]:
    return f.metadata.get("flags") or (flag_name(f.name),)


def add_config_arguments(parser: argparse.ArgumentParser, schema) -> None:
    """Add ``--config`` and one flag per field of ``schema`` to ``parser``.

    Flags default to "not given" (``argparse.SUPPRESS``) so that only flags typed on
    the command line override the config file; ``--help`` shows the schema default.
    Values are checked when the config is built (:func:`config_from_args`), not by argparse.
    """
    parser.add_argument("--config", metavar="FILE",
                        help="YAML or JSON file with the same keys as these flags; flags override it")
    for f, hint in _fields(schema):
        base, _ = _base_type(hint)
        meta = f.metadata
        if meta.get("positional"):
            raise TypeError(f"config field {f.name}: a config schema has flags only")  # a schema bug
        default = _default(f)
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
            if meta.get("repeat"):
                kwargs["action"] = "append"
            elif typing.get_origin(base) is list:
                kwargs["nargs"] = "+"
        parser.add_argument(*_flags(f), **kwargs)


def add_arguments(parser: argparse.ArgumentParser, schema) -> None:
    """Add one argument per field of ``schema`` to ``parser``, for a command without a config file.

    The help text is shown as written. Defaults are the schema's; ``argparse`` converts
    ``int``/``float`` values and checks choices and required arguments as it reads them;
    ``parse`` functions run when the options are built. A ``bool`` whose default is False
    is a plain switch (``store_true``); any other ``bool`` gets ``--flag/--no-flag``. A list
    takes several values (``nargs="+"``), or one per repetition with ``repeat``.
    """
    for f, hint in _fields(schema):
        base, _ = _base_type(hint)
        meta = f.metadata
        kwargs: dict[str, Any] = {"help": meta.get("help", "")}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        item = typing.get_args(base)[0] if typing.get_origin(base) is list else base
        if meta.get("parse") is None and item in (int, float):
            kwargs["type"] = item
        if base is bool:
            kwargs["action"] = "store_true" if _default(f) is False else argparse.BooleanOptionalAction
        elif meta.get("repeat"):
            kwargs["action"] = "append"
        elif typing.get_origin(base) is list and meta.get("parse") is None:
            kwargs["nargs"] = "+"
        if meta.get("positional"):
            if not meta.get("required") and "nargs" not in kwargs and "action" not in kwargs:
                kwargs.update(nargs="?", default=_default(f))
            parser.add_argument(f.name, **kwargs)
            continue
        if meta.get("required") or meta.get("cli_required"):
            kwargs["required"] = True
        parser.add_argument(*_flags(f), dest=f.name, default=_default(f), **kwargs)


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
    """A config value (possibly text) converted to the field's type."""
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
    return _check(name, hint, value, source)


def _check(name: str, hint, value: Any, source: str) -> Any:
    """A plain option's value checked against the field's type, never reinterpreted."""
    base, optional = _base_type(hint)
    where = f"{source}: {name}"
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required, got None")
    if base is Any:
        return value
    if typing.get_origin(base) is list:
        (item_type,) = typing.get_args(base)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check(name, item_type, v, source) for v in value]
    if base == PathArg:
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected True or False, got {value!r}")
        return value
    if base in (int, float):
        kind = numbers.Integral if base is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(f"{where}: expected {'an integer' if base is int else 'a number'}, "
                              f"got {value!r}")
        return base(value)
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


def _build(schema, layers, convert: Callable) -> tuple[Any, list[dataclasses.Field]]:
    """The ``schema`` instance of the merged layers, and its required fields left unset."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for data, source in layers:
        for name, value in _normalise_keys(data, schema, source).items():
            values[name], sources[name] = value, source
    kwargs = {}
    for f, hint in _fields(schema):
        if f.name not in values:
            continue
        parse, value = f.metadata.get("parse"), values[f.name]
        if parse is not None:
            value = None if value is None else parse(value)
        else:
            value = convert(f.name, hint, value, sources[f.name])
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise ConfigError(f"{sources[f.name]}: {f.name}={value!r} is not one of "
                              f"{', '.join(map(str, choices))}")
        kwargs[f.name] = value
    config = schema(**kwargs)
    missing = [f for f in dataclasses.fields(schema)
               if f.metadata.get("required") and getattr(config, f.name) is None]
    return config, missing


def build_config(schema, *layers: tuple[Mapping, str]):
    """Build a validated ``schema`` instance from ``(values, source name)`` layers.

    Later layers override earlier ones. Every value is converted to the field's type
    (text such as ``"none"`` or ``"64"`` included) and checked against its choices;
    unknown keys and missing required fields raise :class:`ConfigError`.
    """
    config, missing = _build(schema, layers, _coerce)
    if missing:
        raise ConfigError("missing required setting(s): " + ", ".join(
            f"{f.name} (flag {flag_name(f.name)} or key {f.name!r} in the config file)" for f in missing))
    return config


def load_options(schema, **values):
    """Build a validated ``schema`` instance of plain options from Python keywords.

    Values are taken as given (no text conversion): each is checked against its field's
    type (or given to its ``parse`` function) and choices. Unset fields keep the
    schema default.

    Raises:
        ConfigError: an unknown keyword (with a did-you-mean), a bad value, or a
            required option left unset.
    """
    config, missing = _build(schema, [(values, "keyword arguments")], _check)
    if missing:
        raise ConfigError("missing required option(s): " + ", ".join(
            f"{f.name} (argument {f.name})" if f.metadata.get("positional")
            else f"{f.name} (flag {_flags(f)[0]})" for f in missing))
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


def option_values(schema, args: argparse.Namespace) -> dict:
    """``{field: value}`` of ``schema`` in arguments parsed by a parser from :func:`add_arguments`."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(schema)}


def path_roles(schema) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(inputs, outputs)``: the fields of ``schema`` naming paths it reads and writes (see ``role``)."""
    inputs, outputs = [], []
    for f, hint in _fields(schema):
        role = f.metadata.get("role") or ("input" if _base_type(hint)[0] == PathArg else None)
        (outputs if role == "output" else inputs if role == "input" else []).append(f.name)
    return tuple(inputs), tuple(outputs)


def config_to_dict(config) -> dict:
    """The config as a JSON-able dict (the same keys a config file uses)."""
    return dataclasses.asdict(config)


def save_config(config, path: str | os.PathLike) -> Path:
    """Write the resolved config as JSON, atomically; it can be read back with ``--config``."""
    atomic_write_json(path, config_to_dict(config), indent=2)
    return Path(path)


__all__ = [
    "PathArg",
    "option",
    "flag_name",
    "path_roles",
    "add_config_arguments",
    "add_arguments",
    "read_config_file",
    "recipe_layers",
    "build_config",
    "load_config",
    "load_options",
    "config_from_args",
    "option_values",
    "config_to_dict",
    "save_config",
]
