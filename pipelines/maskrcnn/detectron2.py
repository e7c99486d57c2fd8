"""The detectron2 backend of ``cococxr train maskrcnn``: the same R50-FPN Mask R-CNN in detectron2.

detectron2 is not on PyPI; install it after torch with ``pip install
--no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'`` (or clone
it and ``pip install --no-build-isolation -e detectron2``): its build imports torch.
Nothing of it is imported until :func:`require_detectron2`.

The config is built from ``detectron2.config.get_cfg()`` and :data:`R50_FPN` (the keys of
detectron2's ``Base-RCNN-FPN.yaml`` plus the mask head), not through ``model_zoo``, whose
config lookup needs ``pkg_resources`` (gone from recent setuptools). Training starts
from random weights like the torchvision backend: nothing is frozen
(``BACKBONE.FREEZE_AT 0``), trainable BatchNorm, torchvision's stride placement and
ImageNet pixel statistics. The COCO files are copied into ``RUN/detectron2/`` with only
the label map's categories and their geometry annotations (detectron2 would otherwise
treat image-level label categories as classes), registered with
``register_coco_instances``, read with ``INPUT.MASK_FORMAT "bitmask"`` (our masks are
RLE), trained with ``DefaultTrainer`` and scored with ``COCOEvaluator``; the run folder
then gets the same ``model.pt``, ``history.csv`` and cococxr evaluation as the
torchvision backend. detectron2's own outputs (its ``metrics.json`` log, events,
``model_final.pth``, COCOEvaluator files) stay in ``RUN/detectron2/``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cococxr.atomic import atomic_write_json
from cococxr.coco import CocoDataset
from cococxr.config import config_to_dict
from cococxr.errors import MissingDependencyError
from cococxr.pipelines.maskrcnn.common import build_optimizer, loss_curves_png, training_stats, write_history
from cococxr.pipelines.maskrcnn.config import CURVES_FILE, HISTORY_FILE, MODEL_FILE
from cococxr.pipelines.maskrcnn.labels import LabelMap
from cococxr.pipelines.maskrcnn.model import count_parameters, resolve_device, save_checkpoint, shield_from_tensorflow

DETECTRON2_HINT = ("pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git' "
                   "(after torch; its build imports torch), or build a clone: "
                   "pip install --no-build-isolation -e ./detectron2")
OUTPUT_DIR = "detectron2"
# Mask R-CNN R50-FPN as configs/Base-RCNN-FPN.yaml sets it, trained from scratch.
R50_FPN = {
    "MODEL.META_ARCHITECTURE": "GeneralizedRCNN",
    "MODEL.MASK_ON": True,
    "MODEL.WEIGHTS": "",
    "MODEL.PIXEL_MEAN": [103.530, 116.280, 123.675],
    "MODEL.PIXEL_STD": [57.375, 57.120, 58.395],
    "MODEL.BACKBONE.NAME": "build_resnet_fpn_backbone",
    "MODEL.BACKBONE.FREEZE_AT": 0,
    "MODEL.RESNETS.DEPTH": 50,
    "MODEL.RESNETS.NORM": "BN",
    "MODEL.RESNETS.STRIDE_IN_1X1": False,
    "MODEL.RESNETS.OUT_FEATURES": ["res2", "res3", "res4", "res5"],
    "MODEL.FPN.IN_FEATURES": ["res2", "res3", "res4", "res5"],
    "MODEL.ANCHOR_GENERATOR.SIZES": [[32], [64], [128], [256], [512]],
    "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS": [[0.5, 1.0, 2.0]],
    "MODEL.RPN.IN_FEATURES": ["p2", "p3", "p4", "p5", "p6"],
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN": 2000,
    "MODEL.RPN.PRE_NMS_TOPK_TEST": 1000,
    "MODEL.RPN.POST_NMS_TOPK_TRAIN": 1000,
    "MODEL.ROI_HEADS.NAME": "StandardROIHeads",
    "MODEL.ROI_HEADS.IN_FEATURES": ["p2", "p3", "p4", "p5"],
    "MODEL.ROI_BOX_HEAD.NAME": "FastRCNNConvFCHead",
    "MODEL.ROI_BOX_HEAD.NUM_FC": 2,
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": 7,
    "MODEL.ROI_MASK_HEAD.NAME": "MaskRCNNConvUpsampleHead",
    "MODEL.ROI_MASK_HEAD.NUM_CONV": 4,
    "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION": 14,
    "INPUT.MASK_FORMAT": "bitmask",
    "INPUT.FORMAT": "BGR",
    "SOLVER.STEPS": (),
    "SOLVER.WARMUP_FACTOR": 1e-3,
    "SOLVER.CLIP_GRADIENTS.ENABLED": False,  # the optimizer clips (build_optimizer)
    "TEST.EVAL_PERIOD": 0,
}


def require_detectron2():
    """Import and return the ``detectron2`` package.

    Raises:
        MissingDependencyError: detectron2 is not installed; the message says how.
    """
    shield_from_tensorflow()
    try:
        import detectron2  # deferred: not on PyPI, optional; this function is its import guard
    except ImportError as exc:
        raise MissingDependencyError(f"the detectron2 backend needs detectron2 ({exc}); it is not on PyPI. "
                                     f"Install it with: {DETECTRON2_HINT}") from exc
    return detectron2


def _set(cfg, key: str, value) -> None:
    node = cfg
    *parents, leaf = key.split(".")
    for part in parents:
        node = getattr(node, part)
    setattr(node, leaf, value)


def build_cfg(config: dict, num_classes: int, *, device: str = "cpu", train: tuple = (), test: tuple = (),
              output_dir: str | Path = "."):
    """A detectron2 ``CfgNode`` for a :class:`~cococxr.pipelines.maskrcnn.config.MaskRCNNConfig` dict.

    Args:
        config: the resolved run config (``min_size``, ``max_size``, ``iterations``, ...).
        num_classes: K (``ROI_HEADS.NUM_CLASSES``; detectron2 adds the background).
        device: ``"cpu"`` or ``"cuda"``.
        train, test: registered dataset names.
        output_dir: detectron2's ``OUTPUT_DIR``.
    """
    require_detectron2()
    from detectron2.config import get_cfg  # deferred: detectron2 (optional), after require_detectron2

    cfg = get_cfg()
    settings = {
        **R50_FPN,
        "MODEL.DEVICE": device,
        "MODEL.ROI_HEADS.NUM_CLASSES": num_classes,
        "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": config["rois_per_image"],
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST": config["score_threshold"],
        "MODEL.RPN.POST_NMS_TOPK_TEST": config["proposals_per_image"],
        "TEST.DETECTIONS_PER_IMAGE": config["detections_per_image"],
        "INPUT.MIN_SIZE_TRAIN": (config["min_size"],),
        "INPUT.MAX_SIZE_TRAIN": config["max_size"],
        "INPUT.MIN_SIZE_TEST": config["min_size"],
        "INPUT.MAX_SIZE_TEST": config["max_size"],
        "INPUT.RANDOM_FLIP": "horizontal" if config["hflip"] > 0 else "none",
        "DATASETS.TRAIN": tuple(train),
        "DATASETS.TEST": tuple(test),
        "DATALOADER.NUM_WORKERS": config["workers"],
        "SOLVER.IMS_PER_BATCH": config["batch_size"],
        "SOLVER.BASE_LR": config["lr"],
        "SOLVER.MAX_ITER": config["iterations"],
        "SOLVER.WARMUP_ITERS": config["warmup_iterations"],
        "SOLVER.WEIGHT_DECAY": config["weight_decay"],
        "SOLVER.CHECKPOINT_PERIOD": config["checkpoint_every"] or config["iterations"],
        "SEED": config["seed"],
        "OUTPUT_DIR": str(output_dir),
    }
    for key, value in settings.items():
        _set(cfg, key, value)
    cfg.freeze()
    return cfg


def write_detectron2_json(coco, label_map: LabelMap, path: str | Path) -> Path:
    """Write the part of ``coco`` detectron2 should see: the label map's categories and masks."""
    wanted = set(label_map.category_ids)
    data = {"info": {"description": f"{coco.source}: geometry annotations of {', '.join(label_map.names)}"},
            "images": list(coco.dataset["images"]),
            "categories": [coco.cats[c] for c in label_map.category_ids],
            "annotations": [a for a in coco.dataset.get("annotations", [])
                            if a.get("category_id") in wanted and a.get("segmentation") is not None]}
    atomic_write_json(path, data)
    return Path(path)


def register(name: str, json_file: str | Path, image_root: str | Path) -> str:
    """``register_coco_instances`` under ``name``, replacing an earlier registration of it."""
    from detectron2.data import DatasetCatalog, MetadataCatalog  # deferred: detectron2 (optional)
    from detectron2.data.datasets import register_coco_instances  # deferred: detectron2 (optional)

    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_coco_instances(name, {}, str(json_file), str(image_root))
    return name


class Detectron2Predictor:
    """A detectron2 Mask R-CNN as a function of one float32 ``(H, W, 3)`` RGB image in 0..1.

    Returns the arrays of :class:`~cococxr.pipelines.maskrcnn.evaluate.TorchvisionPredictor`;
    detectron2 pastes its masks already thresholded at 0.5, so ``masks`` are 0/1.
    """

    backend = "detectron2"

    def __init__(self, cfg, label_map: LabelMap, state_dict=None):
        from detectron2.engine import DefaultPredictor  # deferred: detectron2 (optional)

        self._predictor = DefaultPredictor(cfg)  # cfg.MODEL.WEIGHTS is "": random until loaded
        if state_dict is not None:
            self._predictor.model.load_state_dict(state_dict)
        self.label_map = label_map

    @classmethod
    def from_checkpoint(cls, payload: dict, device: str = "auto") -> "Detectron2Predictor":
        """Rebuild the model of a ``model.pt`` dict written by the detectron2 backend."""
        label_map = LabelMap.from_dict(payload["label_map"])
        cfg = build_cfg(payload["config"], len(label_map), device=resolve_device(device).type)
        return cls(cfg, label_map, payload["state_dict"])

    @property
    def model(self):
        """The detectron2 ``GeneralizedRCNN`` module."""
        return self._predictor.model

    @property
    def params(self) -> int:
        """Number of model parameters."""
        return count_parameters(self.model)

    def __call__(self, image: np.ndarray) -> dict:
        bgr = np.ascontiguousarray(np.clip(np.rint(image[..., ::-1] * 255), 0, 255).astype(np.uint8))
        instances = self._predictor(bgr)["instances"].to("cpu")
        return {"boxes": instances.pred_boxes.tensor.numpy(), "labels": instances.pred_classes.numpy() + 1,
                "scores": instances.scores.numpy(), "masks": instances.pred_masks.numpy().astype(np.float32)}


def _trainer_class(config):
    """``DefaultTrainer`` with cococxr's optimizer (:func:`~cococxr.pipelines.maskrcnn.common.build_optimizer`)."""
    import torch  # deferred: the optional baseline extra
    from detectron2.engine import DefaultTrainer  # deferred: detectron2 (optional)

    class Trainer(DefaultTrainer):
        @classmethod
        def build_optimizer(cls, cfg, model):
            return build_optimizer(torch, model, config)

    return Trainer


def _recorder(rows: list, seconds: list):
    """A hook that times every step and keeps its losses and learning rate."""
    from detectron2.engine import HookBase  # deferred: detectron2 (optional)

    class StepRecorder(HookBase):
        def before_step(self):
            self._tick = time.perf_counter()

        def after_step(self):
            seconds.append(time.perf_counter() - self._tick)
            storage = self.trainer.storage
            latest = {k: v[0] for k, v in storage.latest().items()}
            losses = {k: float(v) for k, v in latest.items() if k.startswith("loss")}
            rows.append({"iteration": self.trainer.iter + 1, "loss": sum(losses.values()), **losses,
                         "lr": float(latest.get("lr", float("nan"))), "seconds": seconds[-1]})

    return StepRecorder()


def _evaluator_stats(results: dict) -> dict:
    """COCOEvaluator's percent figures as fractions: ``{"bbox": {...}, "segm": {...}}``."""
    return {task: {k: (None if v is None or v != v else v / 100.0) for k, v in stats.items()}
            for task, stats in results.items()}


def fit_detectron2(config, run_dir: Path, train_coco, label_map: LabelMap):
    """Train with ``DefaultTrainer`` and score with ``COCOEvaluator``.

    Returns:
        ``(predictor, train_stats, evaluator_stats)``; the last holds COCOEvaluator's
        bbox and segm figures (fractions) on the validation file.
    """
    require_detectron2()
    from detectron2.data import build_detection_test_loader  # deferred: detectron2 (optional)
    from detectron2.evaluation import COCOEvaluator, inference_on_dataset  # deferred: detectron2 (optional)

    settings = config_to_dict(config)
    out = run_dir / OUTPUT_DIR
    val_coco = CocoDataset(config.val, config.image_root)
    key = f"cococxr-{run_dir.resolve()}"
    train_name = register(f"{key}-train", write_detectron2_json(train_coco, label_map, out / "train.json"),
                          train_coco.image_root)
    val_name = register(f"{key}-val", write_detectron2_json(val_coco, label_map, out / "val.json"),
                        val_coco.image_root)
    device = resolve_device(config.device).type
    cfg = build_cfg(settings, len(label_map), device=device, train=(train_name,), output_dir=out)
    trainer = _trainer_class(config)(cfg)
    rows, seconds = [], []
    trainer.register_hooks([_recorder(rows, seconds)])
    trainer.resume_or_load(resume=False)
    trainer.train()
    model = trainer.model.eval()
    evaluator = COCOEvaluator(val_name, output_dir=str(out / "coco_evaluator"))
    results = inference_on_dataset(model, build_detection_test_loader(cfg, val_name), evaluator)
    n_train = len({a["image_id"] for a in train_coco.anns.values()
                   if a.get("category_id") in label_map.category_ids and a.get("segmentation") is not None})
    stats = training_stats(seconds, n_train, config, False)
    save_checkpoint(run_dir / MODEL_FILE, model, label_map, settings, backend="detectron2", train_stats=stats)
    write_history(rows, run_dir / HISTORY_FILE)
    loss_curves_png(rows, run_dir / CURVES_FILE)
    return Detectron2Predictor(cfg, label_map, model.state_dict()), stats, _evaluator_stats(results)


__all__ = ["DETECTRON2_HINT", "R50_FPN", "require_detectron2", "build_cfg", "write_detectron2_json",
           "register", "Detectron2Predictor", "fit_detectron2"]
