"""Do torch.compile or ONNX Runtime beat the engine's eager path on CPU? (issue 11, item 5)

One WavLM-Large-width speech tower (hidden 1024, 16 heads, FFN 4096, the wavlm-large conv stack, random seeded
weights; ``--layers`` of the 24, default 6 to keep it short), one clip of ``--seconds`` audio. Measured in one process,
alternating: eager fp32 and bf16 (weights converted) with the engine's own forwards (``kernels.switch.use_fast_paths``),
torch.compile of each (the stock modules with SDPA attention; ``--mode`` and ``--freezing`` choose inductor's mode and
its weight-freezing pass, which prepacks weights for oneDNN), and ONNX Runtime fp32 (exported with torch.onnx, opset
17; ``--no-onnx`` skips it). Reports seconds per clip (median of ``--repeats``), the one-off compile/export time and
the largest difference to eager fp32. Needs ``pip install onnxruntime onnx``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import git_revision, machine_info, result_stem, write_results  # noqa: E402


def tower(layers: int, sdpa: bool = True, engine: bool = False):
    from transformers import WavLMConfig, WavLMModel

    from paraspeechclap.kernels.switch import use_fast_paths

    torch.manual_seed(0)
    config = WavLMConfig(hidden_size=1024, num_hidden_layers=layers, num_attention_heads=16, intermediate_size=4096,
                         feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
    model = WavLMModel(config).eval()
    if engine:  # all of the engine's eager forwards (they call oneDNN ops that the compiler does not trace)
        use_fast_paths(model)
    elif sdpa:  # the engine's attention; the ONNX exporter takes the stock module (same maths)
        use_fast_paths(model, ("attention",))
    return model


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", default=None, help="torch.compile mode (default, reduce-overhead, max-autotune)")
    ap.add_argument("--freezing", action="store_true", help="inductor's freezing pass (constant weights, prepacked)")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    x = torch.randn(1, int(args.seconds * 16000))
    rows, outputs = [], {}
    if args.freezing:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    fp32 = tower(args.layers, engine=True)  # built outside inference mode, as the engine builds its models
    bf16 = tower(args.layers, engine=True).to(torch.bfloat16)
    xb = x.to(torch.bfloat16)
    with torch.inference_mode():
        outputs["eager fp32"] = fp32(x).last_hidden_state.float()
        rows.append({"path": "eager fp32", "seconds": timed(lambda: fp32(x), args.repeats), "setup_s": 0.0})
        outputs["eager bf16"] = bf16(xb).last_hidden_state.float()
        rows.append({"path": "eager bf16", "seconds": timed(lambda: bf16(xb), args.repeats), "setup_s": 0.0})
    label = "compile" + (f" {args.mode}" if args.mode else "") + (" frozen" if args.freezing else "")
    for dtype, inp in ((torch.float32, x), (torch.bfloat16, xb)):
        model = tower(args.layers).to(dtype)
        with torch.no_grad():  # freezing needs parameters that are not inference tensors
            start = time.perf_counter()
            compiled = torch.compile(model, mode=args.mode)
            name = f"{label} {'fp32' if dtype == torch.float32 else 'bf16'}"
            outputs[name] = compiled(inp).last_hidden_state.float()
            setup = time.perf_counter() - start
            rows.append({"path": name, "seconds": timed(lambda: compiled(inp), args.repeats), "setup_s": setup})
    try:
        if args.no_onnx:
            raise ImportError("--no-onnx")
        import onnxruntime as ort

        class Hidden(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, values):
                return self.model(values).last_hidden_state

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "tower.onnx")
            torch.onnx.export(Hidden(tower(args.layers, sdpa=False)).eval(), (x,), path, input_names=["x"], output_names=["h"],
                              dynamic_axes={"x": {1: "n"}, "h": {1: "t"}}, opset_version=17, dynamo=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        outputs["onnxruntime fp32"] = torch.from_numpy(session.run(None, feed)[0])
        setup = time.perf_counter() - start
        rows.append({"path": "onnxruntime fp32", "seconds": timed(lambda: session.run(None, feed), args.repeats),
                     "setup_s": setup})
    except ImportError as error:
        print(f"onnxruntime skipped: {error}", file=sys.stderr)
    reference = outputs["eager fp32"]
    for row in rows:
        row["max_abs_diff_vs_eager_fp32"] = float((outputs[row["path"]] - reference).abs().max())
        row["x_eager_fp32"] = rows[0]["seconds"] / row["seconds"]
        print(f"{row['path']:<18} {row['seconds']:7.3f} s  x{row['x_eager_fp32']:.2f}  setup {row['setup_s']:6.1f} s"
              f"  max|diff| {row['max_abs_diff_vs_eager_fp32']:.2e}")
    result = {"layers": args.layers, "seconds_audio": args.seconds, "threads": torch.get_num_threads(), "rows": rows,
              "compile_mode": args.mode, "freezing": args.freezing,
              "machine": machine_info(None), "git": git_revision()}
    lines = ["| path | s per clip | x eager fp32 | one-off setup (s) | max abs diff vs eager fp32 |", "|---|---|---|---|---|"]
    lines += [f"| {r['path']} | {r['seconds']:.3f} | {r['x_eager_fp32']:.2f} | {r['setup_s']:.1f} | "
              f"{r['max_abs_diff_vs_eager_fp32']:.1e} |" for r in rows]
    write_results(Path(args.out), result_stem("backends-probe", args.name), result, "\n".join(lines) + "\n")
    print(json.dumps({r["path"]: round(r["x_eager_fp32"], 2) for r in rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
