"""Writing an exported folder: the graphs, the tokenizer, the manifest, a parity check, atomically.

The folder is filled under a temporary name beside the target (:func:`paraspeechclap.fileio.atomic_dir`) and renamed
into place only after the exported graphs, run by the torch-free runtime, agreed with the torch engine's fp32
answers on probe clips and captions within the fp32 tolerance; the quantised variants' agreement is measured and
recorded beside their stated tolerance. The manifest is the command's ownership record: an existing target is
replaced only when it is an export this command wrote and every file in it is still what it wrote.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_dir, atomic_write_json, file_digest, read_record
from ..runtime.manifest import (FORMAT, FORMAT_VERSION, MANIFEST_NAME, TOKENIZER_DIR, WRITTEN_BY, ExportFormatError,
                                read_manifest)
from . import graphs as G
from .describe import audio_section, model_section, text_section
from .probes import agreement, probe_clips, probe_texts

log = logging.getLogger(__name__)

# variant -> what it is, per backend (fp32 always)
VARIANTS = {"onnx": ("fp32", "int8"), "openvino": ("fp32", "bf16")}
# the stated tolerance of each variant against the torch engine's fp32 embeddings (clips and captions); fp32 is
# enforced (the export fails), the others are measured and recorded, with a warning where they miss
TOLERANCES = {
    "fp32": {"max_abs_diff": 1e-4, "centred_min_cos": 0.9999, "nn_preserved": True},
    "bf16": {"centred_min_cos": 0.99, "nn_preserved": True},
    "int8": {"centred_min_cos": 0.99, "nn_preserved": True},
}


def _owned_export(folder: Path) -> bool:
    """Whether ``folder`` is an export this command wrote with every file still as written (nothing else in it)."""
    record = read_record(folder / MANIFEST_NAME, WRITTEN_BY, key="outputs")
    if record is None or folder.is_symlink():
        return False
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}
    from ..fileio import owns

    return present <= set(record) and all(owns(folder, rel, record) for rel in present)


def check_target(out: Path) -> bool:
    """True when ``out`` exists and may be replaced; raises :class:`FileExistsError` for a folder or file this
    command did not write (or that was changed since)."""
    if not (out.exists() or out.is_symlink()):
        return False
    if out.is_dir() and _owned_export(out):
        return True
    raise FileExistsError(f"{out} exists and is not an export written by `paraspeechclap export` (or its files were "
                          f"changed since); refusing to replace it. Choose a new --out or remove it yourself.")


def _write_graphs(model, tmp: Path, backend: str, variants: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """The graphs into ``tmp`` (OpenVINO: each converted as soon as it is traced); returns {graph: {precision:
    relative file}}."""
    work = tmp / ".onnx" if backend == "openvino" else tmp
    work.mkdir(exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    speech_tower = lambda model, path: G.export_speech_tower(model, path, lower_fft=backend == "openvino")  # noqa: E731
    for graph, export in (("speech_tower", speech_tower), ("speech_projection", G.export_projection),
                          ("text", G.export_text)):
        path = export(model, work / f"{graph}.onnx")
        files[graph] = {"fp32": (G.to_openvino(path, tmp / f"{graph}.xml") if backend == "openvino" else path).name}
    if backend == "onnx" and "int8" in variants:
        files["speech_tower"]["int8"] = G.quantize_int8(tmp / "speech_tower.onnx", tmp / "speech_tower.int8.onnx").name
    if backend == "openvino":
        shutil.rmtree(work)  # the intermediate ONNX graphs (written here, in this command's own temporary folder)
        if "bf16" in variants:  # the same IR compiled in bf16; text and projection stay fp32
            files["speech_tower"]["bf16"] = files["speech_tower"]["fp32"]
    return files


def _check(tmp: Path, variants: tuple[str, ...], reference: dict[str, np.ndarray]) -> dict[str, dict]:
    """Each variant through the runtime against the torch fp32 embeddings; fp32 out of tolerance raises."""
    from ..runtime import load

    checks = {}
    for variant in variants:
        exported = load(tmp, precision=variant)
        audio = exported.embed_audio([(clip, exported.config.sampling_rate) for clip in probe_clips()])
        text = exported.embed_text(probe_texts())
        measured = {"ran_in": exported.precision, "audio": agreement(reference["audio"], audio),
                    "text": agreement(reference["text"], text), "tolerance": TOLERANCES[variant]}
        misses = [f"{kind} {key} {measured[kind][key]} (stated {bound})" for kind in ("audio", "text")
                  for key, bound in TOLERANCES[variant].items()
                  if (measured[kind][key] > bound if key == "max_abs_diff" else measured[kind][key] < bound)]
        measured["within_tolerance"] = not misses
        if misses and variant == "fp32":
            raise G.ExportError(f"the exported fp32 graphs disagree with the torch model: {'; '.join(misses)}")
        if misses:
            log.warning("variant %s (ran in %s) misses its stated tolerance: %s", variant, exported.precision,
                        "; ".join(misses))
        checks[variant] = measured
    return checks


def export_model(model, out: str | Path, backend: str = "onnx", variants: tuple[str, ...] | None = None,
                 source: dict[str, Any] | None = None) -> Path:
    """Export ``model`` (a :class:`paraspeechclap.ParaSpeechCLAP` in fp32 on CPU) to the folder ``out`` for
    ``backend`` (``onnx`` or ``openvino``) with ``variants`` (default: all the backend has); returns ``out``.
    ``source``: what to record about where the weights came from (name, revision, ...)."""
    if backend not in VARIANTS:
        raise ValueError(f"format must be one of {sorted(VARIANTS)}, got {backend!r}")
    variants = tuple(dict.fromkeys(("fp32", *(variants or VARIANTS[backend]))))
    unknown = [v for v in variants if v not in VARIANTS[backend]]
    if unknown:
        raise ValueError(f"{backend} exports have the variants {VARIANTS[backend]}, not {unknown}")
    if model.precision != "fp32" or str(model.device) != "cpu":
        raise ValueError(f"export a model prepared in fp32 on CPU, got {model.precision} on {model.device}")
    out = Path(out)
    replace = check_target(out)
    clips, texts = probe_clips(), probe_texts()
    reference = {"audio": model.embed_audio([(c, model.sampling_rate) for c in clips]), "text": model.embed_text(texts)}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "written_by": WRITTEN_BY, "backend": backend,
                "model": model_section(model, source), "audio": audio_section(model), "text": text_section(model)}
    from ..kernels.switch import use_fast_paths, use_stock_paths

    use_stock_paths(model)  # the reference forwards trace; the fast ones call oneDNN and per-thread scratch
    try:
        with atomic_dir(out, durable=True, replace=replace) as tmp:
            manifest["graphs"] = _write_graphs(model, tmp, backend, variants)
            _save_tokenizer(model, tmp / TOKENIZER_DIR)
            atomic_write_json(tmp / MANIFEST_NAME, manifest)
            manifest["checks"] = _check(tmp, variants, reference)
            manifest["outputs"] = {p.relative_to(tmp).as_posix(): file_digest(p) for p in sorted(tmp.rglob("*"))
                                   if p.is_file() and p.name != MANIFEST_NAME}
            atomic_write_json(tmp / MANIFEST_NAME, manifest)  # last: a folder holding it is complete
            read_manifest(tmp)
    finally:
        use_fast_paths(model.audio_branch.base)
        use_fast_paths(model.text_branch.base)
    return out


def _save_tokenizer(model, folder: Path) -> None:
    """The text tower's tokenizer files; the runtime reads ``tokenizer.json`` with the ``tokenizers`` library."""
    if model.tokenizer is None or not getattr(model.tokenizer, "is_fast", False):
        raise G.ExportError("the model's tokenizer is not a fast (tokenizers-backed) tokenizer; the runtime reads "
                            "tokenizer.json only")
    model.tokenizer.save_pretrained(str(folder))
    if not (folder / "tokenizer.json").is_file():
        raise ExportFormatError(f"the tokenizer wrote no tokenizer.json into {folder}")


def summary(folder: Path) -> str:
    """One line per variant: where it ran and how close it came to torch fp32."""
    doc = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    lines = []
    for variant, check in doc.get("checks", {}).items():
        a, t = check["audio"], check["text"]
        lines.append(f"{variant} (ran in {check['ran_in']}): audio max|diff| {a['max_abs_diff']:.2e}, centred min cos "
                     f"{a['centred_min_cos']:.6f}, NN {a['nn_kept']}/{len(probe_clips())}; text max|diff| "
                     f"{t['max_abs_diff']:.2e}, centred min cos {t['centred_min_cos']:.6f}"
                     + ("" if check["within_tolerance"] else "  [outside its stated tolerance]"))
    return "\n".join(lines)
