"""What the app runs with: model files and the upload limit, from the environment ``cococxr app`` sets.

``COCOCXR_APP_SEG_MODEL``, ``COCOCXR_APP_CLS_MODEL`` (default: the models ``cococxr demo``
writes, ``./cococxr-demo/models/segmentation.h5`` and ``classifier.h5``) and
``COCOCXR_APP_MAX_UPLOAD_MB``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cococxr.pipelines.app.launcher import ENV_CLS_MODEL, ENV_MAX_UPLOAD_MB, ENV_SEG_MODEL
from cococxr.pipelines.engine.layout import DEMO_OUT, Layout
from cococxr.uploads import MAX_UPLOAD_BYTES


@dataclass(frozen=True)
class Settings:
    """What the app runs with: model files (None: absent) and the upload limit."""

    seg_model: Path | None
    cls_model: Path | None
    max_upload_bytes: int = MAX_UPLOAD_BYTES

    @property
    def max_upload_mb(self) -> float:
        """The upload limit in MB."""
        return self.max_upload_bytes / 1024 / 1024


def demo_layout():
    """Where ``cococxr demo`` writes with its default ``--out`` (relative to the working folder)."""
    return Layout(DEMO_OUT)


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def settings_from_env(environ=os.environ) -> Settings:
    """Read the settings from the environment; unset models default to the demo's."""
    seg, cls = environ.get(ENV_SEG_MODEL), environ.get(ENV_CLS_MODEL)
    megabytes = float(environ.get(ENV_MAX_UPLOAD_MB) or MAX_UPLOAD_BYTES / 1024 / 1024)
    layout = demo_layout()
    return Settings(seg_model=Path(seg) if seg else _existing(layout.seg_model),
                    cls_model=Path(cls) if cls else _existing(layout.cls_model),
                    max_upload_bytes=int(megabytes * 1024 * 1024))


__all__ = ["Settings", "demo_layout", "settings_from_env"]
