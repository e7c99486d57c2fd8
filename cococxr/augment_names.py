"""Names of the augmentation presets and levers, and parsing of ``--augment`` (no albumentations here).

An augmentation is written ``PRESET[+LEVER...]`` or ``LEVER[+LEVER...]``, e.g.
``light+letterbox+exposure``; :mod:`cococxr.augment` builds it. Config schemas validate
the text with :func:`parse_augment` without importing albumentations (which imports torch).
"""
from __future__ import annotations

from cococxr.errors import ConfigError

PRESET_NAMES = ("light", "medium")

#: Levers against domain shift, in the order they are applied whatever order they are named in.
LEVERS = {
    "exposure": "random gamma 0.5..1.8, brightness ±20 %, contrast -50..+30 % (p 0.5 each)",
    "noise": "Gaussian noise, std 2..8 % of the range (p 0.3)",
    "blur": "Gaussian blur or downscale x0.25..0.5 and back (p 0.3)",
    "rotate": "rotation ±10° (p 0.5)",
    "zoom": "scale 0.8..1.25 and shift ±5 %, cropped or padded black (p 0.5)",
    "letterbox": "the image shrunk into a black frame of random aspect (one side 55..100 %, "
                 "the other 85..100 %), the mask identically (p 0.5)",
    "text": "burned-in text and markers (L, R, AP, dates...) drawn on the image only (p 0.5)",
}


def augment_parts(spec: str) -> tuple[str | None, list[str]]:
    """``(preset or None, levers in application order)`` of an augmentation text.

    Raises:
        ConfigError: an unknown or repeated name, or a preset not in first place.
    """
    names = [n.strip() for n in str(spec).split("+")]
    preset = names[0] if names[0] in PRESET_NAMES else None
    levers = names[1:] if preset else names
    known = sorted(PRESET_NAMES) + list(LEVERS)
    for name in levers:
        if name not in LEVERS:
            where = " (a preset may only come first)" if name in PRESET_NAMES else ""
            raise ConfigError(f"unknown augmentation {name!r} in {spec!r}{where}; known: {', '.join(known)} "
                              f"(combine with '+', e.g. light+letterbox+exposure)")
    if len(set(levers)) != len(levers):
        raise ConfigError(f"augmentation {spec!r} names a lever twice")
    order = list(LEVERS)
    return preset, sorted(levers, key=order.index)


def parse_augment(value) -> str | None:
    """Check an ``augment`` setting: None/"none", or ``PRESET[+LEVER...]`` / ``LEVER[+LEVER...]``."""
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    augment_parts(value)
    return str(value).strip().replace(" ", "")


__all__ = ["PRESET_NAMES", "LEVERS", "augment_parts", "parse_augment"]
