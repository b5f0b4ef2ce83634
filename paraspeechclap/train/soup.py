"""``paraspeechclap soup``: a weighted average of fine-tuned models ("model soup", Wortsman et al. 2022; WiSE-FT).

    paraspeechclap soup runs/a/checkpoints/step_600/pretrained runs/b/checkpoints/step_600/pretrained \\
        --weights 0.7 0.3 --out runs/soup

Every model must be a fine-tune of one architecture (equal configs); their floating-point weights are averaged with
the given weights (normalised to sum to one), integer buffers are taken from the first model. The result is written
with :meth:`ParaSpeechCLAP.save_pretrained` (atomic; an existing folder is replaced only if it is a previous
``save_pretrained`` folder). Averaging two runs from one starting point often keeps the strengths of both, which is
how the embedded ``mini`` model is made (scripts/train_mini.sh).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

HELP = "average the weights of fine-tuned models of one architecture (a model soup) into a save_pretrained folder"


def normalised_weights(count: int, weights: Sequence[float] | None) -> list[float]:
    if count < 2:
        raise ValueError("a soup needs at least two models")
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise ValueError(f"{count} models but {len(weights)} weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def soup(sources: Sequence[str | Path], weights: Sequence[float] | None = None):
    """The weighted average of ``sources`` (anything :meth:`ParaSpeechCLAP.from_pretrained` loads), as a model
    (fp32, CPU) holding the first source's tokenizer and config."""
    import torch

    from ..api import ParaSpeechCLAP

    weights = normalised_weights(len(sources), weights)
    first = ParaSpeechCLAP.from_pretrained(sources[0], device="cpu", precision="fp32")
    config = first.config.to_dict()
    average = {k: v.detach().double() * weights[0] if v.is_floating_point() else v.detach().clone()
               for k, v in first.state_dict().items()}
    for source, weight in zip(sources[1:], weights[1:]):
        other = ParaSpeechCLAP.from_pretrained(source, device="cpu", precision="fp32")
        if other.config.to_dict() != config:
            changed = sorted(k for k in set(config) | set(other.config.to_dict())
                             if config.get(k) != other.config.to_dict().get(k))
            raise ValueError(f"{source} is not the architecture of {sources[0]} (config differs in {changed})")
        state = other.state_dict()
        if set(state) != set(average):
            raise ValueError(f"{source} has other tensors than {sources[0]}")
        for key, value in state.items():
            if value.is_floating_point():
                average[key] += value.detach().double() * weight
        del other
    dtypes = {k: v.dtype for k, v in first.state_dict().items()}
    with torch.no_grad():
        first.load_state_dict({k: v.to(dtypes[k]) for k, v in average.items()})
    first.name = "soup(" + ", ".join(f"{w:.3g}*{s}" for s, w in zip(sources, weights)) + ")"
    return first


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", help="save_pretrained folders (or any source from_pretrained loads)")
    parser.add_argument("--weights", type=float, nargs="+", default=None,
                        help="one weight per model (normalised to sum to one); default: equal")
    parser.add_argument("--out", required=True, help="the save_pretrained folder to write")


def run(args: argparse.Namespace) -> int:
    from ..loading.save import is_saved_folder

    out = Path(args.out)
    if (out.exists() or out.is_symlink()) and not is_saved_folder(out):  # before loading anything
        raise FileExistsError(f"{out} exists and is not a ParaSpeechCLAP save_pretrained folder; refusing to "
                              f"replace it")
    model = soup(args.models, args.weights)
    out = model.save_pretrained(args.out)
    print(f"wrote {model.name} to {out}")
    return 0
