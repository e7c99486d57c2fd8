"""Names of the models cococxr builds, without TensorFlow: architectures, backbones, losses, optimizers.

The command line reads its choices and help from here, and
:func:`cococxr.models.segmentation.build_segmentation_model` dispatches through it, so the
names are written once. Importing this module imports nothing heavy: an architecture
names its factory as ``"module:function"``, imported when a model is built
(:meth:`Architecture.factory`).

* :data:`ARCHITECTURES`: segmentation architectures by name, in registration order
  (``unet``, ``fpn``, ``linknet``, ``pspnet`` from segmentation_models, and the
  from-scratch ``plain_unet``); add one with :func:`register_architecture`. Every factory
  takes ``(backbone, input_shape, classes, activation, encoder_weights, encoder_freeze,
  **kwargs)``.
* :data:`BACKBONES`: the encoders segmentation_models knows, in its own order (its
  ``Backbones`` table; a test checks this list against ``sm.Backbones.models_names()``).
* :data:`LOSSES`, :data:`OPTIMIZERS`: the segmentation losses and the tf-keras optimizers
  by name.
* :data:`BACKENDS`, :data:`SMP_ARCHITECTURES`: the training backends of ``cococxr train
  segmentation`` (``sm``: tf-keras segmentation_models and ``plain_unet``; ``smp``:
  PyTorch segmentation_models_pytorch) and smp's architectures by lower-case name
  (its encoders, hundreds with timm's, are checked by smp when a model is built).
* :data:`SCRATCH_CLASSIFIERS`, :data:`TRANSFER_CLASSIFIERS`: the names
  :func:`cococxr.models.classifiers.build_classifier` takes.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from cococxr.errors import ConfigError


@dataclass(frozen=True)
class Architecture:
    """A segmentation architecture.

    Attributes:
        name: the name ``build_segmentation_model`` and ``--arch`` take.
        target: its factory as ``"module:function"``.
        uses_backbone: False when the architecture ignores ``backbone``.
    """

    name: str
    target: str
    uses_backbone: bool = True

    def factory(self) -> Callable:
        """The factory function (importing its module, and TensorFlow with it)."""
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, target: str, *, uses_backbone: bool = True) -> Architecture:
    """Register (or replace) an architecture under ``name``; returns its entry."""
    entry = Architecture(str(name).lower(), target, uses_backbone)
    ARCHITECTURES[entry.name] = entry
    return entry


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name`` (case-insensitive).

    Raises:
        ConfigError: no such architecture.
    """
    try:
        return ARCHITECTURES[str(name).lower()]
    except KeyError:
        raise ConfigError(f"unknown architecture {str(name).lower()!r}; choose one of "
                          f"{list(ARCHITECTURES)}") from None


def architecture_names() -> tuple[str, ...]:
    """The registered architecture names, in registration order."""
    return tuple(ARCHITECTURES)


for _name in ("unet", "fpn", "linknet", "pspnet"):
    register_architecture(_name, f"cococxr.models.segmentation:make_{_name}")
register_architecture("plain_unet", "cococxr.models.segmentation:make_plain_unet", uses_backbone=False)

# segmentation_models 1.0.1, segmentation_models/backbones/backbones_factory.py: its
# classification_models table plus the EfficientNets, minus the unsupported ones.
BACKBONES: tuple[str, ...] = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152",
    "seresnext50", "seresnext101", "senet154",
    "resnext50", "resnext101",
    "vgg16", "vgg19",
    "densenet121", "densenet169", "densenet201",
    "inceptionresnetv2", "inceptionv3",
    "mobilenet", "mobilenetv2",
    *(f"efficientnetb{i}" for i in range(8)),
)


def backbone_names() -> list[str]:
    """The backbone names segmentation_models knows."""
    return list(BACKBONES)


LOSSES: tuple[str, ...] = ("bce_dice", "dice", "bce", "focal", "focal_dice", "jaccard")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "nadam", "rmsprop", "sgd")

BACKENDS: tuple[str, ...] = ("sm", "smp")
#: segmentation_models_pytorch 0.6's model classes by the lower-case name ``--arch`` takes
SMP_ARCHITECTURES: dict[str, str] = {
    "unet": "Unet", "unetplusplus": "UnetPlusPlus", "manet": "MAnet", "linknet": "Linknet", "fpn": "FPN",
    "pspnet": "PSPNet", "deeplabv3": "DeepLabV3", "deeplabv3plus": "DeepLabV3Plus", "pan": "PAN",
    "upernet": "UPerNet", "segformer": "Segformer", "dpt": "DPT",
}

SCRATCH_CLASSIFIERS: tuple[str, ...] = ("separable_cnn", "cnn")
TRANSFER_CLASSIFIERS: tuple[str, ...] = ("xception", "inceptionv3", "resnet50", "vgg16", "vgg19", "mobilenetv2",
                                         *(f"efficientnetb{i}" for i in range(8)))

__all__ = [
    "Architecture",
    "ARCHITECTURES",
    "register_architecture",
    "get_architecture",
    "architecture_names",
    "BACKBONES",
    "backbone_names",
    "LOSSES",
    "OPTIMIZERS",
    "BACKENDS",
    "SMP_ARCHITECTURES",
    "SCRATCH_CLASSIFIERS",
    "TRANSFER_CLASSIFIERS",
]
