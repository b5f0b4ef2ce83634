"""The torch-free runtime against the torch engine (issue 30): parity, throughput, cold start and install size.

1. Exports the model (``--kind paper``: WavLM-Large + XLM-R-base shapes with seeded random weights, as
   ``inference_speed.py``; ``tiny``: the reference fixture) to ONNX (fp32, int8) and OpenVINO (fp32, bf16).
2. Parity: the workload's clips (16 of 1-15 s, as the standard benchmark) and captions through torch fp32 (the
   reference) and every exported variant: max abs diff, centred min cosine, nearest neighbours kept.
3. Throughput: audio-seconds per second of ``embed_audio`` with each path's default batching, each path in its own
   process, the paths taking turns for ``--rounds`` rounds (medians): torch default (``precision="auto"``: bf16 on
   CPUs with native bf16), torch fp32, ONNX Runtime fp32 and int8, OpenVINO fp32 and auto (bf16 where native).
4. Cold start: process start to the first embedding of a 3 s clip with ``mini`` exported to ONNX, on 2 cores
   (``taskset``), against the torch path loading ``mini`` (median of ``--cold-runs``).
5. ``--sizes``: two fresh venvs, the runtime distribution (runtime-dist/) and ``pip install .`` with torch, on disk
   (no timing: ``--sizes --paths '' --cold-runs 0`` measures only that).

Heavy (paper size: ~8 GB at the export, several GB per path): run it under ``flock /tmp/pscl-heavy.lock``.

    flock /tmp/pscl-heavy.lock python benchmarks/runtime_speed.py --sizes
    python benchmarks/runtime_speed.py --kind tiny --clips 4 --rounds 1 --cold-runs 1   # seconds, a smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

SR = H.SR
PATHS = {  # name -> (backend, precision): torch paths load the model, the others an export
    "torch default": ("torch", "auto"), "torch fp32": ("torch", "fp32"),
    "onnxruntime fp32": ("onnx", "fp32"), "onnxruntime int8": ("onnx", "int8"),
    "openvino fp32": ("openvino", "fp32"), "openvino auto": ("openvino", "auto"),
}


# ---------------------------------------------------------------------------------------------- subprocess work
def do_export(kind: str, work: str, backend: str) -> dict:
    from paraspeechclap.export import export_model
    from paraspeechclap.export.writer import summary

    out = Path(work) / f"{kind}-{backend}"
    model = H.load_tiny() if kind == "tiny" else H.build_model(kind, precision="fp32")
    start = time.perf_counter()
    export_model(model, out, backend, source={"model": f"benchmark-{kind}", "seed": 0})
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": H.process_peak_rss_mb(), "summary": summary(out),
            "mb": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20}


def run_path(kind: str, work: str, name: str, clips: list, captions: list, repeats: int) -> dict:
    backend, precision = PATHS[name]
    start = time.perf_counter()
    if backend == "torch":
        model = H.load_tiny(precision=precision) if kind == "tiny" else H.build_model(kind, precision=precision)
    else:
        from paraspeechclap import runtime

        model = runtime.load(Path(work) / f"{kind}-{backend}", precision=precision)
    load_seconds = time.perf_counter() - start
    items = [(c, SR) for c in clips]
    model.embed_audio(items[:1])  # warm-up: first-call allocations and compilation
    times, embeddings = [], None
    for _ in range(repeats):
        embeddings, stats = H.measure(lambda: model.embed_audio(items))
        times.append(stats["seconds"])
    text = model.embed_text(captions)
    return {"precision": model.precision, "seconds": H.median(times), "times": times, "load_seconds": load_seconds,
            "audio": np.asarray(embeddings), "text": np.asarray(text), "peak_rss_mb": H.process_peak_rss_mb()}


# ---------------------------------------------------------------------------------------------- cold start
COLD = {"runtime": "from paraspeechclap import runtime\nmodel = runtime.load({folder!r})\n",
        "torch": "from paraspeechclap import ParaSpeechCLAP\nmodel = ParaSpeechCLAP.from_pretrained('mini', device='cpu')\n"}
COLD_TAIL = "import soundfile\nmodel.embed_audio([{clip!r}])\n"


def cold_start(work: Path, runs: int) -> dict:
    """Wall seconds from process start to the first embedding, pinned to 2 cores."""
    folder = work / "mini-onnx"
    if not folder.exists():
        from paraspeechclap import ParaSpeechCLAP
        from paraspeechclap.export import export_model

        export_model(ParaSpeechCLAP.from_pretrained("mini", device="cpu", precision="fp32"), folder, "onnx")
    clip = work / "cold.wav"
    import soundfile as sf

    sf.write(clip, H.speech_like(3.0, np.random.default_rng(1)), SR)
    cores = sorted(os.sched_getaffinity(0))[:2]
    out = {"cores": len(cores)}
    for name, head in COLD.items():
        script = head.format(folder=str(folder)) + COLD_TAIL.format(clip=str(clip))
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(["taskset", "-c", ",".join(map(str, cores)), sys.executable, "-c", script], check=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(H.REPO)}, capture_output=True)
            walls.append(time.perf_counter() - start)
        out[name] = {"median_s": H.median(walls), "runs": walls}
    return out


def install_sizes(work: Path) -> dict:
    """Two fresh venvs on disk: the runtime distribution, and the full package with torch (the Makefile's pin)."""
    sizes = {}
    for name, steps in (("runtime", [[str(H.REPO / "runtime-dist")]]),
                        ("torch", [["torch==2.13.0"], [str(H.REPO)]])):
        env = work / f"venv-{name}"
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        for step in steps:
            subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", *step], check=True)
        sizes[name] = sum(p.stat().st_size for p in env.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20
    sizes["ratio"] = sizes["runtime"] / sizes["torch"]
    return sizes


# ---------------------------------------------------------------------------------------------- report
def report(result: dict) -> str:
    rows = []
    for name, row in result["paths"].items():
        audio, text = row.get("audio_agreement", {}), row.get("text_agreement", {})
        rows.append([name, row.get("precision"), H.fmt(row.get("audio_s_per_s")), H.fmt(row.get("x_torch_default")),
                     H.fmt(audio.get("max_abs_diff"), ".1e"), H.fmt(audio.get("centred_min_cos"), ".5f"),
                     f"{audio.get('nn_kept', '-')}/{result['clips']}", H.fmt(text.get("centred_min_cos"), ".5f"),
                     H.fmt(row.get("peak_rss_mb"), ".0f")])
    lines = [H.machine_line(result["machine"]), "",
             *H.markdown_table(["path", "ran in", "audio-s/s", "x torch default", "max abs diff vs torch fp32",
                                "centred min cos", "NN kept", "text centred min cos", "peak RSS MB"], rows)]
    cold = result.get("cold_start")
    if cold:
        lines += ["", f"Cold start, process start to first embedding of a 3 s clip with mini, {cold['cores']} cores: "
                      f"runtime (ONNX) {cold['runtime']['median_s']:.2f} s, torch {cold['torch']['median_s']:.2f} s "
                      f"(medians of {len(cold['runtime']['runs'])})."]
    sizes = result.get("install_sizes")
    if sizes:
        lines += ["", f"Install size: runtime venv {sizes['runtime']:.0f} MB, torch venv {sizes['torch']:.0f} MB "
                      f"(ratio {sizes['ratio']:.2f})."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="paper", choices=["paper", "tiny"])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--captions", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2, help="timed passes over the clips per process (median)")
    ap.add_argument("--rounds", type=int, default=2, help="times every path runs, in turn, each in a new process")
    ap.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset of: " + ", ".join(PATHS))
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--sizes", action="store_true", help="also build both venvs and measure them (minutes)")
    ap.add_argument("--work", default=None, help="folder for the exports (default: a temporary one)")
    ap.add_argument("--memory-limit-gb", type=float, default=12.0)
    ap.add_argument("--out", default=str(H.RESULTS))
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="runtime-speed-") as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        result = {"kind": args.kind, "clips": args.clips, "command": H.command_line(__file__, argv or sys.argv[1:]),
                  "machine": H.machine_info(None), "git": H.git_revision(), "exports": {}, "paths": {}}
        for backend in sorted({PATHS[p][0] for p in paths} - {"torch"}):
            if not (work / f"{args.kind}-{backend}").exists():
                H.log(f"exporting {args.kind} to {backend}")
                result["exports"][backend] = H.run_in_subprocess(do_export, args.kind, str(work), backend,
                                                                 memory_limit_gb=args.memory_limit_gb)
        if paths:
            measure_paths(args, work, paths, result)
        if args.cold_runs:
            H.log("cold start")
            result["cold_start"] = cold_start(work, args.cold_runs)
        if args.sizes:
            H.log("install sizes")
            result["install_sizes"] = install_sizes(work)
    markdown = report(result)
    H.write_results(Path(args.out), H.result_stem("runtime-speed", args.name, args.kind), result, markdown)
    print(markdown)
    return 0


def measure_paths(args, work: Path, paths: list[str], result: dict) -> None:
    clips = H.make_clips(args.clips, 1.0, 15.0, seed=0)
    captions = H.make_captions(args.captions, seed=0)
    audio_seconds = sum(len(c) for c in clips) / SR
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    for round_ in range(args.rounds):
        for name in paths:
            H.log(f"round {round_ + 1}: {name}")
            runs[name].append(H.run_in_subprocess(run_path, args.kind, str(work), name, clips, captions, args.repeats,
                                                  memory_limit_gb=args.memory_limit_gb))
    reference = next((r for r in runs.get("torch fp32", []) if "error" not in r), None)
    from paraspeechclap.export.probes import agreement

    for name, done in runs.items():
        ok = [r for r in done if "error" not in r]
        row: dict = {"errors": [r["error"] for r in done if "error" in r]}
        if ok:
            seconds = H.median([r["seconds"] for r in ok])
            row.update(precision=ok[0]["precision"], seconds=seconds, audio_s_per_s=audio_seconds / seconds,
                       load_seconds=H.median([r["load_seconds"] for r in ok]),
                       peak_rss_mb=max(r["peak_rss_mb"] for r in ok), rounds=[r["seconds"] for r in ok])
            if reference is not None:
                row["audio_agreement"] = agreement(reference["audio"], ok[0]["audio"])
                row["text_agreement"] = agreement(reference["text"], ok[0]["text"])
        result["paths"][name] = row
    base = result["paths"].get("torch default", {}).get("audio_s_per_s")
    for row in result["paths"].values():
        if base and row.get("audio_s_per_s"):
            row["x_torch_default"] = row["audio_s_per_s"] / base
    result["audio_seconds"] = audio_seconds
    print(json.dumps({n: round(r.get("x_torch_default", 0), 2) for n, r in result["paths"].items()}))


if __name__ == "__main__":
    raise SystemExit(main())
