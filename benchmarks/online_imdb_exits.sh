#!/usr/bin/env bash
# Layer-wise self-distillation with early exits on the offline IMDB reviews: MiniLM-L6 with exits after
# layers 2 and 4, three runs one after the other (so their wall times are comparable):
#   sd_mean_taught   exits mean-pool their layer; taught by the deep exit (kd 1, hint 0.1)
#   sd_mean_labels   exits mean-pool their layer; labels only (kd 0, hint 0)
#   sd_first_taught  exits read the first token ([CLS]); taught by the deep exit
# 2,048 training reviews, 2 epochs (256 steps of 16), lr 1e-4, 1,000 validation reviews; the sweep runs
# 300 of them one at a time. Tables: python benchmarks/online_imdb_report.py --sd_dir OUT_DIR
# Usage: bash benchmarks/online_imdb_exits.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-runs/online_exits}
PY=${PYTHON:-python}
MINILM=$($PY -c "from hf_distill.assets import minilm_l6_v2_path; print(minilm_l6_v2_path())" 2>/dev/null | tail -1)
BUDGET=(--model_name_or_path "$MINILM" --max_train_samples 2048 --max_eval_samples 1000 --num_train_epochs 2
        --learning_rate 1e-4 --eval_strategy no --save_strategy no --disable_tqdm true --seed 42
        --exit_thresholds 0.2,0.4,0.5,0.6,0.7,0.8,0.9,0.95 --sweep_samples 300)
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
run() {
  local name=$1; shift
  $PY -m hf_distill.cli train recipes/online/self_distillation_imdb.yaml "${BUDGET[@]}" "$@" --output_dir "$OUT/$name" \
      > "$OUT/$name.log" 2>&1
  echo "$name done"
}
run sd_mean_taught --exit_pooling mean
run sd_mean_labels --exit_pooling mean --kd_weight 0 --hidden_weight 0
run sd_first_taught --exit_pooling first
echo "done: $OUT"
