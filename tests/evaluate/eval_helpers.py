"""Evaluation-test helpers: synthetic WAVs, manifests and a tiny stand-in model with the core API."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import numpy as np

SR = 16000

# style word -> tone frequency (Hz); the stand-in model "hears" the nearest one
TONES: Dict[str, float] = {"deep": 150.0, "nasal": 450.0, "shrill": 1500.0, "calm": 700.0, "angry": 2500.0}


def write_tone(path: Path, freq: float, seconds: float = 0.4, noise: float = 0.0, seed: int = 0) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * freq * t)
    if noise:
        wave = wave + noise * np.random.default_rng(seed).standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave.astype(np.float32), SR, subtype="FLOAT")
    return path


class ToneModel:
    """Stand-in for ParaSpeechCLAP: a clip embeds as the one-hot of its nearest style tone, a text as the one-hot
    of the first style word it contains (or a fixed mixed vector). Counts what it embeds."""

    words: List[str] = list(TONES)

    def __init__(self, min_samples: int = 0):
        self.min_samples = min_samples
        self.clips_embedded = 0
        self.texts_embedded = 0
        self.calls: List[int] = []

    def identity(self) -> str:
        return "tone-model-v1"

    def _onehot(self, index: int) -> np.ndarray:
        vector = np.full(len(self.words), 0.05, dtype=np.float32)
        vector[index] = 1.0
        return vector / np.linalg.norm(vector)

    def embed_audio(self, audio, batch_size: int = 8) -> np.ndarray:
        self.calls.append(len(audio))
        rows = []
        for wave, rate in audio:
            assert rate == SR
            if wave.size < self.min_samples:
                raise ValueError(f"clip of {wave.size} samples is shorter than the receptive field")
            spectrum = np.abs(np.fft.rfft(wave))
            peak = np.fft.rfftfreq(wave.size, 1 / SR)[int(np.argmax(spectrum))]
            rows.append(self._onehot(int(np.argmin([abs(peak - f) for f in TONES.values()]))))
        self.clips_embedded += len(rows)
        return np.stack(rows)

    def embed_text(self, texts) -> np.ndarray:
        self.texts_embedded += len(texts)
        rows = []
        for text in texts:
            hits = [i for i, w in enumerate(self.words) if w in text]
            rows.append(self._onehot(hits[0]) if hits else np.full(len(self.words), len(self.words) ** -0.5,
                                                                    dtype=np.float32))
        return np.stack(rows)


def write_manifest(path: Path, rows: List[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def make_tone_set(tmp_path: Path) -> dict:
    """Audio root with 6 tone clips under source `synth`, and a JSONL manifest in the eval schema.

    Clip 5 is labelled `deep` but sounds `nasal` (one classification error); clips 0 and 3 share a caption.
    """
    root = tmp_path / "audio"
    spec = [("deep", "A person speaks in a deep voice.", "deep"),
            ("shrill", "A shrill, high voice.", "shrill"),
            ("nasal", "Someone with a nasal tone.", "nasal"),
            ("deep", "A person speaks in a deep voice.", "deep"),
            ("shrill", ["A very shrill voice.", "ignored second caption"], "shrill"),
            ("nasal", "A deep and quiet voice.", "deep")]
    rows = []
    for i, (tone, caption, label) in enumerate(spec):
        write_tone(root / "synth" / f"clip{i}.wav", TONES[tone], seconds=0.3 + 0.05 * i)
        rows.append({"id": f"utt{i}", "source": "synth", "relative_audio_path": f"clip{i}.wav",
                     "text_description": caption, "classification_tag": label})
    manifest = write_manifest(tmp_path / "set.jsonl", rows)
    return {"root": root, "manifest": manifest, "rows": rows}


def make_eval_datasets(tmp_path: Path) -> dict:
    """`save_to_disk` copies of the three paper eval sets, tiny, in the hub schema, with tone clips.

    Returns {"data_dir", "root"}; the folders are named like the hub repos (paraspeechclap-eval-*).
    """
    import datasets

    from paraspeechclap.evaluate.suites import INTRINSIC_ATTRIBUTES

    root = tmp_path / "audio"
    data_dir = tmp_path / "eval-data"
    counter = iter(range(10_000))

    def rows(specs):
        out = {"source": [], "relative_audio_path": [], "text_description": [], "classification_tag": [],
               "duration": []}
        for tone, caption, label in specs:
            name = f"c{next(counter)}.wav"
            write_tone(root / "vox" / name, TONES[tone], seconds=0.3)
            out["source"].append("vox")
            out["relative_audio_path"].append(name)
            out["text_description"].append(caption)
            out["classification_tag"].append(label)
            out["duration"].append(0.3)
        return datasets.Dataset.from_dict(out)

    intrinsic = {"test": rows([("deep", "A deep voice.", "deep"), ("shrill", "A shrill voice.", "shrill"),
                               ("nasal", "A nasal voice.", "nasal"), ("deep", "A deep voice.", "deep")])}
    for attribute, classes in INTRINSIC_ATTRIBUTES.items():
        tones = ["deep", "shrill", "nasal"]
        intrinsic[f"classification_{attribute}"] = rows(
            [(tones[i % 3], f"caption {i}", classes[i % len(classes)]) for i in range(3)])
    datasets.DatasetDict(intrinsic).save_to_disk(str(data_dir / "paraspeechclap-eval-intrinsic"))
    datasets.DatasetDict({"test": rows([("angry", "An angry shout.", "angry"), ("calm", "A calm voice.", "calm"),
                                        ("calm", "A calm voice.", "calm")])}).save_to_disk(
        str(data_dir / "paraspeechclap-eval-situational"))
    datasets.DatasetDict({"test": rows([("angry", "A deep and angry voice.", "angry"),
                                        ("calm", "A calm, nasal voice.", "calm")])}).save_to_disk(
        str(data_dir / "paraspeechclap-eval-combined"))
    return {"data_dir": data_dir, "root": root}
