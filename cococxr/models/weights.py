"""Resolve a ``weights`` argument: ``None``, ``"imagenet"`` or a path to an ``.h5`` file.

Shared by the segmentation and classifier factories so that every model takes pretrained
weights the same way and fails the same way without a network:

* ``None``: random initialisation (always works offline);
* ``"imagenet"``: downloaded by Keras on first use into ``~/.keras/models`` (or
  ``$KERAS_HOME/models``). Before building, the download host is probed with a 2 s TCP
  connection (through ``$HTTPS_PROXY`` when set); offline, :class:`WeightsUnavailableError`
  is raised at once, naming the alternatives. A file already in the Keras cache whose
  name contains ``cache_hint`` skips the probe;
* a path to an ``.h5``/``.hdf5`` file: loaded layer by layer by name with
  :func:`load_weights_file` (layers whose shapes differ are skipped).
"""
from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request
from pathlib import Path

import h5py

from cococxr.errors import ConfigError, WeightsUnavailableError

WEIGHT_SUFFIXES = (".h5", ".hdf5")
PROBE_TIMEOUT_S = 2.0


def keras_cache_dir() -> Path:
    """Return the folder where Keras caches downloaded weights."""
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "models"


def _normalise(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def is_cached(cache_hint: str | None) -> bool:
    """Tell whether a file whose name contains ``cache_hint`` is in the Keras cache.

    Dashes, underscores and case are ignored, so ``"efficientnetb0"`` matches
    ``efficientnet-b0_..._notop.h5``. This is a hint only: a false match leaves the
    download to Keras, whose failure is still turned into WeightsUnavailableError.
    """
    folder = keras_cache_dir()
    if not cache_hint or not folder.is_dir():
        return False
    hint = _normalise(cache_hint)
    return any(hint in _normalise(p.name) for p in folder.iterdir())


def _probe_address(host: str) -> tuple[str, int]:
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return parsed.hostname or host, parsed.port or 80
    return host, 443


def host_reachable(host: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Return True when a TCP connection to ``host`` (or the HTTPS proxy) opens in time."""
    try:
        with socket.create_connection(_probe_address(host), timeout=timeout):
            return True
    except OSError:
        return False


def offline_message(what: str, host: str) -> str:
    """Build the message of the error raised when imagenet weights cannot be downloaded."""
    return (
        f"{what}: weights='imagenet' need a download from {host}, which cannot be reached "
        f"(no network?). Use weights=None to start from random weights, or pass the path "
        f"of a local .h5 weights file (for instance one copied into {keras_cache_dir()} "
        f"from a machine with network access)."
    )


def resolve_weights(weights, what: str, *, host: str = "github.com",
                    cache_hint: str | None = None) -> None | str | Path:
    """Check a ``weights`` argument before a model is built.

    Args:
        weights: ``None``, ``"imagenet"`` or a path (str or PathLike) to an .h5 file.
        what: the model/backbone the weights are for; it starts every error message.
        host: the host Keras downloads the imagenet weights from.
        cache_hint: a substring of the cached weights file name (see :func:`is_cached`).

    Returns:
        ``None``, ``"imagenet"``, or the :class:`~pathlib.Path` of an existing file.

    Raises:
        WeightsUnavailableError: imagenet weights while offline, or a missing file.
        ConfigError: any other value.
    """
    if weights is None:
        return None
    if isinstance(weights, str) and weights.lower() == "imagenet":
        if not is_cached(cache_hint) and not host_reachable(host):
            raise WeightsUnavailableError(offline_message(what, host))
        return "imagenet"
    if not isinstance(weights, (str, os.PathLike)):
        raise ConfigError(f"{what}: weights must be None, 'imagenet' or a path to an .h5 "
                          f"file, not {weights!r}")
    path = Path(weights)
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ConfigError(f"{what}: weights {str(weights)!r} is neither None, 'imagenet' nor "
                          f"a path ending in {' or '.join(WEIGHT_SUFFIXES)}")
    if not path.is_file():
        raise WeightsUnavailableError(f"{what}: weights file {path} does not exist")
    return path


def _file_layer_names(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        return [n.decode() if isinstance(n, bytes) else str(n)
                for n in group.attrs.get("layer_names", [])]


def load_weights_file(model, path: str | os.PathLike) -> list[str]:
    """Load an .h5 weights (or full-model .h5) file into ``model`` by layer name.

    Layers absent from the file keep their weights; layers whose weight shapes differ
    are skipped (``skip_mismatch=True``).

    Returns:
        The names of the model layers that had a same-named layer with weights in the
        file (shape mismatches included).

    Raises:
        WeightsUnavailableError: the file is missing or unreadable.
        ConfigError: no layer of the file matches a layer of the model.
    """
    path = Path(path)
    try:
        names = set(_file_layer_names(path))
    except (OSError, KeyError) as exc:
        raise WeightsUnavailableError(f"cannot read weights file {path}: {exc}") from exc
    matched = [layer.name for layer in model.layers if layer.name in names and layer.weights]
    if not matched:
        raise ConfigError(f"weights file {path} has no layer named like a layer of model "
                          f"{model.name!r}; was it saved from another architecture/backbone?")
    model.load_weights(str(path), by_name=True, skip_mismatch=True)
    return matched


__all__ = [
    "resolve_weights",
    "load_weights_file",
    "host_reachable",
    "is_cached",
    "keras_cache_dir",
    "WEIGHT_SUFFIXES",
]
