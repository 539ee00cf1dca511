#!/usr/bin/env bash
# The cross-dataset benchmark: train the pretrained recipe (advanced_v2, ImageNet weights, first 25 tensors
# frozen) and the same recipe from scratch on each shared set, then score every model on every set's test split.
#   bash experiments/cross_dataset/run.sh              # everything: 6 trainings, 6 evals, the matrix
#   bash experiments/cross_dataset/run.sh matrix       # only rebuild results/ from the runs already in runs/
#   bash experiments/cross_dataset/run.sh SET RECIPE   # one training + eval (SET as below, RECIPE imagenet|scratch)
# A model whose eval is already in runs/ is not trained again (FORCE=1 re-runs everything).
# Sizes are the CPU override sets of conf/experiment/{ffhq_stylegan,dfdc_faces,lfw_faceswap}.yaml (image size,
# epochs); everything else is the published recipe. Runs go to runs/ (git-ignored), the table to results/.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=experiments/cross_dataset
PY=${PYTHON:-.venv/bin/python}
SHARED=${SHARED:-../shared/data}
SETS=(ffhq_stylegan dfdc_faces lfw_faceswap)
declare -A SIZE=([ffhq_stylegan]=160 [dfdc_faces]=128 [lfw_faceswap]=160)
declare -A EPOCHS=([ffhq_stylegan]=10 [dfdc_faces]=4 [lfw_faceswap]=10)
declare -A RECIPE=([imagenet]="" [scratch]="model.backbone.weights=null model.backbone.freeze_first_n=0")
QUIET=("~callbacks.rich_progress_bar" "+trainer.enable_progress_bar=false")
ONLY=${1:-all}

# every test set as its own data node: the split of its training run (seeded, grouped where it has groups)
TEST_SETS=(
  "+extra_eval_sets.ffhq_stylegan.root=$SHARED/ffhq_stylegan" "+extra_eval_sets.ffhq_stylegan.use_all_for_test=false"
  "+extra_eval_sets.dfdc_faces.root=$SHARED/dfdc_faces" "+extra_eval_sets.dfdc_faces.use_all_for_test=false"
  "+extra_eval_sets.dfdc_faces.group_by=source_video"
  "+extra_eval_sets.lfw_faceswap.root=$SHARED/lfw_faceswap" "+extra_eval_sets.lfw_faceswap.use_all_for_test=false"
  "+extra_eval_sets.lfw_faceswap.reencode_jpeg_quality=85"
)

train_and_eval() {  # set, recipe: a step whose output is already in runs/ is not run again (FORCE=1 re-runs)
  local set=$1 recipe=$2 run=$HERE/runs/${1}_${2} start
  mkdir -p "$HERE/runs"
  if [[ ! -f $run/test_results.json || ${FORCE:-0} == 1 ]]; then
    rm -rf "$run" "$run.eval"
    start=$SECONDS
    # shellcheck disable=SC2086
    "$PY" -m deepfake_lightning.train +experiment="$set" data.root="$SHARED/$set" ${RECIPE[$recipe]} \
      data.image_size="${SIZE[$set]}" trainer.max_epochs="${EPOCHS[$set]}" "${QUIET[@]}" hydra.run.dir="$run"
    echo "$set $recipe train $((SECONDS - start)) s" | tee -a "$HERE/runs/seconds.txt"
  fi
  if [[ ! -f $run.eval/cross_dataset.json || ${FORCE:-0} == 1 ]]; then
    rm -rf "$run.eval"
    start=$SECONDS
    "$PY" -m deepfake_lightning.eval ckpt_path="$run/checkpoints/best.ckpt" data=folder \
      data.root="$SHARED/ffhq_stylegan" explain.enabled=false "${TEST_SETS[@]}" hydra.run.dir="$run.eval"
    echo "$set $recipe eval $((SECONDS - start)) s" | tee -a "$HERE/runs/seconds.txt"
  fi
}

case $ONLY in
  all) for set in "${SETS[@]}"; do for recipe in imagenet scratch; do train_and_eval "$set" "$recipe"; done; done ;;
  matrix) ;;
  *) train_and_eval "$ONLY" "${2:?usage: run.sh SET imagenet|scratch}"; exit 0 ;;
esac

ROWS=()
for set in "${SETS[@]}"; do
  ROWS+=("$set (ImageNet)=$HERE/runs/${set}_imagenet.eval" "$set (scratch)=$HERE/runs/${set}_scratch.eval")
done
"$PY" -m deepfake_lightning.evaluation.cross_dataset_matrix out="$HERE/results" "${ROWS[@]}"
for run in "$HERE"/runs/*_*[a-z]; do  # light copies: what each model was and how it did on its own test split
  [[ -d $run && $run != *.eval ]] || continue
  dest=$HERE/results/$(basename "$run")
  mkdir -p "$dest"
  cp "$run"/{config.yaml,training_history.json,test_results.json,calibration.json} "$dest/" 2>/dev/null || true
  cp "$run.eval/cross_dataset.json" "$dest/cross_dataset.json" 2>/dev/null || true
done
cp "$HERE/runs/seconds.txt" "$HERE/results/seconds.txt" 2>/dev/null || true
