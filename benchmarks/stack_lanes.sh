#!/usr/bin/env bash
# The README's jobs on one installed lane, timed: `hf-distill demo`, the README's Python example, and
# `hf-distill export --quantize dynamic` of the demo's distilled student, plus the command line's help times.
#
#   bash benchmarks/stack_lanes.sh .venv      OUT_DIR     # current lane (transformers 5.x)
#   bash benchmarks/stack_lanes.sh .venv-2025 OUT_DIR     # 2025 lane (transformers 4.57 + optimum-onnx)
#
# Run the lanes one after the other on a quiet machine: wall times are compared across lanes.
set -euo pipefail
venv="$(cd "$1" && pwd)"
out="$2"
repo="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out"
cd "$out"
export HF_HUB_OFFLINE=1
grep -m1 "model name" /proc/cpuinfo | tee machine.txt
"$venv/bin/python" -c "import transformers, torch; print('transformers', transformers.__version__, 'torch', torch.__version__)" | tee -a machine.txt
seconds() { local start=$(date +%s.%N); "$@" > /dev/null 2>&1; echo "$(date +%s.%N) - $start" | bc; }
export HF_DISTILL_CACHE="$out/help-cache"
rm -rf "$HF_DISTILL_CACHE"
echo "hf-distill --help: $(seconds "$venv/bin/hf-distill" --help) s" | tee help_times.txt
echo "hf-distill train --help, first: $(seconds "$venv/bin/hf-distill" train --help) s" | tee -a help_times.txt
echo "hf-distill train --help, again: $(seconds "$venv/bin/hf-distill" train --help) s" | tee -a help_times.txt
echo "hf-distill export --help: $(seconds "$venv/bin/hf-distill" export --help) s" | tee -a help_times.txt
start=$(date +%s)
"$venv/bin/hf-distill" demo --output_dir runs/demo > demo.log 2>&1
echo "demo: $(( $(date +%s) - start )) s" | tee demo_time.txt
tail -6 demo.log
"$venv/bin/python" "$repo/benchmarks/readme_example.py" > readme_example.log 2>&1
cat readme_example.json
"$venv/bin/hf-distill" export runs/demo/student-distilbert --output export-dynamic --quantize dynamic \
    --task_name imdb > export.log 2>&1
tail -20 export.log
