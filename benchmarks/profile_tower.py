"""Where the speech tower's time goes: torch.profiler over the engine's road, ops summed into kinds (issue 30).

The paper-size model (random seeded weights) prepared in ``--precision`` (default: auto), ``--clips`` seeded clips of
``--min-seconds``-``--max-seconds`` embedded through ``embed_audio`` once per ``--batches`` setting (clips per forward
pass; ``max_batch_seconds`` large enough for them), after one warm-up pass. Per setting: wall seconds, audio-s/s, and
the self CPU time of every torch op summed into kinds (linear layers, attention products, softmax, norms, GELU,
convolutions, element-wise, copies and layout, other), plus the wall time no op accounts for (Python, dispatch).

    python benchmarks/profile_tower.py --clips 16 --min-seconds 1 --max-seconds 3 --batches 1,8
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

# op name -> kind, by the first pattern the name contains (torch op names as the profiler reports them)
KINDS = (
    ("linear", ("_linear_pointwise", "aten::addmm", "aten::mm", "aten::linear", "quantized::linear")),
    ("attention products", ("aten::bmm", "aten::baddbmm", "scaled_dot_product", "flash_attention")),
    ("softmax", ("softmax",)),
    ("norms", ("layer_norm", "group_norm")),
    ("gelu", ("gelu",)),
    ("convolutions", ("convolution", "conv1d", "conv2d")),
    ("element-wise", ("aten::add", "aten::mul", "aten::sub", "aten::div", "addcmul", "masked_fill", "sigmoid",
                      "aten::sum", "aten::mean", "aten::where", "aten::ne", "aten::pow", "aten::sqrt", "aten::fill_",
                      "aten::zero_")),
    ("copies and layout", ("aten::copy_", "aten::clone", "aten::contiguous", "aten::flip", "aten::cat",
                           "aten::constant_pad", "aten::_to_copy", "aten::empty", "aten::as_strided",
                           "aten::resize_")),
)


def kind_of(name: str) -> str:
    for kind, patterns in KINDS:
        if any(pattern in name for pattern in patterns):
            return kind
    return "other"


def profile(model, waves, batch: int) -> dict:
    """One profiled ``embed_audio`` of ``waves`` with ``batch`` clips per pass: wall time and self time per kind."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    items = [(w, H.SR) for w in waves]
    seconds = max(len(w) for w in waves) / H.SR * batch + 1.0
    model.embed_audio(items[:batch], batch_size=batch, max_batch_seconds=seconds)  # warm-up
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        model.embed_audio(items, batch_size=batch, max_batch_seconds=seconds)
        wall = time.perf_counter() - start
    kinds: dict[str, float] = {}
    ops: dict[str, float] = {}
    for event in prof.key_averages():
        self_s = event.self_cpu_time_total / 1e6
        kinds[kind_of(event.key)] = kinds.get(kind_of(event.key), 0.0) + self_s
        ops[event.key] = self_s
    accounted = sum(kinds.values())
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:15]
    return {"batch": batch, "wall_s": wall, "audio_seconds_per_s": sum(len(w) for w in waves) / H.SR / wall,
            "kinds_s": dict(sorted(kinds.items(), key=lambda kv: -kv[1])), "unaccounted_s": wall - accounted,
            "top_ops_s": top}


def render(result: dict) -> str:
    lines = [f"### Speech tower profile, {result['date'][:10]} ({result['precision']}, git {result['git_revision']})",
             "", f"Command: `{result['command']}`", "", H.machine_line(result["machine"]), "",
             f"{result['clips']} clips of {result['min_seconds']:g}-{result['max_seconds']:g} s "
             f"({result['audio_seconds']:.1f} s of audio, {result['gflop']:.1f} GFLOP). Self CPU time per kind of op "
             "(s, share of the wall time):", ""]
    kinds = [k for k, _ in KINDS] + ["other"]
    headers = ["clips per pass", "wall s", "audio-s/s", "GFLOP/s"] + kinds + ["not in ops"]
    rows = []
    for run in result["runs"]:
        cells = [f"{run['kinds_s'].get(k, 0.0):.2f} ({100 * run['kinds_s'].get(k, 0.0) / run['wall_s']:.0f} %)"
                 for k in kinds]
        rows.append([run["batch"], f"{run['wall_s']:.2f}", f"{run['audio_seconds_per_s']:.2f}",
                     f"{result['gflop'] / run['wall_s']:.0f}"] + cells
                    + [f"{run['unaccounted_s']:.2f} ({100 * run['unaccounted_s'] / run['wall_s']:.0f} %)"])
    lines += H.markdown_table(headers, rows, [True] * len(headers))
    for run in result["runs"]:
        lines += ["", f"Top ops, {run['batch']} clip(s) per pass: "
                  + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in run["top_ops_s"][:10]) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=H.MODEL_KINDS, default="paper")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--max-seconds", type=float, default=3.0)
    ap.add_argument("--batches", default="1,8", help="comma-separated clips per forward pass to profile")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=H.RESULTS)
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    raw = list(sys.argv[1:] if argv is None else argv)
    model = H.build_model(args.model, args.precision, args.seed)
    waves = H.make_clips(args.clips, args.min_seconds, args.max_seconds, args.seed)
    config = model.audio_branch.base.config
    result = {"date": H.now(), "command": H.command_line("benchmarks/profile_tower.py", raw),
              "git_revision": H.git_revision(), "machine": H.machine_info(args.threads), "precision": model.precision,
              "clips": len(waves), "min_seconds": args.min_seconds, "max_seconds": args.max_seconds,
              "audio_seconds": sum(len(w) for w in waves) / H.SR,
              "gflop": sum(H.speech_tower_flops(len(w), config) for w in waves) / 1e9,
              "runs": [profile(model, waves, int(b)) for b in args.batches.split(",")]}
    markdown = render(result)
    H.write_results(args.out, H.result_stem("profile", args.name, args.model, model.precision), result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
