"""The GLUE metric module (`glue.py`), loaded by path with `evaluate.load`."""
