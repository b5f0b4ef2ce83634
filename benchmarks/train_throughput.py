"""Training throughput on this machine; prints a Markdown table for BENCHMARKS.md.

Rows:
* small, loop: a small WavLM-shaped speech tower (the real 7-layer conv stack, stride 320, 64 channels;
  2 transformer layers of 128) and the reference-tiny XLM-R text tower, random weights; one optimizer
  step = forward + backward (contrastive + tag classification with per-step prompts) + Adam, on
  synthetic batches;
* small, end to end: ``paraspeechclap train`` itself (JSONL manifest of WAV files, random crops,
  DataLoader workers, CSV log) on a synthetic corpus; samples/s from its own log;
* paper size: a WavLM-Large-shaped speech tower (24 x 1024, 7 conv layers) and an XLM-R-base-shaped
  text tower (12 x 768, 250k vocabulary), built from configs with random weights; seconds per step
  for a short batch (default 2 x 3 s), fp32 and bf16 autocast.

    python benchmarks/train_throughput.py [--skip-paper] [--paper-bf16] [--steps 5]

The paper-size model needs about 10 GiB of memory (fp32 weights, gradients and Adam state of ~590M
parameters); it is skipped when less than --min-free-gb is available.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import FIXTURE  # noqa: E402  (found relative to the repository; PARASPEECHCLAP_FIXTURE overrides)


def _batch(n: int, seconds: float, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    L = int(seconds * 16000)
    vocab = ["deep", "calm", "fast", "husky", "shrill", "whispered", "soft", "loud"]
    tags = [[vocab[i % len(vocab)]] + ([vocab[(3 * i + 1) % len(vocab)]] if i % 2 else []) for i in range(n)]
    return {"audio": torch.randn(n, L, generator=g), "audio_attention_mask": torch.ones(n, L, dtype=torch.long),
            "audio_lengths": torch.full((n,), L), "size": n,
            "text": [f"A speaker with a {t[0]} voice talks at a measured pace, clip {i}." for i, t in enumerate(tags)],
            "tags": {"intrinsic_tags": tags}}


def time_steps(model, batch: dict, steps: int, precision: str = "fp32", classification: bool = True) -> list[float]:
    from paraspeechclap.train.step import HeadSpec, synonym_templates, training_loss

    heads = [HeadSpec("intrinsic_tags", sorted({t for r in batch["tags"]["intrinsic_tags"] for t in r}),
                      synonym_templates("builtin"), "A person is speaking in a {} style.")] if classification else []
    for n, p in model.named_parameters():
        if n.startswith("text_branch.base.pooler"):
            p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    ac = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
    times = []
    for s in range(steps + 1):  # the first step is warm-up
        t = time.perf_counter()
        out = training_loss(model, model, batch, device=torch.device("cpu"), heads=heads, step=s, seed=0, autocast=ac)
        out["total_loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return times[1:]


def small_folders(root: Path) -> tuple[Path, Path]:
    from transformers import WavLMConfig

    speech = root / "wavlm-small-shaped"
    WavLMConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                conv_dim=(64,) * 7, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=False,
                layerdrop=0.0, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4).save_pretrained(speech)
    shutil.copy(FIXTURE / "speech" / "preprocessor_config.json", speech / "preprocessor_config.json")
    return speech, FIXTURE / "text"


def paper_size_folders(root: Path, vocab_size: int) -> tuple[Path, Path]:
    from transformers import WavLMConfig, XLMRobertaConfig

    speech = root / "wavlm-large-shaped"
    WavLMConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=False, layerdrop=0.0,
                feat_proj_dropout=0.1, apply_spec_augment=True, mask_time_prob=0.075).save_pretrained(speech)
    (speech / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True, "sampling_rate": 16000}))
    text = root / "xlmr-base-shaped"
    XLMRobertaConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
                     pad_token_id=1, bos_token_id=0, eos_token_id=2).save_pretrained(text)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(FIXTURE / "text" / f, text / f)
    return speech, text


def end_to_end(tmp: Path, steps: int, batch: int, seconds: float, workers: int, speech: Path, text: Path) -> dict:
    from harness import write_train_corpus  # synthetic WAVs + JSONL

    from paraspeechclap.train.trainer import train

    m = write_train_corpus(tmp / "corpus", 64, seconds=(seconds * 0.8, seconds * 2.0))
    ov = [f"run.output_dir={tmp / 'run'}", "run.device=cpu", f"data.train={m}", f"data.audio_root={m.parent / 'audio'}",
          f"data.crop_seconds={seconds}", f"data.num_workers={workers}", f"optim.batch_size={batch}",
          f"optim.max_steps={steps + 1}", f"model.speech_model={speech}",
          f"model.text_model={text}", "model.embedding_dim=24", "model.pretrained_encoders=false",
          "logging.tqdm=false", "logging.tensorboard=false", "logging.every_n_steps=1", "checkpoint.every_n_steps=0",
          "checkpoint.save_pretrained=false", "run.log_level=WARNING"]
    train("intrinsic", ov)
    import csv

    rows = list(csv.DictReader(open(tmp / "run" / "train_log.csv")))[1:]  # drop the warm-up step
    return {"samples_per_s": float(np.median([float(r["samples_per_s"]) for r in rows])),
            "audio_h_per_h": float(np.median([float(r["audio_hours_per_hour"]) for r in rows]))}


def _available_gb() -> float | None:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per row (after one warm-up)")
    ap.add_argument("--small-batch", type=int, default=8)
    ap.add_argument("--small-seconds", type=float, default=3.0)
    ap.add_argument("--paper-batch", type=int, default=2)
    ap.add_argument("--paper-seconds", type=float, default=3.0)
    ap.add_argument("--paper-steps", type=int, default=2)
    ap.add_argument("--paper-vocab", type=int, default=250002, help="XLM-R vocabulary (its Adam update is part of a step)")
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--paper-bf16", action="store_true", help="also time bf16 autocast for the paper-size model")
    ap.add_argument("--min-free-gb", type=float, default=12.0,
                    help="skip the paper-size row when less memory is available (it needs about 10 GiB)")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    from paraspeechclap import ParaSpeechCLAP

    rows = []
    work = Path(tempfile.mkdtemp(prefix="psc-bench-"))
    sp, tx = small_folders(work)
    model = ParaSpeechCLAP.from_encoders(str(sp), str(tx), embedding_dim=24, pretrained_encoders=False)
    n_small = sum(p.numel() for p in model.parameters()) / 1e6
    b = _batch(args.small_batch, args.small_seconds)
    t = time_steps(model, b, args.steps)
    med = float(np.median(t))
    print(f"small loop: {med:.3f} s/step", file=sys.stderr, flush=True)
    rows.append((f"small ({n_small:.1f}M params), loop", f"{args.small_batch} x {args.small_seconds:g} s", "fp32",
                 f"{med:.3f}", f"{args.small_batch / med:.1f}", f"{args.small_batch * args.small_seconds / med:.0f}"))
    if not args.skip_e2e:
        with tempfile.TemporaryDirectory() as tmp:
            r = end_to_end(Path(tmp), args.steps, args.small_batch, args.small_seconds, args.workers, sp, tx)
        rows.append((f"small, end to end (`paraspeechclap train`, {args.workers} workers)",
                     f"{args.small_batch} x {args.small_seconds:g} s", "fp32",
                     f"{args.small_batch / r['samples_per_s']:.3f}", f"{r['samples_per_s']:.1f}",
                     f"{r['audio_h_per_h']:.0f}"))
    avail = _available_gb()
    if not args.skip_paper and avail is not None and avail < args.min_free_gb:
        print(f"(paper-size row skipped: {avail:.1f} GiB available, {args.min_free_gb:g} needed)", file=sys.stderr)
        args.skip_paper = True
    if not args.skip_paper:
        with tempfile.TemporaryDirectory() as tmp:
            sp, tx = paper_size_folders(Path(tmp), args.paper_vocab)
            torch.manual_seed(0)
            big = ParaSpeechCLAP.from_encoders(str(sp), str(tx), embedding_dim=768, pretrained_encoders=False)
            n_params = sum(p.numel() for p in big.parameters()) / 1e6
            pb = _batch(args.paper_batch, args.paper_seconds)
            for prec in ("fp32", "bf16") if args.paper_bf16 else ("fp32",):
                t = time_steps(big, pb, args.paper_steps, precision=prec)
                med = float(np.median(t))
                print(f"paper size {prec}: {med:.2f} s/step", file=sys.stderr, flush=True)
                rows.append((f"paper size ({n_params:.0f}M params: WavLM-Large + XLM-R-base shapes)",
                             f"{args.paper_batch} x {args.paper_seconds:g} s", prec, f"{med:.2f}",
                             f"{args.paper_batch / med:.2f}", f"{args.paper_batch * args.paper_seconds / med:.1f}"))
            del big
    shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Training throughput, CPU only: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.1f} at the end. "
          f"Median of the timed steps after one warm-up step; contrastive + classification loss, Adam.\n")
    print("| model | batch | precision | s / step | samples / s | audio s / s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
