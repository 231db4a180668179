"""The general family: task-agnostic distillation on raw text (DistilBERT's pre-training, TinyBERT's general stage).

- `arguments`: `GeneralModelArguments` and `TextDataArguments`.
- `text`: raw text (Hub datasets, local files, the offline IMDB reviews) cut into sequences.
- `masking`: DistilBERT's masking collator (15%, 80/10/10, optional frequency smoothing).
- `distilbert_init`: a BERT teacher's layers copied into a DistilBERT student.
- `trainer`: `GeneralDistillationTrainer`; `run`: `run_general`, what `hf-distill train` runs.

Importing this package imports none of them (the recipe parser reads `arguments` alone).
"""
