"""Where the time of an exported model goes: ONNX Runtime's per-operator profile of ONNX fp32 and INT8.

Run from the repository root on a folder written by `hf-distill export` (or benchmarks/export.py):

    python benchmarks/export_profile.py runs/export/sst2-distilbert-dynamic

It runs each ONNX file (`model.onnx`, `model_quantized.onnx`) `--runs` times on random token ids of shape
`--batch_size` x `--sequence_length` (full attention mask) with ORT's profiler on, and prints the mean kernel
time per run of each operator type, next to the PyTorch fp32 model (the report's `source_model`, default
attention kernel) timed on the same inputs. The last lines give the bound this sets: the INT8 model's time
spent in operators that stay fp32 (LayerNorm, GELU, ...), how much faster the int8 MatMuls are than the same
fp32 MatMuls on this CPU, and the speed-up over PyTorch if every operator gained that much.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

QUANTIZED_OPS = {"DynamicQuantizeMatMul", "MatMulInteger", "QAttention", "DynamicQuantizeLinear", "QLinearMatMul",
                 "QuantizeLinear", "DequantizeLinear", "MatMulIntegerToFloat", "QGemm"}


def profile_session(path: str, feeds: dict, runs: int, threads: int | None) -> dict[str, float]:
    """Mean kernel milliseconds per run of each operator type of the ONNX model at `path`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    # The trace goes to a scratch folder, not the working directory (it is read, then deleted).
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="hf-distill-ort-profile-"), "profile")
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session_feeds = {spec.name: feeds[spec.name] for spec in session.get_inputs()}
    session.run(None, session_feeds)  # warm-up, profiled too: dropped below
    for _ in range(runs):
        session.run(None, session_feeds)
    trace = session.end_profiling()
    with open(trace, encoding="utf-8") as file:
        events = json.load(file)
    os.remove(trace)
    os.rmdir(os.path.dirname(trace))
    totals: dict[str, float] = collections.Counter()
    kernel_events = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    # Drop the warm-up run: its kernels are the first len(kernel_events) / (runs + 1) events.
    per_run = len(kernel_events) // (runs + 1)
    for event in kernel_events[per_run:]:
        totals[event["args"]["op_name"]] += event["dur"] / 1000.0
    return {op: total / runs for op, total in sorted(totals.items(), key=lambda item: -item[1])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", help="A folder written by `hf-distill export`.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--sequence_length", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    options = parser.parse_args(argv)

    import numpy as np
    import torch

    from hf_distill.export.onnx_export import load_pytorch_model, resolve_model_spec
    from hf_distill.export.report import read_report

    report = read_report(options.export_dir)
    if options.threads:
        torch.set_num_threads(options.threads)
    rng = np.random.default_rng(0)
    shape = (options.batch_size, options.sequence_length)
    feeds = {"input_ids": rng.integers(1000, 20000, shape, dtype=np.int64),
             "attention_mask": np.ones(shape, dtype=np.int64), "token_type_ids": np.zeros(shape, dtype=np.int64)}

    model = load_pytorch_model(report["source_model"], resolve_model_spec(report["source_model"]),
                               attn_implementation=None)
    tensors = {name: torch.from_numpy(value) for name, value in feeds.items()
               if name in model.forward.__code__.co_varnames}
    with torch.inference_mode():
        model(**tensors)
        timings = []
        for _ in range(options.runs):
            start = time.perf_counter()
            model(**tensors)
            timings.append(1000.0 * (time.perf_counter() - start))
    torch_ms = statistics.median(timings)

    profiles = {}
    for variant in ("onnx_fp32", "onnx_int8"):
        file_name = report["files"].get(variant)
        if file_name:
            profiles[variant] = profile_session(os.path.join(options.export_dir, file_name), feeds, options.runs,
                                                options.threads)

    print(f"{options.export_dir}: batch {options.batch_size} x {options.sequence_length}, mean kernel ms per run "
          f"over {options.runs} runs ({report['machine']['cpu'] if report.get('machine') else 'this machine'})")
    print(f"PyTorch fp32 ({model.config._attn_implementation} attention), median wall time: {torch_ms:.1f} ms")
    for variant, profile in profiles.items():
        total = sum(profile.values())
        print(f"\n{variant}: {total:.1f} ms in kernels")
        for op, milliseconds in profile.items():
            if milliseconds >= 0.05:
                print(f"  {op:<28}{milliseconds:>9.1f}  {100 * milliseconds / total:5.1f}%")
    int8 = profiles.get("onnx_int8")
    if int8:
        total = sum(int8.values())
        fp32_part = sum(ms for op, ms in int8.items() if op not in QUANTIZED_OPS)
        print(f"\nINT8 model: {fp32_part:.1f} ms of {total:.1f} in operators that stay fp32 "
              f"({', '.join(op for op in int8 if op not in QUANTIZED_OPS and int8[op] >= 0.5)}).")
        print(f"speed-up over PyTorch now: {torch_ms / total:.2f}x (kernel time)")
        fp32 = profiles.get("onnx_fp32", {})
        if fp32.get("MatMul") and int8.get("DynamicQuantizeMatMul"):
            gemm_ratio = fp32["MatMul"] / int8["DynamicQuantizeMatMul"]
            print(f"the same MatMuls: fp32 {fp32['MatMul']:.1f} ms, int8 {int8['DynamicQuantizeMatMul']:.1f} ms, "
                  f"{gemm_ratio:.2f}x faster in int8 on this CPU")
            print(f"bound if every operator of the fp32 graph ran {gemm_ratio:.2f}x faster: "
                  f"{torch_ms / (sum(fp32.values()) / gemm_ratio):.2f}x over PyTorch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
