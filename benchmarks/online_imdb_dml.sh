#!/usr/bin/env bash
# Deep mutual learning on the offline IMDB reviews, one run after the other (so wall times compare):
#   dml        two 3-layer peers cut from all-MiniLM-L6-v2 (layers 0,2,4 and 1,3,5), trained together
#   alone_024  peer 0 alone (labels only), same data, budget and hyper-parameters
#   alone_135  peer 1 alone
# 2,048 training reviews, 2 epochs (256 steps of 16), lr 1e-4, T = 1, 1,000 validation reviews.
# Table: python benchmarks/online_imdb_report.py --dml_dir OUT_DIR
# Usage: bash benchmarks/online_imdb_dml.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-runs/online_dml}
PY=${PYTHON:-python}
MINILM=$($PY -c "from hf_distill.assets import minilm_l6_v2_path; print(minilm_l6_v2_path())" 2>/dev/null | tail -1)
BUDGET=(--max_train_samples 2048 --max_eval_samples 1000 --num_train_epochs 2 --learning_rate 1e-4
        --eval_strategy no --save_strategy no --disable_tqdm true --seed 42)
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
run() {
  local name=$1; shift
  $PY -m hf_distill.cli train "$@" "${BUDGET[@]}" --output_dir "$OUT/$name" > "$OUT/$name.log" 2>&1
  echo "$name done"
}
run dml recipes/online/mutual_imdb.yaml --peer_model_name_or_paths "$MINILM"
run alone_024 recipes/online/peer_alone_imdb.yaml --model_name_or_path "$MINILM" --student_layers 0,2,4
run alone_135 recipes/online/peer_alone_imdb.yaml --model_name_or_path "$MINILM" --student_layers 1,3,5
echo "done: $OUT"
