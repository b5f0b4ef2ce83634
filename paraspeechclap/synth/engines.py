"""Speech engines: espeak-ng (its variants, plus derived whisper/creaky variants) and mbrola voices.

espeak-ng runs as a subprocess writing WAV to stdout. Whispered and creaky versions of every timbre
are made as extra variant files in a private copy of the espeak-ng data folder (pointed to with
ESPEAK_DATA_PATH), so voice quality is independent of the timbre.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from ..fileio import atomic_write_text

ESPEAK = "espeak-ng"
WHISPER_LINES = ["voicing 17", "breath 75 75 50 40 15 10", "breathw 150 150 200 200 400 400"]
CREAKY_LINES = ["flutter 50", "roughness 10"]
MBROLA_VOICE_FILES = ("mb-us1", "mb-us2", "mb-us3", "mb-en1")
_DROP_FOR_WHISPER = ("name", "voicing", "breath", "breathw", "flutter", "roughness", "klatt")
_DROP_FOR_CREAKY = ("name", "flutter", "roughness")


class EngineError(RuntimeError):
    """A synthesizer is missing or failed."""


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def espeak_data_dir() -> Path | None:
    """The system espeak-ng data folder (the one holding `phontab`)."""
    try:
        out = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if "Data at:" in out:
        p = Path(out.split("Data at:")[1].strip())
        if (p / "phontab").exists():
            return p
    for cand in ("/usr/lib/x86_64-linux-gnu/espeak-ng-data", "/usr/share/espeak-ng-data",
                 "/usr/lib/aarch64-linux-gnu/espeak-ng-data"):
        if (Path(cand) / "phontab").exists():
            return Path(cand)
    return None


def mbrola_available() -> bool:
    """True when the mbrola binary and the us1/us2/us3/en1 voices are installed."""
    if shutil.which("mbrola") is None:
        return False
    return all(Path(f"/usr/share/mbrola/{v}/{v}").exists() for v in ("us1", "us2", "us3", "en1"))


def variant_name(timbre: str, quality: str) -> str:
    return {"normal": timbre, "whispered": f"psc_w_{timbre}", "creaky": f"psc_c_{timbre}"}[quality]


def prepare_espeak_data(root: Path, timbres: list[str]) -> Path:
    """Copy espeak-ng's data under `root/espeak-ng-data` and add whisper/creaky variants of `timbres`.

    Returns the value for ESPEAK_DATA_PATH (the folder *containing* espeak-ng-data).
    """
    src = espeak_data_dir()
    if src is None:
        raise EngineError("espeak-ng data folder not found; install espeak-ng (scripts/install_synth_deps.sh)")
    dst = Path(root) / "espeak-ng-data"
    marker = dst / ".paraspeechclap-copy"  # files are pruned below: only ever in a copy made here
    if not os.path.lexists(dst):
        shutil.copytree(src, dst)
        atomic_write_text(marker, "a copy of espeak-ng-data made by paraspeechclap.synth.engines.prepare_espeak_data\n")
    elif not marker.is_file():
        raise EngineError(f"{dst}: exists and is not a copy made by prepare_espeak_data; it is never modified: "
                          "pass a fresh folder")
    vdir = dst / "voices" / "!v"
    # espeak-ng lists at most 349 voices (N_VOICES_LIST) and crashes beyond: drop the unused variants
    # so that the derived ones fit.
    keep = set(timbres) | {variant_name(t, q) for t in timbres for q in ("whispered", "creaky")}
    for f in vdir.iterdir():
        if f.is_file() and f.name not in keep:
            f.unlink()
    mbdir = dst / "voices" / "mb"
    if mbdir.is_dir():
        for f in mbdir.iterdir():
            if f.is_file() and f.name not in MBROLA_VOICE_FILES:
                f.unlink()
    for timbre in timbres:
        base = (vdir / timbre).read_text(errors="replace").splitlines()
        for quality, drop, extra in (("whispered", _DROP_FOR_WHISPER, WHISPER_LINES),
                                     ("creaky", _DROP_FOR_CREAKY, CREAKY_LINES)):
            lines = [ln for ln in base if not ln.strip().lower().startswith(drop)]
            name = variant_name(timbre, quality)
            atomic_write_text(vdir / name, "\n".join(lines + [f"name {name}"] + extra) + "\n")
    return Path(root)


def build_ssml(body: str, range_ssml: str | None) -> str:
    """Wrap an SSML body (already escaped text with <break/> tags) in <speak> and an optional range."""
    if range_ssml:
        body = f'<prosody range="{range_ssml}">{body}</prosody>'
    return f"<speak>{body}</speak>"


def text_to_ssml(text: str) -> str:
    return escape(text)


def synthesize(engine: str, voice: str, ssml: str, pitch: int, wpm: int,
               data_path: str | os.PathLike | None = None, timeout: float = 60.0) -> tuple[np.ndarray, int]:
    """Run espeak-ng (engine "espeak": voice is "accent+variant"; "mbrola": voice is e.g. "mb-us1").

    Returns (float32 mono waveform, sample rate). Raises EngineError on failure or empty output.
    """
    import soundfile as sf

    cmd = [ESPEAK, "-m", "-v", voice, "-p", str(int(np.clip(pitch, 0, 99))), "-s", str(int(wpm)),
           "--stdout", ssml]
    env = dict(os.environ)
    if data_path is not None:
        env["ESPEAK_DATA_PATH"] = str(data_path)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EngineError(f"{engine} voice {voice}: {exc}") from exc
    if proc.returncode != 0 or len(proc.stdout) < 1000:
        raise EngineError(f"{engine} voice {voice} failed (rc={proc.returncode}): "
                          f"{proc.stderr.decode(errors='replace').strip()[:200]}")
    data = proc.stdout
    # espeak-ng writes a streaming WAV header with size fields 0x7fffffff; fix them for libsndfile.
    if data[:4] == b"RIFF":
        data = bytearray(data)
        data[4:8] = (len(data) - 8).to_bytes(4, "little")
        idx = data.find(b"data", 12)
        if idx > 0:
            data[idx + 4:idx + 8] = (len(data) - idx - 8).to_bytes(4, "little")
        data = bytes(data)
    try:
        y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types
        raise EngineError(f"{engine} voice {voice}: unreadable audio ({exc})") from exc
    if y.ndim > 1:
        y = y.mean(axis=1)
    if y.size == 0 or not np.any(y):
        raise EngineError(f"{engine} voice {voice}: silent output")
    return y.astype(np.float32), int(sr)
