# The two commands: `make demo` and `make test`.
# Set-up is idempotent: it (re)installs only when requirements change or the venv is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.setup-done

.PHONY: setup test test-slow bench-models bench-rewrites bench data-synth data-synth-more data-synth-480 train-shipped results results-30fps clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt requirements-ros.txt setup.py setup.cfg scripts/setup_venv.sh scripts/build_vision_msgs.sh \
          $(wildcard third_party/vision_msgs/msg/*.msg)
	PYTHON=$(PYTHON) VENV=$(VENV) TORCH_SPEC="$(TORCH_SPEC)" bash scripts/setup_venv.sh
	touch $(STAMP)

test: setup
	$(PY) -m pytest -m "not slow"

# End-to-end demo over DDS (synthetic bag -> detector + grasp-target nodes -> recorder): metrics, out/demo/demo.mp4,
# out/demo/summary.png. Uses models/tdrnet_lite_tcb_480_videos.pt (models.shipped.VEHICLE_MODEL) if it exists, else random weights (said loudly).
demo: setup
	$(VENV)/bin/uwdet demo --out out/demo

test-slow: setup
	$(PY) -m pytest -m slow

bench-models: setup
	$(VENV)/bin/uwdet bench-models --json bench/models.json

# What the exact inference rewrites (projected deformable heads, folded BatchNorms, channels-last weights) buy on the two 480-video models
bench-rewrites: setup
	$(PY) scripts/bench_inference_rewrites.py models/tdrnet_lite_tcb_480_videos.pt models/tdrnet_lite_tcb_480_videos_r384.pt --json bench/inference_rewrites.json

bench: bench-models

# Synthetic benchmark data (deterministic from the split seeds). Each split is generated once; delete the
# folder to regenerate. Sizes: train 60 x 100 frames (~390 MB), val 5 x 100, test 20 x 100 (the benchmark).
SYNTH := data/synth
data-synth: setup $(SYNTH)/train/annotations.json $(SYNTH)/val/annotations.json $(SYNTH)/test/annotations.json

$(SYNTH)/train/annotations.json:
	$(VENV)/bin/uwdet synth --out $(SYNTH)/train --split train --sequences 60 --frames 100 --workers 2 --overwrite
$(SYNTH)/val/annotations.json:
	$(VENV)/bin/uwdet synth --out $(SYNTH)/val --split val --sequences 5 --frames 100 --workers 2 --overwrite
$(SYNTH)/test/annotations.json:
	$(VENV)/bin/uwdet synth --out $(SYNTH)/test --split test --workers 2 --overwrite

# `make data-synth-more`: 180 more training videos (train seeds 60-239, ~1.2 GB), for the more-data probe
# (config/probes/tdrnet_lite_tcb_more_data_synth_cycle4.yaml) and the shipped tdrnet_lite_tcb_more_data's recipe.
data-synth-more: data-synth $(SYNTH)/train_more/annotations.json
$(SYNTH)/train_more/annotations.json:
	$(VENV)/bin/uwdet synth --out $(SYNTH)/train_more --split train --seed-offset 60 --sequences 180 --frames 100 --workers 2 --overwrite

# `make data-synth-480`: 240 more (train seeds 240-479, ~1.6 GB, ~8 min), 480 training videos in all, for
# the 480-video probes and the shipped tdrnet_lite_tcb_480_videos's recipes.
data-synth-480: data-synth-more $(SYNTH)/train_more2/annotations.json
$(SYNTH)/train_more2/annotations.json:
	$(VENV)/bin/uwdet synth --out $(SYNTH)/train_more2 --split train --seed-offset 240 --sequences 240 --frames 100 --workers 2 --overwrite

# `make train-shipped`: train (or resume) all ten shipped models (three cycles each; tdrnet_lite_tcb_r384 and
# tdrnet_lite_tcb_more_data one more on top of tdrnet_lite_tcb's, tdrnet_lite_tcb_480_videos four, and
# tdrnet_lite_tcb_480_videos_r384 three more at 384x512 on top of those) and copy them to models/ (~24 h on 2 cores).
train-shipped: data-synth-480
	scripts/train_shipped_models.sh

# `make results`: the README results table (every shipped model on the test split, k x e) and the paper's claims.
results: data-synth
	$(VENV)/bin/uwdet results --out out/results   # evaluates the shipped models that exist; says which do not

# `make results-30fps`: does the frame rate decide what k costs? The temporal models' k x e sweep on the test seeds
# filmed at 30 FPS (ImageNet VID's usual rate), then on every 3rd frame of the same videos (identical content at
# the benchmark's 10 FPS): the only difference between the two runs is the motion per frame.
$(SYNTH)/test_30fps/annotations.json:
	$(VENV)/bin/uwdet synth --out $(SYNTH)/test_30fps --split test --fps 30 --workers 2 --overwrite
results-30fps: setup $(SYNTH)/test_30fps/annotations.json
	$(VENV)/bin/uwdet results --models trnet_lite tdrnet_lite --data $(SYNTH)/test_30fps/annotations.json \
	  --out out/results_30fps
	$(VENV)/bin/uwdet results --models trnet_lite tdrnet_lite --data $(SYNTH)/test_30fps/annotations.json \
	  --frame-step 3 --out out/results_30fps_step3

# `make train-tdrnet_lite_synth`: train (or resume) the recipe config/train/<name>.yaml on the synthetic data.
# A finished run is not retrained: to start it again, `rm -r runs/<name>` (or `uwdet train ... --overwrite`).
train-%: data-synth
	@if [ -f runs/$*/train_state.pt ]; then resume=--resume; fi; \
	$(VENV)/bin/uwdet train --config config/train/$*.yaml $$resume

# Recipes that read more than the 60 videos of `make data-synth` need their data first.
train-tdrnet_lite_tcb_more_data_ft_synth: data-synth-more
train-tdrnet_lite_tcb_480_videos_ft_synth train-tdrnet_lite_tcb_480_videos_ft_synth_cycle2 \
  train-tdrnet_lite_tcb_480_videos_ft_synth_cycle3 train-tdrnet_lite_tcb_480_videos_ft_synth_cycle4 \
  train-tdrnet_lite_tcb_480_videos_r384_ft_synth train-tdrnet_lite_tcb_480_videos_r384_ft_synth_cycle2 \
  train-tdrnet_lite_tcb_480_videos_r384_ft_synth_cycle3: data-synth-480

clean-venv:
	rm -rf $(VENV)
