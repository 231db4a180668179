"""Model cards and publishing to the Hugging Face Hub.

- `card`: the model card of a run folder, built from its `results.json` (and `export_report.json`).
- `push`: what is published (an allow-list), and the upload in one commit.
- `mixin`: the `Trainer` overrides that make `push_to_hub=True` publish the same way.
- `commands`: `hf-distill card` and `hf-distill push`.

Importing this package imports none of them; import the module you need.
"""
