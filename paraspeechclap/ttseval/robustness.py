"""The robustness set: perturbations of correct renderings that must not raise an adherence score.

A perturbation that raises a score without changing the style is a way to game it (RRPO, arXiv 2512.04552). Each
correct rendering (a clip of the reference system, unflagged) is perturbed every way below and scored again. A
perturbed clip **raises** a score when its score exceeds the original's by more than :data:`MARGIN_SD` standard
deviations of that score over the unperturbed clips: the same scale-free margin for every score, so the shares of
the raw cosine and the contrastive score can be compared; shares with no margin at all are reported too. The quality
gates run on the perturbed samples as well, so the report says how many raises a gate would have caught.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["PERTURBATIONS", "MARGIN_SD", "perturb"]

#: a raise is counted beyond this many standard deviations of the score over the unperturbed clips
MARGIN_SD = 0.5


def _noise(wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) or 1e-4
    return wave + rng.standard_normal(len(wave)).astype(np.float32) * rms * 10 ** (-10 / 20)


def _peak(wave: np.ndarray) -> float:
    return float(np.max(np.abs(wave))) if wave.size else 0.0


def _clip(wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(wave * (4.0 / max(_peak(wave), 1e-9)), -1.0, 1.0)


def _loudness(wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    return np.tanh(8.0 * wave / max(_peak(wave), 1e-9)) / np.tanh(8.0)


def _pad(wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    silence = np.zeros(2 * rate, np.float32)
    return np.concatenate([silence, wave, silence])


def _reverse(wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    return wave[::-1].copy()


def _repeat(wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([wave, wave, wave])


def _stutter(wave: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    seg = max(1, rate // 4)
    parts = [wave[i:i + seg] for i in range(0, len(wave), seg)]
    return np.concatenate([p for part in parts for p in (part, part)])


#: name -> (what it does, function(wave, rate, rng) -> wave). Every perturbation keeps the words and the style.
PERTURBATIONS: dict[str, tuple[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]]] = {
    "noise_10db": ("white noise at 10 dB SNR", _noise),
    "clipping_x4": ("gain to 4x full scale, hard-clipped", _clip),
    "loudness_max": ("peak-normalised and limited (tanh, drive 8): maximal loudness", _loudness),
    "silence_pad_2s": ("2 s of digital silence before and after", _pad),
    "time_reversal": ("played backwards", _reverse),
    "repeat_x3": ("the whole clip three times", _repeat),
    "stutter_250ms": ("every 250 ms segment played twice", _stutter),
}


def perturb(name: str, wave: np.ndarray, rate: int, seed: int) -> np.ndarray:
    """``wave`` (float32 mono) perturbed by ``name``, deterministic for ``seed``."""
    _, fn = PERTURBATIONS[name]
    return np.asarray(fn(np.asarray(wave, np.float32), int(rate), np.random.default_rng(seed)), np.float32)


# ---------------------------------------------------------------------------------------------- evaluation
def _embed_waves(model, waves: list[np.ndarray], embed, batch_size: int | None) -> np.ndarray:
    """Embeddings of 16 kHz arrays through the bulk loop, cached under the digest of their samples."""
    from ..audio import TARGET_SAMPLE_RATE
    from ..evaluate.cache import bytes_digest
    from ..inference import embed_items

    cache = embed.cache
    keys = [bytes_digest(b"ttseval-pcm16k:" + w.tobytes()) for w in waves]
    todo = [i for i, k in enumerate(keys) if cache.get(k) is None]
    fresh = {}
    for result in embed_items(model, [(waves[i], TARGET_SAMPLE_RATE) for i in todo], batch_size=batch_size):
        if result.ok:
            fresh[keys[todo[result.index]]] = result.embedding
    cache.put_many(fresh)
    rows = [cache.lookup(k) for k in keys]
    dim = next((len(r) for r in rows if r is not None), 0)
    return np.array([r if r is not None else np.full(dim, np.nan) for r in rows], dtype=np.float64)


def _shares(orig: np.ndarray, pert: np.ndarray, flagged: np.ndarray, seed: int, n_boot: int, level: float) -> dict:
    """How often and how much a perturbation raised one score (see the module docstring for the margin)."""
    from .stats import interval, replicates, weighted_mean

    ok = np.isfinite(orig) & np.isfinite(pert)
    if not ok.any():
        return {"n": 0}
    delta = np.where(ok, pert - orig, np.nan)
    sd = float(np.nanstd(orig[np.isfinite(orig)]))
    raised = ok & (delta > MARGIN_SD * sd)
    reps = replicates(len(delta), n_boot, seed, level)
    return {"n": int(ok.sum()), "margin": MARGIN_SD * sd, "raised_share": float(raised[ok].mean()),
            "raised_any_share": float((delta[ok] > 0).mean()),
            "raised_unflagged_share": float((raised & ~flagged)[ok].mean()),
            "mean_change": interval(float(np.nanmean(delta)), weighted_mean(delta, reps.weights), level)}


def evaluate_robustness(model, scores, reference: str, gates, embed, attr_table, seed: int, n_boot: int,
                        level: float, batch_size: int | None = None) -> dict:
    """Perturb the reference system's unflagged, scored clips every way of :data:`PERTURBATIONS` and report, per
    perturbation and score, the share of clips it raised (and how many of those a quality gate flags)."""
    from ..audio import TARGET_SAMPLE_RATE, load_audio
    from .adherence import predictions
    from .contrastive import contrastive_scores
    from .gates import apply

    s = scores.systems.index(reference)
    keep = [p for p in range(len(scores.prompts)) if scores.status[s, p] == "ok" and not scores.flags[s][p]
            and np.isfinite(scores.contrastive[s, p])]
    originals = [load_audio(scores.paths[s][p], TARGET_SAMPLE_RATE) for p in keep]
    names = list(PERTURBATIONS)
    waves = [perturb(name, w, TARGET_SAMPLE_RATE, seed + 7919 * k + j)
             for j, name in enumerate(names) for k, w in enumerate(originals)]
    emb = _embed_waves(model, waves, embed, batch_size)
    captions = [scores.prompts[p].caption for p in keep] * len(names)
    contrast = contrastive_scores(model, emb, captions)
    intended = [scores.info.intended[p] for p in keep] * len(names)
    wanted = {a for want in intended for a in want}
    preds = predictions(model, emb, attr_table, wanted) if wanted and len(emb) else {}
    attribute = np.array([np.mean([preds[a][i] == c for a, c in want.items()]) if want else np.nan
                          for i, want in enumerate(intended)])
    flagged = np.array([bool(apply(w[:, None], TARGET_SAMPLE_RATE, gates, scores.prompts[keep[i % len(keep)]]
                                   .transcript).flags) for i, w in enumerate(waves)])
    new = {"cosine": contrast.cosines, "contrastive": contrast.scores, "attribute": attribute}
    old = {"cosine": scores.cosine[s, keep], "contrastive": scores.contrastive[s, keep],
           "attribute": scores.attribute[s, keep]}
    n = len(keep)
    out = {"reference": reference, "clips": n, "margin_sd": MARGIN_SD, "perturbations": {}, "overall": {}}
    for j, name in enumerate(names):
        part = slice(j * n, (j + 1) * n)
        out["perturbations"][name] = {"description": PERTURBATIONS[name][0],
                                      "flagged_share": float(flagged[part].mean()) if n else None,
                                      **{score: _shares(old[score], new[score][part], flagged[part], seed, n_boot,
                                                        level) for score in new}}
    for score in new:
        out["overall"][score] = _shares(np.tile(old[score], len(names)), new[score], flagged, seed, n_boot, level)
    return out
