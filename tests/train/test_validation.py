"""Validation during training: R@1 is ``evaluate``'s R@1."""
import torch

from paraspeechclap.evaluate import metrics as M
from paraspeechclap.train.validation import retrieval_r1


def test_validation_r1_is_evaluate_r1_with_ties():
    """Validation R@1 and `evaluate` agree, including ties (a tie counts against the correct item)."""
    g = torch.Generator().manual_seed(0)
    audio = torch.nn.functional.normalize(torch.randn(8, 6, generator=g), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(8, 6, generator=g), dim=-1)
    caps = [f"c{i % 5}" for i in range(8)]  # repeated captions
    audio[1] = audio[0]  # identical clips: ties in text-to-audio
    text[2] = text[3] = text[4]  # identical captions embeddings for distinct strings: ties in audio-to-text
    got = retrieval_r1(audio, text, caps)
    unique, targets = M.deduplicate_captions(caps)
    first = [caps.index(u) for u in unique]
    sim = (audio.double() @ text[first].double().t()).numpy()
    want = M.retrieval_metrics(sim, targets)
    assert got == {"R@1_A2T": want["R@1_A2T"], "R@1_T2A": want["R@1_T2A"]}
    # one clip per caption, all equal: every query is a tie, and a tie is a miss
    same = torch.ones(3, 4) / 2
    assert retrieval_r1(same, same, ["a", "b", "c"]) == {"R@1_A2T": 0.0, "R@1_T2A": 0.0}
