"""PyTorch segmentation models saved as TorchScript (``.pt``), used like the tf-keras ones.

A model trained by ``cococxr train segmentation --backend smp`` is saved by
:func:`save_torchscript` wrapped in :class:`ProbabilityHead`, so the file takes what a
tf-keras segmentation model takes, float32 ``(B, H, W, C)``, and returns its per-class
probabilities ``(B, H, W, K)``. :func:`load_torchscript` reads it back with torch alone
(no segmentation_models_pytorch, which crashes when imported after TensorFlow with
torch 2.14 / TF 2.21; TorchScript loads fine beside TensorFlow, ``torch.export`` archives
do not), as a :class:`TorchSegmentationModel` with the ``predict_on_batch`` and
``count_params`` of a Keras model, so evaluate, predict, compare, the lung masker and
the app read it unchanged.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from cococxr.errors import ConfigError

TORCH_SUFFIX = ".pt"
_SHAPES_MEMBER = "cococxr_shapes.json"  # extra file of the archive: Keras-style input and output shapes


class ProbabilityHead(torch.nn.Module):
    """``(B, H, W, C)`` input -> the wrapped model's logits -> ``(B, H, W, K)`` probabilities.

    Args:
        model: a module mapping ``(B, C, H, W)`` to ``(B, K, H, W)`` logits.
        activation: ``"sigmoid"`` (independent classes) or ``"softmax"``.
    """

    def __init__(self, model: torch.nn.Module, activation: str = "sigmoid"):
        super().__init__()
        if activation not in ("sigmoid", "softmax"):
            raise ConfigError(f"activation must be sigmoid or softmax, got {activation!r}")
        self.model = model
        self.softmax = activation == "softmax"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(images.permute(0, 3, 1, 2))
        probs = torch.softmax(logits, dim=1) if self.softmax else torch.sigmoid(logits)
        return probs.permute(0, 2, 3, 1)


def save_torchscript(model: torch.nn.Module, path: str | os.PathLike, example: np.ndarray,
                     activation: str = "sigmoid") -> Path:
    """Trace ``ProbabilityHead(model)`` on ``example`` (B, H, W, C) and save it atomically.

    The model is traced in eval mode (batch norm uses its running statistics) and put
    back in the mode it was in.
    """
    path = Path(path)
    head = ProbabilityHead(model, activation)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # trace is deprecated for torch.export,
            batch = torch.from_numpy(np.ascontiguousarray(example, np.float32))
            traced = torch.jit.trace(head, batch, check_trace=False)  # whose archives crash beside TensorFlow
            out_shape = tuple(traced(batch).shape)
        shapes = {"input_shape": [None, *batch.shape[1:]], "output_shape": [None, *out_shape[1:]]}
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=TORCH_SUFFIX, dir=path.parent)
        os.close(fd)
        try:
            traced.save(tmp, _extra_files={_SHAPES_MEMBER: json.dumps(shapes)})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        model.train(was_training)
    return path


class TorchSegmentationModel:
    """A TorchScript segmentation model behind the Keras calls cococxr's inference uses.

    Args:
        module: the loaded TorchScript module ((B, H, W, C) -> (B, H, W, K) probabilities).
        input_shape, output_shape: Keras-style shapes ``(None, H, W, C)``, ``(None, H, W, K)``.
        path: the file it came from.
    """

    def __init__(self, module: torch.jit.ScriptModule, input_shape: tuple, output_shape: tuple,
                 path: Path | None = None):
        self.module = module.eval()
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        self.path = path

    def predict_on_batch(self, images) -> np.ndarray:
        """Probabilities ``(B, H, W, K)`` of a float32 batch ``(B, H, W, C)``."""
        batch = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        with torch.no_grad():
            return self.module(batch).numpy()

    def count_params(self) -> int:
        """Number of parameters."""
        return int(sum(p.numel() for p in self.module.parameters()))


def load_torchscript(path: str | os.PathLike) -> TorchSegmentationModel:
    """Load a model saved by :func:`save_torchscript`.

    Raises:
        ConfigError: the file is missing or is not a TorchScript archive.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: model file does not exist")
    extra = {_SHAPES_MEMBER: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated like trace (see save_torchscript)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        shapes = json.loads(extra[_SHAPES_MEMBER])
        return TorchSegmentationModel(module, shapes["input_shape"], shapes["output_shape"], path)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a TorchScript segmentation model saved by cococxr ({exc})") from exc


__all__ = ["TORCH_SUFFIX", "ProbabilityHead", "save_torchscript", "TorchSegmentationModel", "load_torchscript"]
