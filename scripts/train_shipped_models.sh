#!/usr/bin/env bash
# Train (or resume) every shipped model's recipe and copy each finished model to models/.
# A shipped model is three 2000-iteration cycles (6000 x 16 images): NAME_synth, then NAME_synth_cycle2 and
# NAME_synth_cycle3, each starting from the previous cycle's runs/.../model.pt. tdrnet_lite comes first: TRNet's
# recipes take their frozen reference generator from tdrnet_lite's third cycle. A model that continues another's
# weights (models.shipped.CONTINUES: tdrnet_lite_tcb_r384, one cycle at 384x512 from tdrnet_lite_tcb's third;
# tdrnet_lite_tcb_more_data, one cycle on 240 videos from the same, which needs `make data-synth-more`;
# tdrnet_lite_tcb_480_videos, four cycles on 480 videos from the same, which needs `make data-synth-480`;
# tdrnet_lite_tcb_480_videos_r384, three cycles at 384x512 on those videos from tdrnet_lite_tcb_480_videos's fourth) has its own
# recipe list (models.shipped.recipes_of) and comes after the model it continues.
# Safe to re-run: a recipe whose runs/RECIPE/model.pt exists and is newer than the checkpoint its recipe starts
# from is skipped; an older one (its start point was retrained since) is moved aside to runs/RECIPE.stale-TIME
# and retrained, so a retrained cycle 1 also retrains the cycles after it. An interrupted recipe resumes from
# runs/RECIPE/train_state.pt. To retrain a model from scratch, delete runs/NAME_synth.
#   scripts/train_shipped_models.sh                 # all ten (models.shipped.SHIPPED_MODELS), ~24 h on 2 quiet CPU cores
#   scripts/train_shipped_models.sh ssd4s_lite      # just one
#   SHIP=0 scripts/train_shipped_models.sh ...      # train, but leave models/ alone
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
SHIP=${SHIP:-1}
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(tdrnet_lite trnet_lite ssd4s_lite refinedet_lite drnet_lite tdrnet_lite_tcb tdrnet_lite_tcb_r384 tdrnet_lite_tcb_more_data tdrnet_lite_tcb_480_videos tdrnet_lite_tcb_480_videos_r384)
mkdir -p runs/logs models
init_checkpoint() {  # the recipe's init.checkpoint (empty without one), read by the trainer's own config loader
  "$VENV/bin/python" -c 'import sys; from underwater_detection.engine.train_config import load_train_config
c = load_train_config(sys.argv[1]); print(c.init.checkpoint if c.init else "")' "$1"
}
recipes_of() {  # the model's recipes in order (models.shipped.recipes_of); the last one's result ships
  "$VENV/bin/python" -c 'import sys; from underwater_detection.models.shipped import recipes_of
try:
    print(" ".join(recipes_of(sys.argv[1])))
except ValueError as exc:
    sys.exit(f"train_shipped_models.sh: {exc}")' "$1"
}
recipes_or_die() {  # a plain assignment, so set -e stops the script when recipes_of fails (a misspelt model)
  local list
  list=$(recipes_of "$1")
  read -r -a recipes <<< "$list"
  [ ${#recipes[@]} -gt 0 ] || { echo "no recipes for $1" >&2; exit 1; }
}
for name in "${MODELS[@]}"; do
  recipes_or_die "$name"
  for recipe in "${recipes[@]}"; do
    run="runs/$recipe"
    start=$(init_checkpoint "config/train/$recipe.yaml")
    if [ -f "$run/model.pt" ]; then
      if [ -z "$start" ] || [ "$run/model.pt" -nt "$start" ]; then
        echo "== $recipe: done ($run/model.pt exists)"
        continue
      fi
      aside="$run.stale-$(date -u +%Y%m%dT%H%M%S)"
      echo "== $recipe: $run/model.pt is older than its start point $start; moved to $aside, retraining"
      mv "$run" "$aside"
    fi
    resume=()
    [ -f "$run/train_state.pt" ] && resume=(--resume)
    echo "== $recipe $(date -u +%H:%M:%S) ${resume[*]:-}"
    "$VENV/bin/uwdet" train --config "config/train/$recipe.yaml" "${resume[@]}" --no-progress >> "runs/logs/$recipe.log" 2>&1 || {
      echo "FAILED: $recipe (exit $?); the end of runs/logs/$recipe.log:" >&2
      tail -n 20 "runs/logs/$recipe.log" >&2
      exit 1
    }
  done
done
echo "== all trained $(date -u +%H:%M:%S)"
if [ "$SHIP" = 1 ]; then
  for name in "${MODELS[@]}"; do
    recipes_or_die "$name"
    cp "runs/${recipes[${#recipes[@]}-1]}/model.pt" "models/$name.pt"
    echo "   -> models/$name.pt ($(du -h "models/$name.pt" | cut -f1))"
  done
fi
