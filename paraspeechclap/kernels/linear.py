"""Linear layers without gradients on CPU through oneDNN's matmul where it wins, with exact GELU fused into it."""
from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

LINEAR_BACKEND_ENV = "PARASPEECHCLAP_CPU_LINEAR"  # "onednn", "torch", or unset / "auto" (see onednn_linear_wins)


def _have_onednn_linear() -> bool:
    """Whether this torch build has oneDNN and its pointwise linear op."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


ONEDNN_LINEAR = _have_onednn_linear()
_ONEDNN_DTYPES: dict[torch.dtype, bool] = {}


def onednn_linear_supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN's matmul runs in ``dtype`` here, probed once: an AVX2-only CPU has no bf16 primitive."""
    if dtype not in _ONEDNN_DTYPES:
        ok = ONEDNN_LINEAR and dtype in (torch.float32, torch.bfloat16)
        if ok and dtype == torch.bfloat16:
            ok = bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
        if ok:
            try:
                with torch.no_grad():
                    x, w = torch.ones(2, 8, dtype=dtype), torch.ones(4, 8, dtype=dtype)
                    ok = torch.equal(torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], ""), F.linear(x, w))
            except RuntimeError:
                ok = False
        _ONEDNN_DTYPES[dtype] = ok
    return _ONEDNN_DTYPES[dtype]


@functools.lru_cache(maxsize=None)
def onednn_linear_wins(dtype: torch.dtype) -> bool:
    """oneDNN for no-gradient CPU linear layers: bf16 wherever it runs, fp32 where torch's kernels use AVX-512."""
    # on AVX2 torch's own fp32 kernels (MKL) were faster, GELU in place; a timed probe at load proved unstable on a
    # shared machine, so the choice follows the ISA; PARASPEECHCLAP_CPU_LINEAR=onednn|torch fixes it
    if not onednn_linear_supports(dtype):
        return False
    choice = os.environ.get(LINEAR_BACKEND_ENV, "auto").strip().lower()
    if choice in ("onednn", "torch"):
        return choice == "onednn"
    if choice not in ("", "auto"):
        raise ValueError(f"{LINEAR_BACKEND_ENV}={choice!r}: expected onednn, torch or auto")
    return dtype != torch.float32 or torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def linear(x: torch.Tensor, module: nn.Linear, gelu: bool = False) -> torch.Tensor:
    """``F.linear`` of ``module`` (then exact GELU when ``gelu``), through ``linear_weights``."""
    return linear_weights(x, module.weight, module.bias, gelu)


def linear_weights(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   gelu: bool = False) -> torch.Tensor:
    """``F.linear`` (then exact GELU); oneDNN with GELU fused without gradients on CPU where ``onednn_linear_wins``."""
    # oneDNN's op has no autograd formula: anything that may need gradients takes F.linear
    no_grad_cpu = not torch.is_grad_enabled() and x.device.type == "cpu"
    if no_grad_cpu and x.dtype == weight.dtype and onednn_linear_wins(x.dtype):
        if gelu:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    out = F.linear(x, weight, bias)
    if not gelu:
        return out
    return torch.ops.aten.gelu_(out) if no_grad_cpu else F.gelu(out)  # in place: one allocation fewer


def linear_forward(self, x: torch.Tensor) -> torch.Tensor:
    """Drop-in for ``nn.Linear.forward`` (see ``linear_weights``)."""
    return linear(x, self)


def feed_forward_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """Drop-in for WavLM's/wav2vec2's ``FeedForward.forward`` with exact GELU fused into the first matmul."""
    hidden = self.intermediate_dropout(linear(hidden_states, self.intermediate_dense, gelu=True))
    return self.output_dropout(self.output_dense(hidden))


def exact_gelu(activation) -> bool:
    """Whether ``activation`` is exact (erf) GELU, the one oneDNN fuses and ``aten.gelu_`` computes."""
    return activation is F.gelu or (getattr(activation, "act", None) is F.gelu) or (
        isinstance(activation, nn.GELU) and activation.approximate == "none")


def fits_linear(module: nn.Module) -> bool:
    """A plain ``nn.Linear`` where this torch has oneDNN's linear op."""
    return ONEDNN_LINEAR and type(module) is nn.Linear


def fits_feed_forward(module: nn.Module) -> bool:
    """A WavLM/wav2vec2 feed-forward block with exact GELU, where this torch has oneDNN's linear op."""
    return (ONEDNN_LINEAR and type(module).__name__.endswith("FeedForward")
            and isinstance(getattr(module, "intermediate_dense", None), nn.Linear)
            and exact_gelu(getattr(module, "intermediate_act_fn", None)))
