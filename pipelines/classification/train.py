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
target sensitivity) and saved in the model's sidecar (``model.cococxr.json``). The
settings are a :class:`~cococxr.pipelines.classification.config.ClassificationConfig`;
the default recipe is ``configs/classifier.yaml``.

The run folder holds ``config.json``, ``model.h5``, ``model.cococxr.json``,
``history.csv``, ``learning_curves.png``, ``metrics.json`` (validation metrics at the
default and tuned thresholds, plus training facts), ``predictions.csv``,
``classification_report.txt``, ``confusion_matrix.png``, ``confusion_matrix_tuned.png``,
``report.html`` and ``tensorboard/``.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from cococxr._tf import keras
from cococxr.coco import CocoDataset
from cococxr.config import config_to_dict, load_config, save_config
from cococxr.errors import ConfigError
from cococxr.models.classifiers import build_classifier, fine_tune
from cococxr.models.io import load_model
from cococxr.pipelines.classification.config import (CONFIG_FILE, CURVES_FILE, METRICS_FILE, MONITOR,
                                                     REPORT_FILE, ClassificationConfig, check_config,
                                                     parse_model_options)
from cococxr.pipelines.classification.data import labelled_coco
from cococxr.pipelines.classification.evaluate import add_report_sections, format_metrics, write_evaluation
from cococxr.pipelines.classification.labels import merge_labels, one_vs_rest_spec, resolve_classes
from cococxr.pipelines.classification.thresholds import tune_threshold
from cococxr.pipelines.engine.batchnorm import set_bn_momentum
from cococxr.pipelines.engine.callbacks import build_callbacks
from cococxr.pipelines.engine.cards import ClassifierSidecar, write_sidecar
from cococxr.pipelines.engine.classifier import MASK_MODES, classifier_sequence, mask_source, predict
from cococxr.pipelines.engine.runs import HISTORY_FILE, create_run_dir, read_history_csv, write_json
from cococxr.pipelines.engine.timing import seconds_per_epoch
from cococxr.reports import HtmlReport, learning_curves_png

log = logging.getLogger(__name__)


def _build_model(cfg: ClassificationConfig, num_classes: int):
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
    check_config(cfg)
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
    history = read_history_csv(run_dir / HISTORY_FILE)
    learning_curves_png({k: v for k, v in history.items() if k not in ("epoch", "epoch_seconds")},
                        run_dir / CURVES_FILE)


def main(config: ClassificationConfig) -> int:
    """Train with a resolved config and print the summary (``cococxr train classifier``)."""
    result = train_classifier(config)
    sidecar = result["sidecar"]
    print(format_metrics(result["metrics"]))
    if sidecar.threshold is not None:
        print(f"tuned threshold ({sidecar.tuning['mode']}): {sidecar.positive_class} when p >= "
              f"{sidecar.threshold:.4f}")
    print(f"run folder: {result['run_dir']}")
    return 0


__all__ = ["train_classifier", "main"]
