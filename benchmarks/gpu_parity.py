"""Parity of the reference-tiny model on an accelerator against the authors' golden outputs (fp32, within 1e-5).

Loads tests/fixtures/reference-tiny through the public API on ``--device`` in fp32 and compares, as the CPU tests
do: each clip alone and the padded batch through ``embed_audio``, the text embeddings, and the torch API on the
authors' own preprocessed batch (projections before normalisation). Runs first with torch's default settings (what
a user gets; cuDNN convolutions may use TF32 by default) and, if that fails, again with TF32 off, so that the report
says which. Also prints how far bf16 moves the same embeddings (informational, no bar).

    python benchmarks/gpu_parity.py --device cuda      # exit 0: parity with the defaults; 1: not
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

TOLERANCE = 1e-5


def golden() -> tuple[dict, list[np.ndarray]]:
    arrays = dict(np.load(H.FIXTURE / "golden.npz"))
    arrays["json"] = json.loads((H.FIXTURE / "golden.json").read_text())
    lengths = arrays["lengths"].astype(int)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    raw = arrays["raw_waveforms_concat"].astype(np.float32)
    return arrays, [raw[offsets[i]:offsets[i + 1]] for i in range(len(lengths))]


def outputs(model, gold: dict, waves: list[np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    out = {"audio_emb_single": np.stack([model.embed_audio((w, 16000))[0] for w in waves]),
           "audio_emb_batch": model.embed_audio([(w, 16000) for w in waves], batch_size=4),
           "text_emb": model.embed_text(gold["json"]["texts"])}
    if model.precision == "fp32":
        with torch.inference_mode():
            values = torch.from_numpy(gold["input_values"]).to(model.device)
            mask = torch.from_numpy(gold["attention_mask"]).to(model.device)
            out["audio_proj_batch"] = model.encode_audio(values, mask, normalize=False).cpu().numpy()
            tokens = {"input_ids": torch.from_numpy(gold["input_ids"]).to(model.device),
                      "attention_mask": torch.from_numpy(gold["text_attention_mask"]).to(model.device)}
            out["text_proj"] = model.encode_text(tokens, normalize=False).cpu().numpy()
    return out


def compare(got: dict[str, np.ndarray], gold: dict) -> dict[str, float]:
    return {name: float(np.abs(value - gold[name]).max()) for name, value in got.items()}


def check(device: str, tf32: bool | None) -> dict[str, float]:
    import torch

    if tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    gold, waves = golden()
    model = H.load_tiny(precision="fp32", device=device)
    assert model.precision == "fp32" and str(model.device).startswith(device.split(":")[0])
    return compare(outputs(model, gold, waves), gold)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA device visible (torch {torch.__version__}, CUDA build {torch.version.cuda})")
        return 2
    print(H.machine_line(H.machine_info(device=args.device)))
    print(f"torch defaults: matmul TF32 {torch.backends.cuda.matmul.allow_tf32}, cuDNN TF32 "
          f"{torch.backends.cudnn.allow_tf32}")
    default = check(args.device, None)
    ok = all(v <= TOLERANCE for v in default.values())
    print(f"fp32 on {args.device}, torch defaults: " + ", ".join(f"{k} {v:.1e}" for k, v in default.items())
          + f" -> {'PASS' if ok else 'FAIL'} (max abs diff <= {TOLERANCE:g})")
    if not ok:
        strict = check(args.device, False)
        strict_ok = all(v <= TOLERANCE for v in strict.values())
        print(f"fp32 on {args.device}, TF32 off: " + ", ".join(f"{k} {v:.1e}" for k, v in strict.items())
              + f" -> {'PASS' if strict_ok else 'FAIL'}"
              + (" (so the engine's fp32 should turn TF32 off)" if strict_ok else ""))
    gold, waves = golden()
    bf16 = H.load_tiny(precision="bf16", device=args.device)
    got = outputs(bf16, gold, waves)
    agree = H.agreement(gold["audio_emb_single"], got["audio_emb_single"])
    drift = ", ".join(f"{k} {v:.1e}" for k, v in compare(got, gold).items())
    print(f"bf16 on {args.device} (informational): max abs diff {drift}"
          + f"; audio centred min cos {agree['centred_min_cos']:.5f}, NN kept {agree['nn_kept']}/{len(waves)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
