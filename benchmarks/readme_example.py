"""Runs the README's Python example ("Use it from Python") as written, in the current folder, and times it.

It needs the demo's teacher in `runs/demo/teacher` (run `hf-distill demo` in the same folder first).

    cd SOMEWHERE && hf-distill demo && python /path/to/benchmarks/readme_example.py
"""

import json
import os
import re
import sys
import time

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_example() -> str:
    section = open(README, encoding="utf-8").read().split("## Use it from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def main() -> int:
    if not os.path.isdir(os.path.join("runs", "demo", "teacher")):
        print("No runs/demo/teacher here: run `hf-distill demo` in this folder first.", file=sys.stderr)
        return 2
    start = time.time()
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    seconds = time.time() - start
    metrics = namespace["trainer"].state.log_history[-1]
    import transformers

    summary = {"seconds": round(seconds, 1), "eval": {k: v for k, v in metrics.items() if k.startswith("eval_")},
               "global_step": namespace["trainer"].state.global_step, "transformers": transformers.__version__}
    print(json.dumps(summary, indent=2))
    with open("readme_example.json", "w") as file:
        json.dump(summary, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
