"""The compress family: prune a fine-tuned teacher, distil the pruned model from it, export it to INT8, in one recipe.

    hf-distill train recipes/compress/prune_distil_int8.yaml --task_name sst2 \
        --teacher_model_name_or_path runs/sst2/teacher --output_dir runs/sst2/compressed

- `arguments`: `CompressArguments`, the pruning sizes, the calibration data and the export of the chain.
- `run`: `run_compress`, the runner (prune with `hf_distill.pruning`, distil with the task runner, export and
  time with `hf_distill.export`), which writes `compress_report.json` and a Markdown table of every stage.
"""
