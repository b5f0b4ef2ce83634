"""The three graphs of an export, traced from a torch model, and their variants.

``speech_tower``: waveform batch and its sample mask -> the masked mean of the tower's frames (in the graph) and the
frame counts, dynamic in batch and length; ``speech_projection``: pooled states -> L2-normalised embeddings (the
engine averages a long clip's windows by frame count between the two, as it does in torch); ``text``: token ids and
mask -> tower, first-token (or mean) pooling, projection, L2 norm, dynamic in batch and length.

Traced with ``torch.onnx.export(dynamo=True)`` from the reference forwards (``kernels.switch.use_stock_paths``: this
project's fast forwards call oneDNN and keep per-thread scratch, which a graph has no use for). OpenVINO IR is converted from
the ONNX graph, traced with the STFT and inverse FFTs of mini's log-mel front end as DFT matrix products (OpenVINO
2026.4 converts neither ONNX's STFT with a dynamic length nor its DFT). Variants: ONNX Runtime dynamic int8
quantization of the speech tower's matrix products (as the torch engine's int8 quantizes only the speech tower);
OpenVINO bf16 is the same IR compiled with bf16 inference precision.
"""
from __future__ import annotations

import contextlib
import logging
import math
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime.manifest import PROJECTION_INPUTS, PROJECTION_OUTPUTS, SPEECH_INPUTS, SPEECH_OUTPUTS, TEXT_OUTPUTS

log = logging.getLogger(__name__)
OPSET = 18


class SpeechGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.branch = model.audio_branch

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor):
        return self.branch.pool(input_values, attention_mask)


class ProjectionGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.projection = model.audio_projection

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(pooled), dim=-1)


TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # in this order; token_type_ids where the tower takes it


class TextGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.branch, self.projection = model.text_branch, model.text_projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        tokens = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            tokens["token_type_ids"] = token_type_ids
        return F.normalize(self.projection(self.branch(tokens).float()), dim=-1)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]]) -> Path:
    """One graph to ONNX with the named dynamic axes (weights inline up to protobuf's 2 GB, else beside it)."""
    dims: dict[str, torch.export.Dim] = {}
    shapes = tuple({axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in dynamic.get(i, {}).items()}
                   for i in inputs)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), dynamic_shapes=shapes, input_names=inputs, output_names=outputs,
                          opset_version=OPSET, dynamo=True, external_data=_weights_bytes(module) > 1.8e9,
                          verbose=False)
    return path


def _weights_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _dft_basis(n: int, bins: int, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables of the real DFT (``[bins, n]``), or of the inverse real DFT of a real spectrum
    (``[n, bins]``, with the 1/n and the doubled middle bins folded in), computed in float64."""
    k = torch.arange(bins, dtype=torch.float64)
    t = torch.arange(n, dtype=torch.float64)
    angle = 2 * math.pi * (t[:, None] * k[None, :] if inverse else k[:, None] * t[None, :]) / n
    if not inverse:
        return torch.cos(angle), torch.sin(angle)
    weight = torch.full((bins,), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if n % 2 == 0 and bins == n // 2 + 1:
        weight[-1] = 1.0
    return torch.cos(angle) * weight / n, torch.sin(angle)


def _stft_as_matmul(x, n_fft, hop_length=None, win_length=None, window=None, center=False, return_complex=True, **_):
    """``torch.stft(center=False)`` as framing and two matrix products; ``.real`` and ``.imag`` as the complex
    result has them (all the log-mel front end reads)."""
    if center:
        raise ExportError("only center=False STFTs are lowered to matrix products")
    cos, sin = _dft_basis(n_fft, n_fft // 2 + 1, inverse=False)
    if window is not None:
        pad = (n_fft - window.shape[-1]) // 2
        window = F.pad(window.double(), (pad, n_fft - window.shape[-1] - pad))
        cos, sin = cos * window, sin * window
    frames = x.unfold(-1, n_fft, hop_length or n_fft // 4)  # [B, frames, n_fft]
    return types.SimpleNamespace(real=(frames @ cos.T.to(x.dtype)).transpose(1, 2),
                                 imag=-(frames @ sin.T.to(x.dtype)).transpose(1, 2))


def _irfft_as_matmul(x, n=None, dim=-1, norm=None, **_):
    """``torch.fft.irfft`` of a real spectrum (zero imaginary part) as one matrix product."""
    if torch.is_complex(x) or norm not in (None, "backward"):
        raise ExportError("only inverse FFTs of real spectra (norm='backward') are lowered to matrix products")
    bins = x.shape[dim]
    cos, _ = _dft_basis(n or 2 * (bins - 1), bins, inverse=True)
    return (x.movedim(dim, -1) @ cos.T.to(x.dtype)).movedim(-1, dim)


@contextlib.contextmanager
def dft_as_matmul():
    """While tracing: ``torch.stft`` and ``torch.fft.irfft`` as matrix products with DFT tables, for runtimes that
    convert neither ONNX's STFT with a dynamic length nor its inverse DFT (OpenVINO 2026.4). Same maths, summed in a
    different order; the export's parity check holds the result to the fp32 tolerance."""
    stft, irfft = torch.stft, torch.fft.irfft
    torch.stft, torch.fft.irfft = _stft_as_matmul, _irfft_as_matmul
    try:
        yield
    finally:
        torch.stft, torch.fft.irfft = stft, irfft


def export_speech_tower(model, path: Path, lower_fft: bool = False) -> Path:
    """``lower_fft``: STFT and inverse FFTs as matrix products (:func:`dft_as_matmul`; the log-mel tower of mini)."""
    # two rows of different lengths: batch and length stay symbolic, and the masked mean is traced with a real mask
    values = torch.randn(2, 24000)
    mask = torch.ones(2, 24000, dtype=torch.int64)
    mask[1, 17000:] = 0
    with dft_as_matmul() if lower_fft else contextlib.nullcontext():
        return _export(SpeechGraph(model), (values, mask), path, list(SPEECH_INPUTS), list(SPEECH_OUTPUTS),
                       {"input_values": {0: "batch", 1: "samples"}, "attention_mask": {0: "batch", 1: "samples"}})


def export_projection(model, path: Path) -> Path:
    pooled = torch.randn(3, model.audio_branch.hidden_size)
    return _export(ProjectionGraph(model), (pooled,), path, list(PROJECTION_INPUTS), list(PROJECTION_OUTPUTS),
                   {"pooled": {0: "rows"}})


def text_inputs(model) -> list[str]:
    """The token tensors the model's tokenizer gives its text tower, in the graph's order."""
    given = model.tokenize(["a"])
    return [name for name in TEXT_INPUTS if name in given]


def export_text(model, path: Path) -> Path:
    inputs = text_inputs(model)
    tokens = model.tokenize(["a calm voice speaks", "a person is speaking in a deep, slow and breathy style"])
    args = tuple(tokens[name].cpu() for name in inputs)
    return _export(TextGraph(model), args, path, inputs, list(TEXT_OUTPUTS),
                   {name: {0: "batch", 1: "tokens"} for name in inputs})


def quantize_int8(source: Path, target: Path) -> Path:
    """ONNX Runtime dynamic int8 quantization of the graph's matrix products (weights int8, activations quantized
    per call), the counterpart of torch's ``quantize_dynamic`` in the engine's int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    return target


def to_openvino(source: Path, target: Path) -> Path:
    """OpenVINO IR (``.xml`` + ``.bin``, fp32 weights) converted from an ONNX graph."""
    import openvino as ov

    try:
        converted = ov.convert_model(str(source))
    except Exception as err:  # noqa: BLE001 - OpenVINO's converter raises its own types; name the graph
        raise ExportError(f"OpenVINO {ov.__version__} cannot convert {source.stem}: {str(err).strip()[-600:]}") from None
    ov.save_model(converted, str(target), compress_to_fp16=False)
    return target


class ExportError(RuntimeError):
    """An export that cannot be written as asked; the message says why."""
