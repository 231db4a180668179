#!/usr/bin/env bash
# Offline benchmark of the online-distillation recipes on IMDB (all-MiniLM-L6-v2 from pip):
#   1. deep mutual learning, two 3-layer peers (layers 0,2,4 and 1,3,5), and each peer trained alone;
#   2. self-distillation with exits at layers 2 and 4 of the 6-layer model, with and without the
#      deep exit's teaching (kd + hidden hint vs labels only), with the early-exit sweep.
# The five runs share one budget (BUDGET below) and run side by side, one thread each.
# Usage: bash benchmarks/online_imdb.sh [OUT_DIR]   (then read OUT_DIR/*/results.json and the logs)
set -euo pipefail
OUT=${1:-runs/online_bench}
PY=${PYTHON:-python}
MINILM=$($PY -c "from hf_distill.assets import minilm_l6_v2_path; print(minilm_l6_v2_path())" 2>/dev/null | tail -1)
BUDGET=(--max_train_samples 512 --max_eval_samples 500 --num_train_epochs 1 --learning_rate 1e-4
        --eval_strategy no --save_strategy no --disable_tqdm true --seed 42)
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
run() { local name=$1; shift; nice -n 10 $PY -m hf_distill.cli train "$@" "${BUDGET[@]}" --output_dir "$OUT/$name" > "$OUT/$name.log" 2>&1 & }
run dml recipes/online/mutual_imdb.yaml --peer_model_name_or_paths "$MINILM"
run alone_024 recipes/online/peer_alone_imdb.yaml --model_name_or_path "$MINILM" --student_layers 0,2,4
run alone_135 recipes/online/peer_alone_imdb.yaml --model_name_or_path "$MINILM" --student_layers 1,3,5
run sd_taught recipes/online/self_distillation_imdb.yaml --model_name_or_path "$MINILM"
run sd_labels_only recipes/online/self_distillation_imdb.yaml --model_name_or_path "$MINILM" --kd_weight 0 --hidden_weight 0
wait
echo "done: $OUT"
