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


def stage_modules(base) -> dict:
    """The tower's stages before its layers (WavLM/wav2vec2 layout), timed by forward hooks."""
    encoder = getattr(base, "encoder", None)
    return {"feature encoder": getattr(base, "feature_extractor", None),
            "feature projection": getattr(base, "feature_projection", None),
            "positional conv": getattr(encoder, "pos_conv_embed", None)}


def _stage_hooks(module, name: str, spent: dict) -> list:
    """Hooks adding the wall time of each forward of ``module`` to ``spent[name]`` (they return None: the inputs and
    outputs pass unchanged)."""
    def pre(_module, _args) -> None:
        spent["_start_" + name] = time.perf_counter()

    def post(_module, _args, _out) -> None:
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - spent.pop("_start_" + name)

    return [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]


def timed_stages(model, run) -> dict:
    """Wall seconds spent in each stage during ``run()`` (forward pre/post hooks; layers summed), and the total."""
    import torch

    spent: dict[str, float] = {}
    handles = []
    for name, module in stage_modules(model.audio_branch.base).items():
        if module is None:
            continue

        handles += _stage_hooks(module, name, spent)
    for layer in getattr(getattr(model.audio_branch.base, "encoder", None), "layers", []):
        handles += _stage_hooks(layer, "transformer layers", spent)
    try:
        start = time.perf_counter()
        with torch.inference_mode():
            run()
        spent["total"] = time.perf_counter() - start
    finally:
        for handle in handles:
            handle.remove()
    return {k: v for k, v in spent.items() if not k.startswith("_")}


def profile(model, waves, batch: int) -> dict:
    """One profiled ``embed_audio`` of ``waves`` with ``batch`` clips per pass: wall time and self time per kind,
    then one unprofiled run with each stage's wall time."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    items = [(w, H.SR) for w in waves]
    seconds = max(len(w) for w in waves) / H.SR * batch + 1.0
    model.embed_audio(items[:batch], batch_size=batch, max_batch_seconds=seconds)  # warm-up
    stages = timed_stages(model, lambda: model.embed_audio(items, batch_size=batch, max_batch_seconds=seconds))
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
            "stages_s": stages,
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
    stage_names = ["feature encoder", "feature projection", "positional conv", "transformer layers"]
    lines += ["", "Wall time per stage of the tower in a run without the profiler (s, share of that run):", ""]
    lines += H.markdown_table(["clips per pass", "run s"] + stage_names + ["rest (engine, pooling)"], [
        [run["batch"], f"{run['stages_s']['total']:.2f}"]
        + [f"{run['stages_s'].get(n, 0.0):.2f} ({100 * run['stages_s'].get(n, 0.0) / run['stages_s']['total']:.0f} %)"
           for n in stage_names]
        + [f"{run['stages_s']['total'] - sum(run['stages_s'].get(n, 0.0) for n in stage_names):.2f}"]
        for run in result["runs"]], [True] * (len(stage_names) + 3))
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
    ap.add_argument("--cpu-lanes", type=int, default=1,
                    help="the engine's lanes (default 1: the profiler's self times are then the one pass's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=H.RESULTS)
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    raw = list(sys.argv[1:] if argv is None else argv)
    model = H.build_model(args.model, args.precision, args.seed)
    model.engine._cpu_lanes = args.cpu_lanes
    waves = H.make_clips(args.clips, args.min_seconds, args.max_seconds, args.seed)
    config = model.audio_branch.base.config
    result = {"date": H.now(), "command": H.command_line("benchmarks/profile_tower.py", raw),
              "git_revision": H.git_revision(), "machine": H.machine_info(args.threads), "precision": model.precision,
              "cpu_lanes": args.cpu_lanes, "clips": len(waves), "min_seconds": args.min_seconds, "max_seconds": args.max_seconds,
              "audio_seconds": sum(len(w) for w in waves) / H.SR,
              "gflop": sum(H.speech_tower_flops(len(w), config) for w in waves) / 1e9,
              "runs": [profile(model, waves, int(b)) for b in args.batches.split(",")]}
    markdown = render(result)
    H.write_results(args.out, H.result_stem("profile", args.name, args.model, model.precision), result, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
