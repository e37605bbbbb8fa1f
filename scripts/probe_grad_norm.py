#!/usr/bin/env python3
"""Diagnostic (session 8): the global gradient norm, before clipping, of the lite and the width-2.0 TDRNet on the
first training batches, at random init (same seed) and at each run's final weights. Question: does
``grad_clip: 10`` bind harder on the wider model, confounding the width probe? (Training logs carry the same
``grad_norm`` since session 9; this script measures it on fixed batches at fixed weights, which a log cannot.)

    .venv/bin/python scripts/probe_grad_norm.py   # needs runs/tdrnet_lite_synth and runs/tdrnet_lite_w2_synth;
                                                   # scratch output folders under /tmp; ~30 s on 2 cores
"""
import dataclasses

import torch

from underwater_detection.engine.runtime import configure_cpu_runtime
configure_cpu_runtime(2)
from underwater_detection.engine.train_config import load_train_config, InitConfig
from underwater_detection.engine.trainer import Trainer
from underwater_detection.engine.training import detection_step


def norms(cfg_path, ckpt, n=3):
    cfg = load_train_config(cfg_path)
    cfg = dataclasses.replace(cfg, output_dir=f"/tmp/gn_{cfg.name}_{'init' if ckpt is None else 'final'}",
                              data=dataclasses.replace(cfg.data, workers=0))
    if ckpt:
        names = ["rg", "rd"]
        cfg = dataclasses.replace(cfg, init=InitConfig(checkpoint=ckpt, modules=names, freeze=False))
    t = Trainer(cfg, device="cpu", show_progress=False, overwrite=True)
    frozen = torch.optim.SGD(t.net.parameters(), lr=0.0)  # lr 0: every batch is measured at the same weights
    out = []
    for i, (images, targets) in enumerate(t._batches()):
        if i == n:
            break
        terms = detection_step(t.net, t.criterion, t.priors, images, targets, frozen,
                               soft_coefficient=t.soft_coefficient, max_grad_norm=None)
        out.append(round(terms["grad_norm"], 1))
    return out


for cfg, final in [("config/train/tdrnet_lite_synth.yaml", "runs/tdrnet_lite_synth/model.pt"),
                   ("config/probes/tdrnet_lite_w2_synth.yaml", "runs/tdrnet_lite_w2_synth/model.pt")]:
    print(cfg, "init", norms(cfg, None), "final", norms(cfg, final), flush=True)
