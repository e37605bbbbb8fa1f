"""TRNet and TDRNet fit a tiny generated *sequence* and detect it through the TemporalDetector.

As in the paper (Fig. 5b) both networks train on the frames as static images (RG like an ARM, RD like an ODM
with RG's references for the same image); evaluation runs the video in frame order through
``TemporalDetector`` at k = 1 (RG every frame) and k = 4 (RD reuses the key frame's references for 3 frames
while the objects move ~2 px/frame). Real PyTorch training on the CPU.
"""
import numpy as np
import pytest
import torch

from underwater_detection.data.toy_scenes import MARINE_CLASSES, make_sequence
from underwater_detection.data.transforms import boxes_to_normalized, images_to_batch
from underwater_detection.engine.temporal import TemporalDetector
from underwater_detection.engine.training import detection_step
from underwater_detection.engine.voc_eval import GroundTruth, Prediction, evaluate_voc
from underwater_detection.models.registry import build_model, preprocess_config, priors_for
from underwater_detection.models.spec import load_model_spec
from underwater_detection.ops.losses import MultiBoxLoss, Targets

SIZE = 192
FRAMES = 16


@pytest.fixture(scope="module")
def sequence():
    return make_sequence(seed=3, num_frames=FRAMES, height=SIZE, width=SIZE, max_speed=2.0)


def _train(config_name, frames, iterations, batch_size=8):
    torch.manual_seed(0)
    spec = load_model_spec(config_name).with_input_size(SIZE, SIZE)
    model = build_model(spec, num_classes=len(MARINE_CLASSES))
    pre = preprocess_config(spec, model)
    images = images_to_batch([f.image for f in frames], spec.input_size, pre, color="rgb")
    targets = [Targets(boxes_to_normalized(f.boxes, SIZE, SIZE), torch.from_numpy(f.labels)) for f in frames]
    priors = priors_for(spec)
    criterion = MultiBoxLoss.for_model(model, spec.variances)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=iterations, pct_start=0.15)
    gen = torch.Generator().manual_seed(0)
    for _ in range(iterations):
        idx = torch.randperm(len(frames), generator=gen)[:batch_size]
        detection_step(model, criterion, priors, images[idx], [targets[i] for i in idx], optimizer,
                       soft_coefficient=spec.temporal["soft_coefficient"])
        schedule.step()
    return model.eval(), spec


def _evaluate(model, spec, frames, k):
    detector = TemporalDetector(model, spec, MARINE_CLASSES, key_interval=k, tracking=False)
    preds, gts, keys = [], [], []
    for i, frame in enumerate(frames):
        dets = detector.detect(frame.image, stamp=i / 10, stream_id="cam", color="rgb")
        keys.append(dets.is_key_frame)
        preds.append(Prediction(dets.boxes, dets.scores, dets.labels))
        gts.append(GroundTruth(frame.boxes, frame.labels))
    return evaluate_voc(preds, gts, len(MARINE_CLASSES)), keys


@pytest.mark.parametrize("config_name", ["trnet_lite", "tdrnet_lite"])
def test_temporal_model_overfits_sequence_at_k1_and_k4(config_name, sequence):
    model, spec = _train(config_name, sequence, iterations=120)
    for k in (1, 4):
        result, keys = _evaluate(model, spec, sequence, k)
        assert keys == [i % k == 0 for i in range(FRAMES)]
        assert result.mean_ap >= 0.95, f"{config_name} k={k}: mAP@0.5 {result.mean_ap:.3f} {np.round(result.ap_per_class, 3)}"
