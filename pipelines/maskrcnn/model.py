"""The torchvision Mask R-CNN: import guard, model factory, device choice and checkpoints.

torch and torchvision are the optional ``baseline`` extra, imported only inside these
functions; :func:`require_torch` turns their absence into a
:class:`~cococxr.errors.MissingDependencyError` naming the install command.

A checkpoint (``model.pt``) is one ``torch.save`` dict, written atomically::

    {"format": "cococxr-maskrcnn", "backend": "torchvision" | "detectron2",
     "state_dict": ..., "label_map": LabelMap.to_dict(), "config": {...},
     "train_stats": {...}}

It holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)``.

TensorFlow and Triton do not share a process in that order: once TensorFlow is loaded,
loading Triton's ``libtriton.so`` (which ``import torchvision`` does through
``torch._dynamo`` when the ``triton`` package is installed, as with the CUDA wheels)
crashes the interpreter with a segmentation fault. :func:`require_torch` therefore marks
``triton`` as absent when TensorFlow is already imported; torch then runs without it
(only ``torch.compile`` on GPUs needs it, and nothing here compiles).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from cococxr.atomic import atomic_open
from cococxr.errors import ConfigError, MissingDependencyError
from cococxr.pipelines.maskrcnn.labels import LabelMap

TORCH_HINT = "pip install 'cococxr[baseline]'"
CHECKPOINT_FORMAT = "cococxr-maskrcnn"
DEVICES = ("auto", "cpu", "cuda")


def shield_from_tensorflow() -> None:
    """Keep Triton out of a process that has loaded TensorFlow (see the module docstring)."""
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None  # `import triton` now raises ImportError: torch skips it


def require_torch():
    """Import and return ``(torch, torchvision)``, after :func:`shield_from_tensorflow`.

    Raises:
        MissingDependencyError: either is not installed; the message names the extra.
    """
    shield_from_tensorflow()
    try:
        import torch  # deferred: the optional baseline extra; this function is its import guard
        import torchvision  # deferred: as torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"the Mask R-CNN baseline needs torch and torchvision ({exc}); install them with: "
            f"{TORCH_HINT}") from exc
    return torch, torchvision


def resolve_device(name: str = "auto"):
    """``torch.device`` for ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available)."""
    torch, _ = require_torch()
    if name not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, not {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def build_maskrcnn(num_classes: int, min_size: int = 800, max_size: int = 1333, *, rois_per_image: int = 512,
                   proposals_per_image: int = 1000, detections_per_image: int = 100):
    """torchvision's Mask R-CNN ResNet-50 FPN, randomly initialised (no downloads).

    Args:
        num_classes: K object classes; the model has K + 1 outputs (0 = background).
        min_size, max_size: the model resizes each image so its short side is
            ``min_size`` unless the long side would pass ``max_size``.
        rois_per_image: proposals sampled per training image for the box and mask
            heads (detectron2's ``ROI_HEADS.BATCH_SIZE_PER_IMAGE``).
        proposals_per_image: RPN proposals kept per image at inference (detectron2's
            ``RPN.POST_NMS_TOPK_TEST``); the box head runs on each of them.
        detections_per_image: most instances returned per image.
    """
    _, torchvision = require_torch()
    if num_classes < 1:
        raise ConfigError(f"Mask R-CNN needs at least one class, got {num_classes}")
    return torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes + 1, min_size=min_size,
        max_size=max_size, box_batch_size_per_image=rois_per_image,
        rpn_post_nms_top_n_test=proposals_per_image, box_detections_per_img=detections_per_image)


def count_parameters(model) -> int:
    """Number of parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))


def save_checkpoint(path: str | os.PathLike, model, label_map: LabelMap, config: dict, *,
                    backend: str = "torchvision", train_stats: dict | None = None) -> Path:
    """Write a checkpoint atomically (see the module docstring) and return its path."""
    torch, _ = require_torch()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "backend": backend, "state_dict": state,
               "label_map": label_map.to_dict(), "config": dict(config),
               "train_stats": dict(train_stats or {})}
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict (tensors on the CPU).

    Raises:
        ConfigError: the file is missing or is not a cococxr Mask R-CNN checkpoint.
    """
    torch, _ = require_torch()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint (expected a run folder's model.pt)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike
        raise ConfigError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: not a cococxr Mask R-CNN checkpoint (no format "
                          f"{CHECKPOINT_FORMAT!r}); write it with `cococxr train maskrcnn`")
    return payload


def load_torchvision_model(payload: dict, device="cpu"):
    """The torchvision model of a checkpoint dict, in eval mode on ``device``."""
    label_map = LabelMap.from_dict(payload["label_map"])
    config = payload["config"]
    model = build_maskrcnn(len(label_map), config["min_size"], config["max_size"],
                           proposals_per_image=config["proposals_per_image"],
                           detections_per_image=config["detections_per_image"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()


__all__ = ["TORCH_HINT", "DEVICES", "shield_from_tensorflow", "require_torch", "resolve_device", "build_maskrcnn",
           "count_parameters", "save_checkpoint", "read_checkpoint", "load_torchvision_model"]
