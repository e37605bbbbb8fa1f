"""End-to-end proof that losses, box coding and decoding agree: each detector must fit a tiny fixed set.

Real PyTorch training on the CPU (no mocks). The images are drawn scenes with exact boxes
(``data.toy_scenes``); the check is VOC mAP@0.5 >= 0.95 on the same images after a short run.
"""
import numpy as np
import pytest
import torch

from underwater_detection.data.toy_scenes import MARINE_CLASSES, make_scenes
from underwater_detection.data.transforms import boxes_to_normalized, images_to_batch
from underwater_detection.engine.training import detection_step
from underwater_detection.engine.voc_eval import GroundTruth, Prediction, evaluate_voc
from underwater_detection.models.registry import build_model, preprocess_config, priors_for
from underwater_detection.models.spec import load_model_spec
from underwater_detection.ops.losses import MultiBoxLoss, Targets
from underwater_detection.ops.postprocess import postprocess

SIZE = 192
NUM_IMAGES = 6


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(NUM_IMAGES, seed=7, height=SIZE, width=SIZE)


def _fit_and_evaluate(config_name, scenes, iterations):
    torch.manual_seed(0)
    spec = load_model_spec(config_name).with_input_size(SIZE, SIZE)
    model = build_model(spec, num_classes=len(MARINE_CLASSES))
    images = images_to_batch([s.image for s in scenes], spec.input_size, preprocess_config(spec, model), color="rgb")
    targets = [Targets(boxes_to_normalized(s.boxes, SIZE, SIZE), torch.from_numpy(s.labels)) for s in scenes]
    priors = priors_for(spec)
    criterion = MultiBoxLoss(variances=spec.variances, naf_threshold=getattr(model, "naf_threshold", None))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=iterations, pct_start=0.15)
    for _ in range(iterations):
        last = detection_step(model, criterion, priors, images, targets, optimizer)
        schedule.step()
    model.eval()
    with torch.no_grad():
        dets = postprocess(model(images), priors, spec.postprocess, spec.variances, model.naf_threshold)
    preds = [Prediction(d.boxes.numpy(), d.scores.numpy(), d.labels.numpy()) for d in dets]
    gts = [GroundTruth(boxes_to_normalized(s.boxes, SIZE, SIZE).numpy(), s.labels) for s in scenes]
    return evaluate_voc(preds, gts, len(MARINE_CLASSES)), last


@pytest.mark.parametrize("config_name,iterations", [("ssd4s_lite", 100), ("refinedet_lite", 100), ("drnet_lite", 100)])
def test_detector_overfits_tiny_set(config_name, iterations, scenes):
    result, last = _fit_and_evaluate(config_name, scenes, iterations)
    assert sum(len(s.labels) for s in scenes) >= NUM_IMAGES
    assert set(np.concatenate([s.labels for s in scenes]).tolist()) == set(range(len(MARINE_CLASSES)))
    assert result.mean_ap >= 0.95, f"{config_name}: mAP@0.5 {result.mean_ap:.3f} (AP per class {np.round(result.ap_per_class, 3)}), last loss {last}"
