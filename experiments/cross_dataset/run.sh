#!/usr/bin/env bash
# The cross-dataset benchmark: train each row's recipe, then score every model on every set's test split.
#   bash experiments/cross_dataset/run.sh              # every row below, then the matrix
#   bash experiments/cross_dataset/run.sh matrix       # only rebuild results/ from the rows already in results/
#   bash experiments/cross_dataset/run.sh ROW_ID...    # train + eval these rows only (ids as in ROWS below;
#                                                      # an ENSEMBLES id fuses that ensemble from its members)
# A row whose eval is already in runs/ is not trained again (FORCE=1 re-runs it). Each row's light copy (config,
# history, test results, cross_dataset.json and the per-set predictions) goes to results/ROW_ID/, and the matrix is built from results/, so
# rows trained in earlier sessions stay in the table without their (git-ignored) runs/.
# Every choice inside a row (epochs, image size, recipe) was made on the training set's validation split; every
# test split is read once per row, by its eval.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=experiments/cross_dataset
PY=${PYTHON:-.venv/bin/python}
SHARED=${SHARED:-../shared/data}
QUIET=("~callbacks.rich_progress_bar" "+trainer.enable_progress_bar=false")
SCRATCH="model.backbone.weights=null model.backbone.freeze_first_n=0"
# each set's data node; the MobileNetV2 rows add their CPU-sized image size and epochs (chosen on validation)
FFHQ_SET="+experiment=ffhq_stylegan data.root=$SHARED/ffhq_stylegan"
DFDC_SET="+experiment=dfdc_faces data.root=$SHARED/dfdc_faces"
LFW_SET="+experiment=lfw_faceswap data.root=$SHARED/lfw_faceswap"
FFHQ="$FFHQ_SET data.image_size=160 trainer.max_epochs=10"
DFDC="$DFDC_SET data.image_size=128 trainer.max_epochs=4"
LFW="$LFW_SET data.image_size=160 trainer.max_epochs=10"
SBI="data.fakes=self_blend"
# the DINOv2-S encoder (docs/encoders.md) with the recipe that won on ffhq_stylegan's validation split (README)
ENC="model.backbone.name=timm:vit_small_patch14_dinov2 model.backbone.weights=dinov2_vits14 data.image_size=112"
DINO="$ENC +recipe=partial"
# self-blend fakes are drawn anew each epoch, so the encoder trains live (no feature cache)
DINO_SBI="$ENC +recipe=partial feature_cache.enabled=false trainer.max_epochs=8"  # live: 8 epochs is the CPU budget

# id | row name (it names the sets the row trained on: the matrix counts those as seen) | train overrides
ROWS=(
  "ffhq_stylegan_imagenet|ffhq_stylegan (ImageNet)|$FFHQ"
  "ffhq_stylegan_scratch|ffhq_stylegan (scratch)|$FFHQ $SCRATCH"
  "dfdc_faces_imagenet|dfdc_faces (ImageNet)|$DFDC"
  "dfdc_faces_scratch|dfdc_faces (scratch)|$DFDC $SCRATCH"
  "lfw_faceswap_imagenet|lfw_faceswap (ImageNet)|$LFW"
  "lfw_faceswap_scratch|lfw_faceswap (scratch)|$LFW $SCRATCH"
  "ffhq_stylegan_sbi|ffhq_stylegan reals (self-blend)|$FFHQ $SBI"
  "dfdc_faces_sbi|dfdc_faces reals (self-blend)|$DFDC $SBI"
  "lfw_faceswap_sbi|lfw_faceswap reals (self-blend)|$LFW $SBI"
  "ffhq_stylegan_dino|ffhq_stylegan (DINOv2-S partial)|$FFHQ_SET $DINO"
  "dfdc_faces_dino|dfdc_faces (DINOv2-S partial)|$DFDC_SET $DINO"
  "lfw_faceswap_dino|lfw_faceswap (DINOv2-S partial)|$LFW_SET $DINO"
  "ffhq_stylegan_sbi_dino|ffhq_stylegan reals (self-blend, DINOv2-S partial)|$FFHQ_SET $SBI $DINO_SBI"
  "lfw_faceswap_sbi_dino|lfw_faceswap reals (self-blend, DINOv2-S partial)|$LFW_SET $SBI $DINO_SBI"
  "dfdc_faces_sbi_dino|dfdc_faces reals (self-blend, DINOv2-S partial)|$DFDC_SET $SBI $DINO_SBI"
  # leave one dataset out (docs/multi_source.md): two sets in one data module, the third never seen; rows with
  # dfdc_faces take its CPU budget (128 px, 4 epochs), the other the ffhq/lfw one (160 px, 10 epochs)
  "lodo_ffhq_stylegan|multi: dfdc_faces+lfw_faceswap|+experiment=lodo data.held_out=ffhq_stylegan data.image_size=128 trainer.max_epochs=4"
  "lodo_dfdc_faces|multi: ffhq_stylegan+lfw_faceswap|+experiment=lodo data.held_out=dfdc_faces data.image_size=160 trainer.max_epochs=10"
  "lodo_lfw_faceswap|multi: ffhq_stylegan+dfdc_faces|+experiment=lodo data.held_out=lfw_faceswap data.image_size=128 trainer.max_epochs=4"
  # issue 19 §4: the same MobileNetV2 recipes on aligned face crops (experiments/face_detection/README.md); every
  # set the row is scored on is seen through the same face pipeline (the checkpoint records it)
  "lfw_faceswap_aligned|lfw_faceswap (ImageNet, aligned crops)|$LFW data.face_crop.enabled=true data.face_crop.size=176"
  "dfdc_faces_aligned|dfdc_faces (ImageNet, aligned crops)|$DFDC data.face_crop.enabled=true data.face_crop.scale=1.0 data.face_crop.size=224"
  # after dfdc_faces (aligned crops) reached LFW swaps (0.80): the LODO row that holds LFW out, on the same crops
  "lodo_lfw_faceswap_aligned|multi: ffhq_stylegan+dfdc_faces (aligned crops)|+experiment=lodo data.held_out=lfw_faceswap data.image_size=128 trainer.max_epochs=4 data.face_crop.enabled=true data.face_crop.scale=1.0 data.face_crop.size=224"
  # self-blend from reals on the aligned crops (docs/self_blend.md): the blend is made inside the crop, its mask from
  # the crop's own landmarks; the face_crop values are the aligned rows' above
  "dfdc_faces_sbi_aligned|dfdc_faces reals (self-blend, aligned crops)|$DFDC $SBI data.face_crop.enabled=true data.face_crop.scale=1.0 data.face_crop.size=224"
  "lfw_faceswap_sbi_aligned|lfw_faceswap reals (self-blend, aligned crops)|$LFW $SBI data.face_crop.enabled=true data.face_crop.size=176"
)

# ensemble rows (docs/inference.md, *Ensembles*): no training, no inference; the members' test predictions are
# fused by the rule `EnsembleDetector` serves (the mean of calibrated p_fake, fixed a priori) and scored like a
# row. id | row name (naming the union of the members' sets: those count as seen) | member row ids
ENSEMBLES=(
  "ens_ffhq_dfdc_aligned|ensemble: ffhq_stylegan (ImageNet) + dfdc_faces (ImageNet, aligned crops)|ffhq_stylegan_imagenet dfdc_faces_aligned"
  "ens_ffhq_sbi_dino_dfdc_aligned|ensemble: ffhq_stylegan reals (self-blend, DINOv2-S) + dfdc_faces (aligned crops)|ffhq_stylegan_sbi_dino dfdc_faces_aligned"
  # a GAN detector beside a detector that never saw a fake (self-blends of DFDC reals on aligned crops)
  "ens_ffhq_dfdc_sbi_aligned|ensemble: ffhq_stylegan (ImageNet) + dfdc_faces reals (self-blend, aligned crops)|ffhq_stylegan_imagenet dfdc_faces_sbi_aligned"
)

# every test set as its own data node: the split of its training run (seeded, grouped where it has groups)
TEST_SETS=(
  "+extra_eval_sets.ffhq_stylegan.root=$SHARED/ffhq_stylegan" "+extra_eval_sets.ffhq_stylegan.use_all_for_test=false"
  "+extra_eval_sets.dfdc_faces.root=$SHARED/dfdc_faces" "+extra_eval_sets.dfdc_faces.use_all_for_test=false"
  "+extra_eval_sets.dfdc_faces.group_by=source_video"
  "+extra_eval_sets.lfw_faceswap.root=$SHARED/lfw_faceswap" "+extra_eval_sets.lfw_faceswap.use_all_for_test=false"
  "+extra_eval_sets.lfw_faceswap.reencode_jpeg_quality=85"
)

field() { local IFS='|'; read -r -a parts <<< "$1"; echo "${parts[$2]}"; }

train_and_eval() {  # row spec: a step whose output is already in runs/ is not run again (FORCE=1 re-runs)
  local id args run start
  id=$(field "$1" 0) args=$(field "$1" 2) run=$HERE/runs/$id
  mkdir -p "$HERE/runs"
  if [[ ! -f $run/test_results.json || ${FORCE:-0} == 1 ]]; then
    rm -rf "$run" "$run.eval"
    start=$SECONDS
    # shellcheck disable=SC2086
    "$PY" -m deepfake_lightning.train $args "${QUIET[@]}" hydra.run.dir="$run"
    echo "$id train $((SECONDS - start)) s (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$HERE/results/seconds.txt"
  fi
  if [[ ! -f $run.eval/cross_dataset.json || ${FORCE:-0} == 1 ]]; then
    rm -rf "$run.eval"
    start=$SECONDS
    "$PY" -m deepfake_lightning.eval ckpt_path="$run/checkpoints/best.ckpt" data=folder \
      data.root="$SHARED/ffhq_stylegan" explain.enabled=false "${TEST_SETS[@]}" hydra.run.dir="$run.eval"
    echo "$id eval $((SECONDS - start)) s (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$HERE/results/seconds.txt"
  fi
  local dest=$HERE/results/$id  # light copy: what the model was and how it did
  mkdir -p "$dest"
  cp "$run"/{config.yaml,training_history.json,test_results.json} "$dest/"
  cp "$run.eval/cross_dataset.json" "$dest/"
  # the per-set predictions too (path,label,logit,p_fake; 200-1000 rows, ~40 KB a set): an ensemble row is fused
  # from them, and any paired comparison can be redone, without the git-ignored runs/
  mkdir -p "$dest/cross_dataset" && cp "$run.eval"/cross_dataset/*_predictions.csv "$dest/cross_dataset/"
  cp "$run/checkpoints/best.ckpt.json" "$dest/bundle.json" 2>/dev/null || true  # T, threshold, data, provenance
}

FUSE=()  # ensemble rows to (re)build after the rows: all of them, or those named
case ${1:-all} in
  all) for row in "${ROWS[@]}"; do train_and_eval "$row"; done; FUSE=("${ENSEMBLES[@]}") ;;
  matrix) FUSE=("${ENSEMBLES[@]}") ;;
  *)
    for id in "$@"; do
      found=0
      for row in "${ROWS[@]}"; do [[ $(field "$row" 0) == "$id" ]] && { train_and_eval "$row"; found=1; }; done
      for ens in "${ENSEMBLES[@]}"; do [[ $(field "$ens" 0) == "$id" ]] && { FUSE+=("$ens"); found=1; }; done
      [[ $found == 1 ]] || { echo "unknown row id: $id" >&2; exit 2; }
    done ;;
esac

row_name() {  # a ROWS id -> its row name
  local row
  for row in "${ROWS[@]}"; do [[ $(field "$row" 0) == "$1" ]] && { field "$row" 1; return; }; done
  echo "unknown member row id: $1" >&2; return 2
}

fuse_ensemble() {  # ensemble spec: fused from the members' eval in runs/, else their light copy in results/
  local id name members=() member dir
  id=$(field "$1" 0) name=$(field "$1" 1)
  for member in $(field "$1" 2); do
    dir=$HERE/runs/$member.eval
    [[ -f $dir/cross_dataset.json ]] || dir=$HERE/results/$member
    if ! compgen -G "$dir/cross_dataset/*_predictions.csv" > /dev/null; then  # light copies before ensembles
      echo "ensemble $id: member $member has no per-set predictions in runs/ or results/ yet; skipped" >&2
      return 0
    fi
    members+=("$(row_name "$member")=$dir")
  done
  "$PY" -m deepfake_lightning.evaluation.fuse_rows out="$HERE/results/$id" "name=$name" "${members[@]}"
}

for ens in "${FUSE[@]}"; do fuse_ensemble "$ens"; done

MATRIX_ROWS=()
for row in "${ROWS[@]}" "${ENSEMBLES[@]}"; do  # rows with results, in table order
  id=$(field "$row" 0)
  [[ -f $HERE/results/$id/cross_dataset.json ]] && MATRIX_ROWS+=("$(field "$row" 1)=$HERE/results/$id")
done
"$PY" -m deepfake_lightning.evaluation.cross_dataset_matrix out="$HERE/results" "${MATRIX_ROWS[@]}"
