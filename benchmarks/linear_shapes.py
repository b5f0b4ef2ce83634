"""The speech tower's linear-layer shapes at a range of frame counts, through each CPU backend (issue 30).

For each ``(in, out)`` shape of a WavLM-Large layer (q/k/v/out 1024->1024, feed-forward 1024->4096 and 4096->1024)
and each row count ``M`` (frames x clips in a pass), GFLOP/s of: torch's ``F.linear``; oneDNN's matmul on the plain
weight (the engine's path: ``_linear_pointwise``); oneDNN on a weight reordered once into its blocked layout for that
``M`` (``_reorder_linear_weight``, as a compiler's prepacking would). The backends take turns; each cell is the best
of ``--repeats`` rounds of ``--calls`` calls, so a neighbour's burst on a shared machine drops out.

    python benchmarks/linear_shapes.py --rows 50,100,150,300,600,1200
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

SHAPES = ((1024, 1024), (1024, 4096), (4096, 1024))


def backends(weight, bias, rows: int) -> dict:
    """Name -> a function of the input, for one weight."""
    import torch
    import torch.nn.functional as F

    packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)
    return {"torch F.linear": lambda x: F.linear(x, weight, bias),
            "oneDNN plain weight": lambda x: torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], ""),
            "oneDNN prepacked": lambda x: torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")}


def measure(rows: int, shape: tuple[int, int], dtype, repeats: int, calls: int) -> dict:
    """Best GFLOP/s of each backend for ``rows`` x ``shape``."""
    import torch

    torch.manual_seed(0)
    weight, bias = torch.randn(shape[1], shape[0]).to(dtype), torch.randn(shape[1]).to(dtype)
    x = torch.randn(rows, shape[0]).to(dtype)
    fns = backends(weight, bias, rows)
    best = {name: float("inf") for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn(x)
        for _ in range(repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                for _ in range(calls):
                    fn(x)
                best[name] = min(best[name], (time.perf_counter() - start) / calls)
    flops = 2 * rows * shape[0] * shape[1]
    return {name: flops / seconds / 1e9 for name, seconds in best.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="50,100,150,300,600,1200")
    ap.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--out", type=Path, default=H.RESULTS)
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    import torch

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    raw = list(sys.argv[1:] if argv is None else argv)
    cells = [{"rows": int(m), "in": k, "out": n, "gflops": measure(int(m), (k, n), dtype, args.repeats, args.calls)}
             for m in args.rows.split(",") for k, n in SHAPES]
    peak = H.matmul_gflops(args.dtype, 2048, 5)
    result = {"date": H.now(), "command": H.command_line("benchmarks/linear_shapes.py", raw),
              "git_revision": H.git_revision(), "machine": H.machine_info(), "dtype": args.dtype,
              "peak_2048_gflops": peak, "cells": cells}
    names = list(cells[0]["gflops"])
    table = [[c["rows"], f"{c['in']}->{c['out']}"] + [f"{c['gflops'][n]:.0f} ({100 * c['gflops'][n] / peak:.0f} %)"
                                                        for n in names] for c in cells]
    markdown = "\n".join([f"### Linear-layer shapes, {args.dtype}, {result['date'][:10]} (git {result['git_revision']})",
                          "", f"Command: `{result['command']}`", "", H.machine_line(result["machine"]), "",
                          f"GFLOP/s (share of the {peak:.0f} GFLOP/s 2048x2048 peak measured after them):", ""]
                         + H.markdown_table(["rows", "shape"] + names, table, [True, False] + [True] * len(names)))
    H.write_results(args.out, H.result_stem("linear-shapes", args.name, args.dtype), result, markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
