"""``cococxr app``: start the Streamlit demo app (:mod:`cococxr.pipelines.app.page`).

Streamlit runs in this process (``streamlit run``, headless, no usage statistics, no
file watcher, no developer menu), so stopping this process stops the server. The app's settings travel as
environment variables (see :mod:`cococxr.pipelines.app.page`); without ``--seg-model`` /
``--cls-model`` the app looks for the models ``cococxr demo`` trains:
``./cococxr-demo/models/segmentation.h5`` and ``classifier.h5``.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
from pathlib import Path

from cococxr.errors import ConfigError, MissingDependencyError

APP_SCRIPT = Path(__file__).with_name("page.py")
ENV_SEG_MODEL = "COCOCXR_APP_SEG_MODEL"
ENV_CLS_MODEL = "COCOCXR_APP_CLS_MODEL"
ENV_MAX_UPLOAD_MB = "COCOCXR_APP_MAX_UPLOAD_MB"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr app``."""
    parser.add_argument("--seg-model", help="segmentation model (.h5/.keras; default: "
                                            "./cococxr-demo/models/segmentation.h5, written by 'cococxr demo')")
    parser.add_argument("--cls-model", help="classifier with its .cococxr.json sidecar (default: "
                                            "./cococxr-demo/models/classifier.h5)")
    parser.add_argument("--port", type=int, default=8501, help="port to listen on (default: 8501)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--max-upload-mb", type=float, default=20.0,
                        help="largest accepted upload in MB (default: 20)")


def app_environment(args: argparse.Namespace) -> dict[str, str]:
    """The environment variables that carry the options to the app (model paths made absolute).

    Raises:
        ConfigError: a model file that does not exist, or a bad port or upload limit.
    """
    if not 0 < args.max_upload_mb <= 10_000:
        raise ConfigError(f"--max-upload-mb must be within (0, 10000], got {args.max_upload_mb}")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be within 1..65535, got {args.port}")
    env = {ENV_MAX_UPLOAD_MB: f"{args.max_upload_mb:g}"}
    for name, value in ((ENV_SEG_MODEL, args.seg_model), (ENV_CLS_MODEL, args.cls_model)):
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise ConfigError(f"model file {path} does not exist")
            env[name] = str(path.resolve())
    return env


def streamlit_arguments(args: argparse.Namespace) -> list[str]:
    """The ``streamlit run`` command line (without the program name).

    Streamlit's own upload limit is set to twice the app's, so that a file just over the
    limit reaches the app, which refuses it with a message stating the limit.
    """
    return ["run", str(APP_SCRIPT), "--server.port", str(args.port), "--server.address", args.host,
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
            "--server.maxUploadSize", str(math.ceil(2 * args.max_upload_mb))]


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr app`` until the server stops."""
    if importlib.util.find_spec("streamlit") is None:
        raise MissingDependencyError("cococxr app needs streamlit: pip install 'cococxr[app]'")
    os.environ.update(app_environment(args))
    from streamlit.web import cli  # deferred: streamlit is the optional app extra (checked above)

    print(f"cococxr app: http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    cli.main(args=streamlit_arguments(args), prog_name="streamlit", standalone_mode=False)
    return 0


__all__ = ["APP_SCRIPT", "app_environment", "configure_parser", "run", "streamlit_arguments"]
