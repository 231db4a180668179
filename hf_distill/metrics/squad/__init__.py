"""The SQuAD metric module (`squad.py`, configurations `squad` and `squad_v2`), loaded by path with `evaluate.load`."""
