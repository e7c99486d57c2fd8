"""segmentation_models_pytorch models: any smp architecture with any of its encoders.

Import this module before TensorFlow: with torch 2.14 and TF 2.21, importing
segmentation_models_pytorch (timm, through triton) in a process that already loaded
TensorFlow crashes it, so :func:`import_smp` refuses with a :class:`ConfigError` instead.
``cococxr train segmentation --backend smp`` runs in its own process for that reason;
trained models are saved as TorchScript (:mod:`cococxr.models.torchscript`), which loads
anywhere without smp.

Pretrained encoder weights download from smp's hosts on first use; offline (the host
does not answer a 2 s probe and ``HF_HUB_OFFLINE`` is unset) a
:class:`WeightsUnavailableError` says so at once, as for the tf-keras models.
"""
from __future__ import annotations

import os
import sys

from cococxr.errors import ConfigError, WeightsUnavailableError
from cococxr.models.registry import SMP_ARCHITECTURES
from cococxr.models.weights import host_reachable

WEIGHTS_HOST = "huggingface.co"


def import_smp():
    """Import segmentation_models_pytorch, refusing when TensorFlow is already loaded."""
    if "segmentation_models_pytorch" not in sys.modules and "tensorflow" in sys.modules:
        raise ConfigError("segmentation_models_pytorch cannot be imported after TensorFlow (the process "
                          "crashes): run the smp backend in its own process, e.g. `cococxr train "
                          "segmentation --backend smp ...`, or import it before TensorFlow")
    import segmentation_models_pytorch as smp  # deferred: heavy, optional (baseline extra)

    return smp


def smp_class_name(arch: str) -> str:
    """smp's model class for ``arch`` (case-insensitive).

    Raises:
        ConfigError: an architecture smp does not have.
    """
    try:
        return SMP_ARCHITECTURES[str(arch).lower()]
    except KeyError:
        raise ConfigError(f"unknown smp architecture {arch!r}; smp has {sorted(SMP_ARCHITECTURES)}") from None


def _check_weights(encoder: str, weights: str | None) -> None:
    if weights is None or os.environ.get("HF_HUB_OFFLINE"):
        return
    if not host_reachable(WEIGHTS_HOST):
        raise WeightsUnavailableError(
            f"smp encoder {encoder}: encoder_weights={weights!r} need a download from {WEIGHTS_HOST}, which "
            f"cannot be reached (no network?). Use encoder_weights None to start from random weights, or "
            f"set HF_HUB_OFFLINE=1 to use weights already in the Hugging Face cache.")


def build_smp_model(arch: str, encoder: str, classes: int, in_channels: int, encoder_weights: str | None = None):
    """An smp model ``(B, in_channels, H, W)`` -> ``(B, classes, H, W)`` logits.

    Args:
        arch: an smp architecture (see :data:`~cococxr.models.registry.SMP_ARCHITECTURES`).
        encoder: an smp encoder name (``resnet18``, ``efficientnet-b0``, ``tu-<timm name>``...).
        classes: output channels.
        in_channels: input channels.
        encoder_weights: None (random) or an smp weight name such as ``"imagenet"``.

    Raises:
        ConfigError: unknown architecture or encoder, or TensorFlow already loaded.
        WeightsUnavailableError: pretrained weights while offline.
    """
    class_name = smp_class_name(arch)
    smp = import_smp()
    if not str(encoder).startswith("tu-") and encoder not in smp.encoders.get_encoder_names():
        raise ConfigError(f"unknown smp encoder {encoder!r}: use one of "
                          f"segmentation_models_pytorch.encoders.get_encoder_names() or 'tu-<timm model>'")
    _check_weights(encoder, encoder_weights)
    try:
        return getattr(smp, class_name)(encoder, encoder_weights=encoder_weights, in_channels=in_channels,
                                        classes=classes)
    except (KeyError, ValueError, RuntimeError) as exc:  # smp's and timm's errors for bad combinations
        raise ConfigError(f"smp {class_name} with encoder {encoder!r}, weights {encoder_weights!r}: {exc}") from exc


__all__ = ["WEIGHTS_HOST", "import_smp", "smp_class_name", "build_smp_model"]
