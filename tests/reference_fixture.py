"""The reference-tiny parity fixture (tests/fixtures/reference-tiny, a copy of the shared one): where it is and how to
load it."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(os.environ.get("PARASPEECHCLAP_FIXTURE") or REPO / "tests" / "fixtures" / "reference-tiny")


def load_tiny(fixture_dir: Path = FIXTURE, checkpoint: str = "checkpoint.pth.tar", precision: str = "fp32"):
    """The reference-tiny model from one of its released-format checkpoint files, in eval mode on CPU."""
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained(fixture_dir / checkpoint, speech_model=fixture_dir / "speech",
                                          text_model=fixture_dir / "text", embedding_dim=24, device="cpu",
                                          precision=precision)
