"""Training and inference times as the pipelines report them (``seconds_per_epoch``, ``ms_per_image``)."""
from __future__ import annotations

from dataclasses import dataclass, field


def seconds_per_epoch(seconds: list[float], last_truncated: bool) -> float | None:
    """Mean training seconds of the full epochs after the first (which traces the graph)."""
    full = seconds[:-1] if last_truncated and len(seconds) > 1 else seconds
    steady = full[1:] if len(full) > 1 else full
    return sum(steady) / len(steady) if steady else None


@dataclass
class InferenceTimer:
    """Accumulates model-only inference time (the first, graph-tracing batch excluded)."""

    seconds: float = 0.0
    images: int = 0
    warmed_up: bool = field(default=False, repr=False)

    @property
    def ms_per_image(self) -> float | None:
        """Mean milliseconds per image, or None before any timed batch."""
        return 1000.0 * self.seconds / self.images if self.images else None


__all__ = ["seconds_per_epoch", "InferenceTimer"]
