#!/usr/bin/env python3
"""Diagnostic (session 8): the global gradient norm, before clipping, of the lite and the width-2.0 TDRNet on the
first training batches, at random init (same seed) and at each run's final weights. Question: does
``grad_clip: 10`` bind harder on the wider model, confounding the width probe?

    .venv/bin/python scripts/probe_grad_norm.py   # needs runs/tdrnet_lite_synth and runs/tdrnet_lite_w2_synth;
                                                   # scratch output folders under /tmp; ~30 s on 2 cores
"""
import dataclasses

import torch

from underwater_detection.engine.runtime import configure_cpu_runtime
configure_cpu_runtime(2)
from underwater_detection.engine.train_config import load_train_config, InitConfig
from underwater_detection.engine.trainer import Trainer
from underwater_detection.engine.training import forward_at, objective_loss, _train_mode


def norms(cfg_path, ckpt, n=3):
    cfg = load_train_config(cfg_path)
    cfg = dataclasses.replace(cfg, output_dir=f"/tmp/gn_{cfg.name}_{'init' if ckpt is None else 'final'}",
                              data=dataclasses.replace(cfg.data, workers=0))
    if ckpt:
        names = ["rg", "rd"]
        cfg = dataclasses.replace(cfg, init=InitConfig(checkpoint=ckpt, modules=names, freeze=False))
    t = Trainer(cfg, device="cpu", show_progress=False, overwrite=True)
    out = []
    for i, (images, targets) in enumerate(t._batches()):
        if i == n:
            break
        _train_mode(t.net)
        t.net.zero_grad()
        o = forward_at(t.net, images, t.soft_coefficient)
        loss = objective_loss(t.criterion(o, t.priors, targets, soft_coefficient=t.soft_coefficient), "joint")
        loss.backward()
        out.append(float(torch.nn.utils.clip_grad_norm_(t.net.parameters(), float("inf"))))
    return [round(x, 1) for x in out]


for cfg, final in [("config/train/tdrnet_lite_synth.yaml", "runs/tdrnet_lite_synth/model.pt"),
                   ("config/probes/tdrnet_lite_w2_synth.yaml", "runs/tdrnet_lite_w2_synth/model.pt")]:
    print(cfg, "init", norms(cfg, None), "final", norms(cfg, final), flush=True)
