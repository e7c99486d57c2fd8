"""``cococxr train classifier``: train an image classifier (whole or lung-masked images) into a run folder.

Recipe: images decoded from the COCO file, histogram-equalised, resized to
``input_size``; with ``--mask-with`` the lungs are kept (``coco``: the file's lung masks;
a segmentation model file: its predicted lungs, thresholded at 0.5) and the masked image
is equalised again. Labels are the image-level labels merged into the output classes of
``--classes`` (:mod:`cococxr.pipelines.classification.labels`); training batches are
class-balanced, validation sees every image once. Adam, ReduceLROnPlateau (factor 0.5),
EarlyStopping and the best model on validation loss; for transfer models an optional
second phase (``--fine-tune-epochs``) unfreezes the backbone at a lower learning rate.
After training, the positive class's threshold is tuned on validation (best F1, or a
target sensitivity) and saved in the model's sidecar (``model.cococxr.json``).

The run folder holds ``config.json``, ``model.h5``, ``model.cococxr.json``,
``history.csv``, ``learning_curves.png``, ``metrics.json`` (validation metrics at the
default and tuned thresholds, plus training facts), ``predictions.csv``,
``classification_report.txt``, ``confusion_matrix.png``, ``confusion_matrix_tuned.png``,
``report.html`` and ``tensorboard/``.
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from cococxr.errors import ConfigError
from cococxr.pipelines.engine.batchnorm import check_bn_momentum, set_bn_momentum
from cococxr.config import (add_config_arguments, config_from_args, config_to_dict, load_config,
                                      option, save_config)
from cococxr.pipelines.classification.thresholds import TUNE_MODES

log = logging.getLogger(__name__)

# Mirror cococxr.models.classifiers (not imported here: it loads TensorFlow).
SCRATCH_MODELS = ("separable_cnn", "cnn")
TRANSFER_MODELS = ("xception", "inceptionv3", "resnet50", "vgg16", "vgg19", "mobilenetv2",
                   *(f"efficientnetb{i}" for i in range(8)))
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CURVES_FILE = "learning_curves.png"
REPORT_FILE = "report.html"
MONITOR = "val_loss"


@dataclass
class ClassificationConfig:
    """Settings of a classifier training run (flags and config-file keys)."""

    train: str | None = option(None, "COCO JSON of the training images (image-level labels)", required=True,
                               metavar="JSON")
    val: str | None = option(None, "COCO JSON of the validation images (threshold tuned on it)", required=True,
                             metavar="JSON")
    image_root: str | None = option(None, "folder of the images (default: as each COCO file says)",
                                    metavar="DIR")
    classes: str | None = option(None, "output classes: 'A,B' or 'COVID=COVID-19*;other=*' (';' between "
                                       "classes, ',' between merged labels, globs allowed)", required=True,
                                 metavar="SPEC")
    one_vs_rest: bool = option(False, "--classes names one class; add 'not <class>' = every other label")
    model: str = option("separable_cnn", "classifier architecture", choices=SCRATCH_MODELS + TRANSFER_MODELS)
    model_options: str | None = option(None, "options of the --model builder, 'key=value;key=value' with YAML "
                                             "values, e.g. 'batch_norm=false;base_filters=16' for cnn",
                                       metavar="OPTIONS")
    bn_momentum: float | None = option(None, "momentum of every BatchNormalization layer (default: the model's, "
                                             "0.99); 0.9 lets the statistics used at inference catch up in a "
                                             "short training")
    weights: str | None = option(None, "none, imagenet (transfer models; needs network or the Keras cache) "
                                       "or a .h5 file", metavar="WEIGHTS")
    mask_with: str = option("none", "none (whole image), coco (the COCO file's lung masks) or a "
                                    "segmentation model file (its predicted lungs)", metavar="none|coco|MODEL")
    mask_classes: list[str] = option(["lung"], "mask categories (coco) or segmentation classes united "
                                               "into the lung mask", metavar="NAME")
    input_size: int = option(224, "images are resized to SIZE x SIZE", metavar="SIZE")
    channels: int = option(1, "input channels (1 = grayscale; transfer models repeat it)", choices=(1, 3))
    equalize: str | None = option("hist", "histogram equalisation (none to disable)", choices=("hist", "clahe"))
    augment: str | None = option("light", "augmentation of training images (none to disable)",
                                 choices=("light", "medium"))
    balance: bool = option(True, "class-balanced training batches")
    optimizer: str = option("adam", "optimizer", choices=OPTIMIZERS)
    lr: float = option(1e-3, "initial learning rate")
    epochs: int = option(30, "maximum number of epochs (first phase)")
    fine_tune_epochs: int = option(0, "transfer models: epochs of a second phase with the backbone unfrozen")
    fine_tune_lr: float = option(1e-5, "learning rate of the fine-tuning phase")
    fine_tune_layers: int | None = option(None, "unfreeze only the backbone's last N layers (default: all)")
    batch_size: int = option(16, "images per batch")
    steps_per_epoch: int | None = option(None, "training batches per epoch (default: one balanced pass)")
    validation_steps: int | None = option(None, "validation batches per epoch (default: all)")
    max_train_seconds: float | None = option(None, "wall-clock budget of each training phase", metavar="SECONDS")
    reduce_lr_patience: int = option(3, "epochs without val-loss improvement before halving the "
                                        "learning rate (0: never)")
    early_stopping_patience: int = option(8, "epochs without val-loss improvement before stopping (0: never)")
    tune: str | None = option("f1", "threshold tuning on validation (none: most probable class)",
                              choices=TUNE_MODES)
    target_sensitivity: float = option(0.9, "sensitivity to reach with --tune sensitivity")
    positive_class: str | None = option(None, "class whose threshold is tuned (default: the first)",
                                        metavar="CLASS")
    n_boot: int = option(1000, "bootstrap resamples for the AUC interval")
    seed: int = option(0, "seed of weights, sampling and augmentation")
    out: str | None = option(None, "run folder (default: RUNS_DIR/NAME-TIMESTAMP)", metavar="DIR")
    runs_dir: str = option("runs", "parent folder of timestamped run folders", metavar="DIR")
    name: str | None = option(None, "run name (default: classifier-MODEL)")
    model_format: str = option("h5", "model file format", choices=("h5", "keras"))
    tensorboard: bool = option(True, "write TensorBoard logs")
    progress: int = option(1, "Keras output: 0 silent, 1 progress bar, 2 one line per epoch", choices=(0, 1, 2))


def _check(cfg: ClassificationConfig) -> None:
    for name in ("epochs", "batch_size", "input_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.fine_tune_epochs < 0:
        raise ConfigError(f"fine_tune_epochs must be >= 0, got {cfg.fine_tune_epochs}")
    if cfg.fine_tune_epochs and cfg.model in SCRATCH_MODELS:
        raise ConfigError(f"fine_tune_epochs: {cfg.model} is trained from scratch in one phase; fine-tuning "
                          f"needs a transfer model ({', '.join(TRANSFER_MODELS)})")
    if not 0 < cfg.target_sensitivity <= 1:
        raise ConfigError(f"target_sensitivity must be in (0, 1], got {cfg.target_sensitivity}")
    parse_model_options(cfg.model_options)
    check_bn_momentum(cfg.bn_momentum)


def parse_model_options(text: str | None) -> dict:
    """``"a=1;b=false;c=[8,16]"`` -> ``{"a": 1, "b": False, "c": [8, 16]}`` (values parsed as YAML)."""
    import yaml

    options = {}
    for part in (p for p in (text or "").split(";") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"model_options: expected 'key=value', got {part!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"model_options: cannot read the value of {key.strip()!r} ({exc})") from exc
    taken = sorted(set(options) & {"optimizer", "learning_rate", "loss", "weights", "input_shape", "num_classes"})
    if taken:
        raise ConfigError(f"model_options: {taken} are set by their own flags (--optimizer, --lr, --weights, "
                          f"--input-size, --classes)")
    return options


def _build_model(cfg: ClassificationConfig, num_classes: int):
    from cococxr.models.classifiers import build_classifier

    options = parse_model_options(cfg.model_options)
    try:
        model = build_classifier(cfg.model, num_classes, (cfg.input_size, cfg.input_size, cfg.channels),
                                 cfg.weights, optimizer=cfg.optimizer, learning_rate=cfg.lr, **options)
    except TypeError as exc:
        raise ConfigError(f"model_options {sorted(options)} for {cfg.model}: {exc}") from exc
    if cfg.bn_momentum is not None:
        set_bn_momentum(model, cfg.bn_momentum)
    return model


def _sidecar(cfg: ClassificationConfig, train_coco):
    """The sidecar of this run (threshold still unset): classes resolved on the training file."""
    from cococxr.pipelines.classification.data import MASK_MODES
    from cococxr.pipelines.classification.labels import one_vs_rest_spec, resolve_classes
    from cococxr.pipelines.classification.thresholds import ClassifierSidecar

    spec = one_vs_rest_spec(cfg.classes) if cfg.one_vs_rest else cfg.classes
    groups = resolve_classes(spec, train_coco)
    names = list(groups)
    if cfg.positive_class is not None and cfg.positive_class not in names:
        raise ConfigError(f"positive_class {cfg.positive_class!r} is not one of the classes {names}")
    mask_with = cfg.mask_with if cfg.mask_with in MASK_MODES else str(Path(cfg.mask_with).resolve())
    return ClassifierSidecar(class_names=names, class_spec=spec, groups=groups, input_size=cfg.input_size,
                             channels=cfg.channels, equalize=cfg.equalize, mask_with=mask_with,
                             mask_classes=list(cfg.mask_classes), positive_class=cfg.positive_class or names[0])


def _fit(model, train_seq, val_seq, cfg: ClassificationConfig, cbs) -> None:
    """Phase one, then (transfer models, ``fine_tune_epochs``) phase two with the backbone unfrozen."""
    from cococxr._tf import keras
    from cococxr.models.classifiers import fine_tune

    common = dict(validation_data=val_seq, steps_per_epoch=cfg.steps_per_epoch,
                  validation_steps=cfg.validation_steps, callbacks=cbs.callbacks, verbose=cfg.progress, workers=1)
    model.fit(train_seq, epochs=cfg.epochs, **common)
    if not cfg.fine_tune_epochs or (cbs.budget and cbs.budget.stopped):
        return
    done = len(cbs.timer.seconds)
    log.info("fine-tuning the backbone for %d epoch(s) at learning rate %g", cfg.fine_tune_epochs, cfg.fine_tune_lr)
    fine_tune(model, cfg.fine_tune_lr, cfg.fine_tune_layers)
    for callback in cbs.callbacks:  # keep phase one's rows in history.csv
        if isinstance(callback, keras.callbacks.CSVLogger):
            callback.append = True
    model.fit(train_seq, initial_epoch=done, epochs=done + cfg.fine_tune_epochs, **common)


def _tune(sidecar, preds, cfg: ClassificationConfig):
    """The sidecar with the threshold tuned on the validation predictions (unchanged if impossible)."""
    import dataclasses

    from cococxr.pipelines.classification.thresholds import tune_threshold

    positive = sidecar.positive_index()
    if cfg.tune is None:
        return sidecar
    if not (preds.y_true == positive).any():
        log.warning("no validation image of %r: the threshold is not tuned", sidecar.positive_class)
        return sidecar
    threshold, stats = tune_threshold(preds.y_true, preds.probs, positive, cfg.tune, cfg.target_sensitivity)
    tuning = {"mode": cfg.tune, "target_sensitivity": cfg.target_sensitivity if cfg.tune == "sensitivity" else None,
              "on": "validation", "stats": stats}
    return dataclasses.replace(sidecar, threshold=threshold, tuning=tuning)


def _write_report(run_dir: Path, cfg: ClassificationConfig, metrics: dict) -> None:
    from cococxr.pipelines.classification.evaluate import add_report_sections, format_metrics
    from cococxr.reports import HtmlReport

    report = HtmlReport(f"cococxr classifier run {run_dir.name}")
    report.heading("Validation")
    report.paragraph(format_metrics(metrics))
    add_report_sections(report, run_dir, metrics)
    if (run_dir / CURVES_FILE).is_file():
        report.heading("Learning curves")
        report.image((run_dir / CURVES_FILE).read_bytes(), "learning curves")
    report.heading("Config")
    report.json_block(config_to_dict(cfg))
    report.write(run_dir / REPORT_FILE)


def train_classifier(config=None, **overrides) -> dict:
    """Train a classifier, tune its threshold on validation and write its run folder.

    Args:
        config: a :class:`ClassificationConfig`, a dict, a YAML/JSON file path, or None.
        **overrides: config fields that win over ``config``.

    Returns:
        ``{"run_dir", "model", "sidecar", "metrics", "config"}``.
    """
    cfg = load_config(ClassificationConfig, config, **overrides)
    _check(cfg)
    from cococxr._tf import keras
    from cococxr.coco import CocoDataset
    from cococxr.models.io import load_model
    from cococxr.pipelines.classification.data import classifier_sequence, labelled_coco, mask_source, predict
    from cococxr.pipelines.classification.evaluate import write_evaluation
    from cococxr.pipelines.classification.labels import merge_labels
    from cococxr.pipelines.engine.runs import build_callbacks, create_run_dir, write_json
    from cococxr.pipelines.segmentation.train import seconds_per_epoch
    from cococxr.pipelines.classification.thresholds import write_sidecar

    keras.utils.set_random_seed(cfg.seed)
    train_raw = CocoDataset(cfg.train, cfg.image_root)
    sidecar = _sidecar(cfg, train_raw)
    train_coco = merge_labels(train_raw, sidecar.groups)
    val_coco = labelled_coco(CocoDataset(cfg.val, cfg.image_root), sidecar)
    run_dir = create_run_dir(cfg.out, cfg.name or f"classifier-{cfg.model}", cfg.runs_dir)
    save_config(cfg, run_dir / CONFIG_FILE)
    masker = mask_source(sidecar.mask_with, sidecar.mask_classes)
    train_seq = classifier_sequence(train_coco, sidecar, masker=masker, balance=cfg.balance, augment=cfg.augment,
                                    shuffle=True, batch_size=cfg.batch_size, seed=cfg.seed)
    val_seq = classifier_sequence(val_coco, sidecar, masker=masker, batch_size=cfg.batch_size, seed=cfg.seed)
    model = _build_model(cfg, len(sidecar.class_names))
    model_path = run_dir / f"model.{cfg.model_format}"
    cbs = build_callbacks(run_dir, model_path, monitor=MONITOR, mode="min",
                          reduce_lr_patience=cfg.reduce_lr_patience,
                          early_stopping_patience=cfg.early_stopping_patience, tensorboard=cfg.tensorboard,
                          max_train_seconds=cfg.max_train_seconds)
    log.info("training %s on %d images (%s), validating on %d -> %s", cfg.model, len(train_seq.image_ids),
             ", ".join(sidecar.class_names), len(val_seq.image_ids), run_dir)
    start = time.perf_counter()
    _fit(model, train_seq, val_seq, cfg, cbs)
    train_seconds = time.perf_counter() - start
    preds = predict(load_model(model_path, compile=False), val_seq)
    sidecar = _tune(sidecar, preds, cfg)
    write_sidecar(model_path, sidecar)
    metrics = write_evaluation(run_dir, preds, sidecar, cfg.n_boot, cfg.seed)
    _write_curves(run_dir)
    stopped = bool(cbs.budget and cbs.budget.stopped)
    metrics = {"name": cfg.name or f"classifier-{cfg.model}", "evaluated_on": "validation", **metrics,
               "mask_with": sidecar.mask_with, "tuning": sidecar.tuning, "epochs": len(cbs.timer.seconds),
               "best_epoch": cbs.saver.best_epoch, f"best_{MONITOR}": cbs.saver.best,
               "seconds_per_epoch": seconds_per_epoch(cbs.timer.seconds, stopped), "train_seconds": train_seconds,
               "stopped_by_budget": stopped, "params": int(model.count_params())}
    write_json(run_dir / METRICS_FILE, metrics)
    _write_report(run_dir, cfg, metrics)
    return {"run_dir": str(run_dir), "model": str(model_path), "sidecar": sidecar, "metrics": metrics,
            "config": config_to_dict(cfg)}


def _write_curves(run_dir: Path) -> None:
    from cococxr.pipelines.engine.runs import HISTORY_FILE, read_history_csv
    from cococxr.reports import learning_curves_png

    history = read_history_csv(run_dir / HISTORY_FILE)
    learning_curves_png({k: v for k, v in history.items() if k not in ("epoch", "epoch_seconds")},
                        run_dir / CURVES_FILE)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cococxr train classifier`` (the :class:`ClassificationConfig` schema)."""
    add_config_arguments(parser, ClassificationConfig)


def run(args: argparse.Namespace) -> int:
    """Run ``cococxr train classifier``."""
    from cococxr.pipelines.classification.evaluate import format_metrics

    result = train_classifier(config_from_args(ClassificationConfig, args))
    sidecar = result["sidecar"]
    print(format_metrics(result["metrics"]))
    if sidecar.threshold is not None:
        print(f"tuned threshold ({sidecar.tuning['mode']}): {sidecar.positive_class} when p >= "
              f"{sidecar.threshold:.4f}")
    print(f"run folder: {result['run_dir']}")
    return 0


__all__ = ["ClassificationConfig", "train_classifier", "parse_model_options", "set_bn_momentum", "SCRATCH_MODELS",
           "TRANSFER_MODELS"]
