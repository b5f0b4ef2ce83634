"""Corpus scale: annotation throughput (2 local workers vs 1, Ray Data vs local), SIGKILL-resume equality, peak RSS
at 1x and 10x the clips, and ANN search (p50/p99 latency, recall@20 against exact search, build time, memory, size)
over clustered and over random 768-d unit vectors, for usearch and faiss.

    python benchmarks/corpus_scale.py --quick            # small mode, a few minutes on 2 cores
    python benchmarks/corpus_scale.py                    # the issue's targets (1,000,000 vectors; see --help)

Targets (issue 13): 2 workers >= 1.7x one worker on `mini`; Ray within 15 % of local; search p50 <= 10 ms,
p99 <= 50 ms at recall@20 >= 0.95 on 1M clustered 768-d vectors, 2 cores; rerun after a kill equals an
uninterrupted run; peak RSS bounded by batch/prefetch, not by corpus size. Results: JSON + Markdown in --out.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

REPO = harness.REPO


# ---------------------------------------------------------------------------------------------- corpus
def write_corpus(folder: Path, clips: int, seconds: tuple[float, float], seed: int = 0) -> Path:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    for i, wave in enumerate(harness.make_clips(clips, seconds[0], seconds[1], seed)):
        sf.write(folder / f"clip{i:06d}.wav", wave, harness.SR)
    return folder


def repeated_manifest(folder: Path, path: Path, times: int) -> Path:
    """A JSONL manifest naming every clip of ``folder`` ``times`` times (distinct ids): 10x the rows, same audio."""
    files = sorted(folder.glob("*.wav"))
    with open(path, "w") as handle:
        for k in range(times):
            for f in files:
                handle.write(json.dumps({"id": f"{k}/{f.name}", "audio_path": str(f)}) + "\n")
    return path


def _env(threads: int | None = None) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "paraspeechclap", "annotate", *args]


def timed_run(cmd: list[str], env: dict) -> tuple[float, dict, float]:
    """Wall seconds, the command's JSON summary, and the peak RSS (MB) of the largest process it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, json.loads(done.stdout.strip().splitlines()[-1]), max(peak, before) / 1024


def rows_of(out: Path):
    from paraspeechclap.annotate.engines import annotated_rows

    return annotated_rows(out)


def same_rows(a, b, atol: float = 1e-5) -> bool:
    """Same ids in the same order, and embeddings equal up to ``atol`` (both missing for failed rows)."""
    if a.column("id").to_pylist() != b.column("id").to_pylist():
        return False
    for x, y in zip(a.column("embedding").to_pylist(), b.column("embedding").to_pylist()):
        if (x is None) != (y is None) or (x is not None and not np.allclose(x, y, atol=atol)):
            return False
    return True


# ---------------------------------------------------------------------------------------------- annotation
TIMED_RUN = """
import json, sys, time
import torch  # imports before the clock: every engine is timed from the same warm interpreter
from paraspeechclap.annotate import annotate
engine, workers, cores = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
threads = int(sys.argv[7]) or None
if engine == "ray":  # a fresh Ray instance in this process: its own agents still boot while the clock runs
    import ray
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
elif engine == "ray-cluster":  # a running cluster (`ray start --head`), joined as with `annotate --address auto`
    import ray
    ray.init(address="auto", log_to_driver=False)
    engine = "ray"
t = time.perf_counter()
summary = annotate(sys.argv[1], sys.argv[2], engine=engine, workers=workers, shard_size=int(sys.argv[6]),
                   device="cpu", precision="fp32", threads=threads)
summary["wall_s"] = time.perf_counter() - t
print(json.dumps(summary))
"""


RAY_SETTLE_S = 15.0  # after `ray start`: its agents finish booting before a job is timed, as on a running cluster


def _ray_cli(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "ray"), *args], env=_env(), check=True, capture_output=True)


def start_ray_cluster(cores: int) -> None:
    """A one-node cluster as a user starts one (`ray start --head`), left to settle before the timed job joins it."""
    _ray_cli("start", "--head", f"--num-cpus={cores}", "--include-dashboard=false", "--disable-usage-stats")
    time.sleep(RAY_SETTLE_S)


def stop_ray_cluster() -> None:
    _ray_cli("stop", "--force")


def bench_annotation(args, work: Path) -> dict:
    """The same job with 1 and 2 local workers and with Ray Data (2 actors), each timed from a warm interpreter
    (model loading and worker start-up included, interpreter start and imports not). Ray runs twice: on a fresh
    instance started in the timed process just before the clock (its dashboard and runtime-env agents still boot while
    the job runs) and joining a running one-node cluster (`ray start --head`, settled first: how a cluster is used,
    ``annotate --address auto``); both include the actors' start, their model loads and Ray Data's helper actors.
    Workers get the cores split between them (1 thread each when 2 share 2 cores); the single worker runs twice: on
    one core (1 thread: the scaling baseline, one worker's share) and with both cores as torch threads (what
    ``--workers 1`` does)."""
    corpus = write_corpus(work / "audio", args.clips, (args.min_seconds, args.max_seconds))
    out: dict = {"clips": args.clips, "shard_size": args.shard_size}
    results = {}
    per_worker = max(1, args.cores // 2)
    runs = [("local_1", "local", 1, 0), ("local_1_one_core", "local", 1, per_worker), ("local_2", "local", 2, 0)]
    runs += [] if args.no_ray else [("ray_2", "ray", 2, 0), ("ray_2_cluster", "ray-cluster", 2, 0)]
    for name, engine, workers, threads in runs:
        if engine == "ray-cluster":
            start_ray_cluster(args.cores)
        done = subprocess.run([sys.executable, "-c", TIMED_RUN, str(corpus), str(work / name), engine, str(workers),
                               str(args.cores), str(args.shard_size), str(threads)], env=_env(), capture_output=True,
                              text=True)
        if engine == "ray-cluster":
            stop_ray_cluster()
        if done.returncode != 0:
            results[name] = {"error": done.stderr[-2000:]}
            continue
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        wall = summary["wall_s"]
        results[name] = {"wall_s": wall, "clips_per_s": args.clips / wall,
                         "audio_h_per_h": summary["audio_seconds_this_run"] / wall}
        harness.log(f"{name}: {wall:.1f} s, {args.clips / wall:.1f} clips/s, "
                    f"{summary['audio_seconds_this_run'] / wall:.0f} audio-h/h")
    reference = rows_of(work / "local_1")
    if "wall_s" in results.get("local_2", {}):
        out["local_2_vs_1"] = results["local_1"]["wall_s"] / results["local_2"]["wall_s"]
        out["local_2_vs_1_one_core"] = results["local_1_one_core"]["wall_s"] / results["local_2"]["wall_s"]
        out["local_2_equals_1"] = same_rows(reference, rows_of(work / "local_2"), atol=1e-4)
    if "wall_s" in results.get("ray_2", {}):
        out["ray_vs_local_2"] = results["local_2"]["wall_s"] / results["ray_2"]["wall_s"]
        out["ray_equals_local"] = same_rows(reference, rows_of(work / "ray_2"), atol=1e-4)
    if "wall_s" in results.get("ray_2_cluster", {}):
        out["ray_cluster_vs_local_2"] = results["local_2"]["wall_s"] / results["ray_2_cluster"]["wall_s"]
        out["ray_cluster_equals_local"] = same_rows(reference, rows_of(work / "ray_2_cluster"), atol=1e-4)
    out["runs"] = results
    return out


def bench_resume(args, work: Path, annotation: dict) -> dict:
    """Kill an annotation at a random moment with SIGKILL, rerun, compare with the uninterrupted local_1 run."""
    corpus = work / "audio"
    folder = work / "killed"
    reference = work / "local_1"
    full = json.loads((reference / "_manifest.json").read_text())
    # seconds per shard of the same 2-worker job measured just before (start-up included, so a little long)
    per_shard = annotation["runs"]["local_2"]["wall_s"] / full["num_shards"]
    rng = random.Random(args.seed)
    cmd = cli(str(corpus), "--out", str(folder), "--shard-size", str(args.shard_size), "--device", "cpu",
              "--precision", "fp32", "--quiet", "--workers", "2")
    # its own process group, so that the SIGKILL takes the job's worker processes too (as a node failure would);
    # the moment: after the first shard is recorded, plus a random delay of up to the expected time of the rest
    child = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    manifest_path = folder / "_manifest.json"
    started = time.perf_counter()
    while child.poll() is None and time.perf_counter() - started < 600:
        if manifest_path.is_file() and json.loads(manifest_path.read_text()).get("shards"):
            break
        time.sleep(0.05)
    delay = rng.uniform(0.0, max(0.5, per_shard * (full["num_shards"] - 1) * 0.6))  # lands before the end
    time.sleep(delay)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = time.perf_counter() - started
    done_before = json.loads(manifest_path.read_text())["shards"] if manifest_path.is_file() else {}
    mtimes = {n: (folder / n).stat().st_mtime_ns for n in done_before}
    wall, summary, _ = timed_run(cmd, _env())
    kept = all((folder / n).stat().st_mtime_ns == t for n, t in mtimes.items())
    rows = rows_of(folder)
    ids = rows.column("id").to_pylist()
    return {"kill_after_s": killed_at, "extra_delay_after_first_shard_s": delay, "shards": full["num_shards"],
            "shards_done_at_kill": len(done_before),
            "killed_before_the_end": len(done_before) < full["num_shards"],
            "finished_shards_kept": kept, "redone_shards": full["num_shards"] - len(done_before),
            "duplicates": len(ids) - len(set(ids)), "equal_to_uninterrupted": same_rows(rows_of(reference), rows, 1e-4),
            "rerun_wall_s": wall}


def bench_memory(args, work: Path) -> dict:
    """Peak RSS of a one-worker run over --memory-clips clips and over 10x as many rows (the same audio repeated)."""
    corpus = write_corpus(work / "memory-audio", args.memory_clips, (args.min_seconds, args.max_seconds), seed=1)
    out = {}
    for times in (1, 10):
        manifest = repeated_manifest(corpus, work / f"rows{times}x.jsonl", times)
        # VmHWM is this process's own peak; ru_maxrss survives execve and would report this benchmark's own peak
        cmd = [sys.executable, "-c",
               "import json, re, sys; from paraspeechclap.cli import main; main(sys.argv[1:]); "
               "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1); "
               "print(json.dumps({'peak_rss_mb': int(hwm) / 1024}))",
               "annotate", str(manifest), "--out", str(work / f"mem{times}x"), "--shard-size", str(args.shard_size),
               "--device", "cpu", "--precision", "fp32", "--quiet", "--workers", "1"]
        done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]
        out[f"{times}x"] = {"rows": args.memory_clips * times, "peak_rss_mb": peak}
        harness.log(f"memory {times}x ({args.memory_clips * times} rows): peak RSS {peak:.0f} MB")
    out["ratio_10x_vs_1x"] = out["10x"]["peak_rss_mb"] / out["1x"]["peak_rss_mb"]
    return out


# ---------------------------------------------------------------------------------------------- search
def clustered_vectors(n: int, dim: int, clusters: int, noise: float, seed: int) -> np.ndarray:
    """A mixture of ``clusters`` Gaussian clusters on the sphere (the structure of real embeddings), unit rows."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = centres[rng.integers(0, clusters, m)] + noise * rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def random_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = rng.standard_normal((m, dim)).astype(np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(data), 100_000):
        s = queries @ data[start:start + 100_000].T
        idx = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, idx, 1)], axis=1)
        cand_i = np.concatenate([best_i, idx + start], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def bench_search(args, work: Path) -> dict:
    from paraspeechclap.index.core import _Faiss, _USearch

    out = {}
    k = 20
    for kind in args.vectors.split(","):
        if kind == "clustered":
            data = clustered_vectors(args.n + args.queries, args.dim, args.clusters, args.noise, args.seed)
        else:
            data = random_vectors(args.n + args.queries, args.dim, args.seed)
        queries, data = data[:args.queries].copy(), data[args.queries:]
        truth = exact_top(data, queries, k)
        for backend in args.backends.split(","):
            klass = _USearch if backend == "usearch" else _Faiss
            params = {"connectivity": 16 if backend == "usearch" else 32, "expansion_add": args.ef_add,
                      "expansion_search": args.ef_search}
            rss0 = harness.current_rss_mb()
            start = time.perf_counter()
            index = klass(args.dim, **params)
            keys = np.arange(len(data), dtype=np.int64)
            index.add(keys, data, threads=args.cores)
            build = time.perf_counter() - start
            memory = harness.current_rss_mb() - rss0
            path = work / f"{kind}.{klass.file}"
            index.save(path)
            size = path.stat().st_size
            path.unlink()
            lat, found = [], np.zeros((len(queries), k), np.int64)
            for i in range(len(queries)):
                t = time.perf_counter()
                got, _ = index.search(queries[i:i + 1], k)
                lat.append(time.perf_counter() - t)
                found[i] = got[0]
            recall = float(np.mean([len(set(found[i]) & set(truth[i])) / k for i in range(len(queries))]))
            row = {"n": len(data), "dim": args.dim, "build_s": build, "index_memory_mb": memory,
                   "index_file_mb": size / 2**20, "p50_ms": float(np.percentile(lat, 50) * 1e3),
                   "p99_ms": float(np.percentile(lat, 99) * 1e3), "recall_at_20": recall, "params": params}
            out[f"{kind}/{backend}"] = row
            harness.log(f"search {kind}/{backend}: build {build:.1f} s, p50 {row['p50_ms']:.2f} ms, "
                        f"p99 {row['p99_ms']:.2f} ms, recall@20 {recall:.3f}, {row['index_file_mb']:.0f} MB")
            del index
    return out


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small mode: 48 clips, 20,000 vectors, 200 queries")
    parser.add_argument("--clips", type=int, default=6000, help="clips for the annotation runs (default 6000)")
    parser.add_argument("--memory-clips", type=int, default=200, help="clips of the 1x memory run (10x: rows repeated)")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-seconds", type=float, default=6.0)
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--n", type=int, default=1_000_000, help="indexed vectors (default 1,000,000)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--clusters", type=int, default=3000)
    parser.add_argument("--noise", type=float, default=0.8, help="cluster noise (norm of the noise vector)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--ef-add", type=int, default=128)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--vectors", default="clustered,random")
    parser.add_argument("--backends", default="usearch,faiss")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: annotation,resume,memory,search")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default=str(harness.RESULTS), help="results folder")
    parser.add_argument("--name", default=None, help="file stem of the results (default corpus-scale-<date>-<rev>)")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.min_seconds, args.max_seconds, args.shard_size, args.memory_clips = 48, 1.0, 2.0, 8, 24
        args.n, args.queries, args.clusters = 20_000, 200, 200
    import tempfile

    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work or tempfile.mkdtemp(prefix="corpus-scale-"))
    results: dict = {"command": harness.command_line("benchmarks/corpus_scale.py", argv or sys.argv[1:]),
                     "when": harness.now(), "git": harness.git_revision(), "machine": harness.machine_info(args.cores)}
    started = time.perf_counter()
    if "annotation" not in skip:
        results["annotation"] = bench_annotation(args, work)
        if "resume" not in skip:
            results["resume"] = bench_resume(args, work, results["annotation"])
        if "memory" not in skip:
            results["memory"] = bench_memory(args, work)
    if "search" not in skip:
        results["search"] = bench_search(args, work)
    results["total_s"] = time.perf_counter() - started
    stem = harness.result_stem("corpus-scale", args.name, "quick" if args.quick else "")
    json_path, md_path = harness.write_results(Path(args.out), stem, results, markdown(results))
    harness.log(f"wrote {md_path} and {json_path.name}")
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=2, default=str))
    return 0


def _met(ok) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def markdown(results: dict) -> str:
    """The run as tables and the issue's targets, each with its measured value."""
    lines = [f"# corpus scale, {results['when']} ({results['git']})", "", f"Command: `{results['command']}`", "",
             harness.machine_line(results["machine"]), ""]
    targets = []
    ann = results.get("annotation")
    if ann:
        lines += [f"## Annotation ({ann['clips']} clips, shards of {ann['shard_size']}, mini, fp32)", "",
                  "| run | wall s | clips/s | audio-h per h |", "|---|---:|---:|---:|"]
        for name, run in ann["runs"].items():
            lines.append(f"| {name} | {run['wall_s']:.1f} | {run['clips_per_s']:.1f} | {run['audio_h_per_h']:.0f} |"
                         if "wall_s" in run else f"| {name} | failed: {run.get('error', '')[-200:]!r} | | |")
        ratio, ray = ann.get("local_2_vs_1_one_core"), ann.get("ray_vs_local_2")
        cluster = ann.get("ray_cluster_vs_local_2")
        both = ann.get("local_2_vs_1")
        lines += ["", f"2 workers (1 core each) / 1 worker on 1 core: {ratio:.2f}x; 2 workers / 1 worker with both "
                      f"cores as torch threads: {both:.2f}x (same rows: {ann.get('local_2_equals_1')}); "
                      f"Ray Data / local 2 workers: {ray if ray is None else f'{ray:.2f}x'} on a fresh instance "
                      f"(same rows: {ann.get('ray_equals_local')}), "
                      f"{cluster if cluster is None else f'{cluster:.2f}x'} on a running cluster "
                      f"(same rows: {ann.get('ray_cluster_equals_local')})", ""] if ratio else [""]
        targets.append(("2 local workers >= 1.7x one worker (mini, 2 cores; a worker's share is one core)",
                        f"{ratio:.2f}x (one worker with both cores as threads: {both:.2f}x)" if ratio else "-",
                        None if ratio is None else ratio >= 1.7 and ann.get("local_2_equals_1")))
        targets.append(("Ray Data within 15 % of the local engine on the same job (a running cluster; a fresh "
                        "instance in brackets)",
                        f"{cluster:.2f}x ({ray:.2f}x)" if cluster and ray else "-",
                        None if cluster is None else cluster >= 0.85 and ann.get("ray_cluster_equals_local")))
    res = results.get("resume")
    if res:
        lines += ["## SIGKILL and rerun", "", f"Killed {res['kill_after_s']:.1f} s after the start "
                  f"({res['shards_done_at_kill']} of {res['shards']} shards recorded); the rerun redid "
                  f"{res['redone_shards']} shards in {res['rerun_wall_s']:.1f} s, kept the finished ones "
                  f"({res['finished_shards_kept']}), {res['duplicates']} duplicate rows, equal to an uninterrupted run: "
                  f"{res['equal_to_uninterrupted']}.", ""]
        targets.append(("rerun after SIGKILL equals an uninterrupted run, no duplicates, only unfinished shards redone",
                        f"equal {res['equal_to_uninterrupted']}, {res['duplicates']} duplicates, finished shards kept "
                        f"{res['finished_shards_kept']}, killed before the end {res.get('killed_before_the_end')}",
                        res["equal_to_uninterrupted"] and not res["duplicates"] and res["finished_shards_kept"]
                        and res.get("killed_before_the_end", False)))
    mem = results.get("memory")
    if mem:
        lines += ["## Memory", "", f"Peak RSS of one worker: {mem['1x']['rows']} rows {mem['1x']['peak_rss_mb']:.0f} MB, "
                  f"{mem['10x']['rows']} rows {mem['10x']['peak_rss_mb']:.0f} MB ({mem['ratio_10x_vs_1x']:.2f}x).", ""]
        targets.append(("peak RSS bounded by batch/prefetch, not corpus size (1x vs 10x rows)",
                        f"{mem['ratio_10x_vs_1x']:.2f}x", mem["ratio_10x_vs_1x"] <= 1.1))
    search = results.get("search")
    if search:
        lines += ["## Search (top-20, one query at a time)", "",
                  "| vectors / backend | n | build s | index memory MB | file MB | p50 ms | p99 ms | recall@20 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for key, row in search.items():
            lines.append(f"| {key} | {row['n']:,} | {row['build_s']:.0f} | {row['index_memory_mb']:.0f} | "
                         f"{row['index_file_mb']:.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['recall_at_20']:.3f} |")
        lines.append("")
        for key, row in search.items():
            if key.startswith("clustered/"):
                targets.append((f"{key}: p50 <= 10 ms, p99 <= 50 ms, recall@20 >= 0.95 ({row['n']:,} x {row['dim']})",
                                f"{row['p50_ms']:.2f} / {row['p99_ms']:.2f} ms, {row['recall_at_20']:.3f}",
                                row["n"] >= 1_000_000 and row["p50_ms"] <= 10 and row["p99_ms"] <= 50
                                and row["recall_at_20"] >= 0.95))
    lines += ["## Targets (issue 13)", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {_met(ok)} |" for t, m, ok in targets]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
