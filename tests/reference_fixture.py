"""The reference-tiny parity fixture (../shared/fixtures/reference-tiny): where it is and how to load it."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PARASPEECHCLAP_SHARED", REPO.parent / "shared"))
FIXTURE = SHARED / "fixtures" / "reference-tiny"


def load_tiny(fixture_dir: Path = FIXTURE, checkpoint: str = "checkpoint.pth.tar", precision: str = "fp32"):
    """The reference-tiny model from one of its released-format checkpoint files, in eval mode on CPU."""
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained(fixture_dir / checkpoint, speech_model=fixture_dir / "speech",
                                          text_model=fixture_dir / "text", embedding_dim=24, device="cpu",
                                          precision=precision)
