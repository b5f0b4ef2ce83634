"""Offline labelled speaking-style corpus: generation (espeak-ng / mbrola) and label verification.

    from paraspeechclap.synth import generate_corpus, verify_corpus
    generate_corpus("data/synth", num_clips=10000, seed=0)

Heavy imports (parselmouth, scipy, soxr) happen inside the functions.
"""

from __future__ import annotations


def generate_corpus(*args, **kwargs):
    """See `paraspeechclap.synth.generate.generate_corpus`."""
    from .generate import generate_corpus as _g
    return _g(*args, **kwargs)


def verify_corpus(*args, **kwargs):
    """See `paraspeechclap.synth.verify.verify_corpus`."""
    from .verify import verify_corpus as _v
    return _v(*args, **kwargs)


__all__ = ["generate_corpus", "verify_corpus"]
