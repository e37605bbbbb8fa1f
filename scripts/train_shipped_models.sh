#!/usr/bin/env bash
# Train (or resume) every shipped model's recipe in dependency order and copy each finished model to models/.
# TDRNet comes first: TRNet's recipe starts its reference generator from models/tdrnet_lite.pt.
# Safe to re-run: finished runs are skipped, interrupted ones resume from runs/NAME/train_state.pt.
#   scripts/train_shipped_models.sh                 # all five, ~3 h on 2 CPU cores
#   scripts/train_shipped_models.sh ssd4s_lite      # just one
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(tdrnet_lite ssd4s_lite trnet_lite refinedet_lite drnet_lite)
mkdir -p runs/logs models
for name in "${MODELS[@]}"; do
  recipe="${name}_synth"
  run="runs/$recipe"
  resume=()
  [ -f "$run/train_state.pt" ] && resume=(--resume)
  echo "== $recipe $(date -u +%H:%M:%S) ${resume[*]:-}"
  "$VENV/bin/uwdet" train --config "config/train/$recipe.yaml" "${resume[@]}" --no-progress >> "runs/logs/$recipe.log" 2>&1
  cp "$run/model.pt" "models/$name.pt"
  echo "   -> models/$name.pt ($(du -h "models/$name.pt" | cut -f1))"
done
