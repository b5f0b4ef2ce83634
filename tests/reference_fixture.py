"""The reference-tiny parity fixture (../shared/fixtures/reference-tiny): where it is and how to load it."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``$PARASPEECHCLAP_SHARED``, else the ``shared/`` beside this checkout, else (for a ``git clone`` of a local
    checkout, e.g. into a temporary folder) the ``shared/`` beside the checkout it was cloned from."""
    if os.environ.get("PARASPEECHCLAP_SHARED"):
        return Path(os.environ["PARASPEECHCLAP_SHARED"])
    beside = REPO.parent / "shared"
    if beside.is_dir():
        return beside
    origin = subprocess.run(["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
                            capture_output=True, text=True).stdout.strip()
    if origin and Path(origin).is_dir() and (Path(origin).resolve().parent / "shared").is_dir():
        return Path(origin).resolve().parent / "shared"
    return beside


SHARED = shared_dir()
FIXTURE = SHARED / "fixtures" / "reference-tiny"


def load_tiny(fixture_dir: Path = FIXTURE, checkpoint: str = "checkpoint.pth.tar", precision: str = "fp32"):
    """The reference-tiny model from one of its released-format checkpoint files, in eval mode on CPU."""
    from paraspeechclap import ParaSpeechCLAP

    return ParaSpeechCLAP.from_pretrained(fixture_dir / checkpoint, speech_model=fixture_dir / "speech",
                                          text_model=fixture_dir / "text", embedding_dim=24, device="cpu",
                                          precision=precision)
