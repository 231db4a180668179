#!/usr/bin/env bash
# The self-distillation pair of benchmarks/online_imdb.sh with twice the training (1,024 reviews,
# 64 steps, lr 1.5e-4) and a wider threshold range: the first budget left the shallow exits at chance.
# Usage: bash benchmarks/online_imdb_sd_longer.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-runs/online_bench_sd}
PY=${PYTHON:-python}
MINILM=$($PY -c "from hf_distill.assets import minilm_l6_v2_path; print(minilm_l6_v2_path())" 2>/dev/null | tail -1)
BUDGET=(--max_train_samples 1024 --max_eval_samples 500 --num_train_epochs 1 --learning_rate 1.5e-4
        --eval_strategy no --save_strategy no --disable_tqdm true --seed 42
        --exit_thresholds 0.2,0.4,0.6,0.7,0.8,0.9 --sweep_samples 200)
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
run() { local name=$1; shift; nice -n 10 $PY -m hf_distill.cli train "$@" "${BUDGET[@]}" --output_dir "$OUT/$name" > "$OUT/$name.log" 2>&1 & }
run sd_taught recipes/online/self_distillation_imdb.yaml --model_name_or_path "$MINILM"
run sd_labels_only recipes/online/self_distillation_imdb.yaml --model_name_or_path "$MINILM" --kd_weight 0 --hidden_weight 0
wait
echo "done: $OUT"
