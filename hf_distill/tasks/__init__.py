"""The task family: fine-tune a teacher and distil a student on a labelled task (GLUE, IMDB).

- `arguments`: `ModelArguments` and `DataArguments`, the recipe keys besides `DistillationConfig`'s.
- `data`: `load_task_data`, a tokenized `TaskData` for a GLUE task (Hub, local GLUE layout, CSV/JSON
  files) or the offline IMDB reviews; `glue`: the GLUE tasks and their metrics.
- `run`: `run_recipe`, what `hf-distill train` runs for this family.
- `augmentation`: TinyBERT's data augmentation (`hf-distill augment`); `demo`: `hf-distill demo`.

Importing this package imports none of them (the recipe parser reads `arguments` alone).
"""
