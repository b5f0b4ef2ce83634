"""Faster inference paths that keep the answers: SDPA attention for WavLM, int8 dynamic quantization."""
from __future__ import annotations

import ctypes
import functools
import math
import os
import sys
import threading
import types

import torch
import torch.nn.functional as F
from torch import nn


def _wavlm_sdpa_attention_forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                                  position_bias: torch.Tensor | None = None, index: int = 0, **kwargs):
    """Drop-in for ``WavLMAttention.forward`` with fused scaled-dot-product attention and one bias copy.

    Same maths as the stock module: q/k/v projections, the per-head relative position bias scaled by the
    gru-style gate of each query frame, key padding mask. The stock version repeats the position bias for every
    batch row, copies it again to mask padding, and calls ``F.multi_head_attention_forward(need_weights=True)``,
    which materialises and averages the attention weights. Here the bias is built once per forward and shared by all
    rows and layers, gated into a single ``[B, heads, T, T]`` tensor that is masked in place, and handed to SDPA.

    In bf16 on CPU without gradients the keys (and values and key mask) are taken in reverse frame order: the bias
    then depends on ``i + j'`` instead of ``j - i``, so it is a strided view of its 2T-1 values (``flipped_bias``)
    and gating it reads a few kilobytes instead of a ``T x T`` tensor. Without gradients the gated bias is written
    into a per-thread scratch tensor that every layer reuses (a fresh tensor of that size costs more in page faults
    than the multiplication itself).
    Attention does not depend on the order of the keys, so only the summation order changes; fp32 keeps the keys
    in order all the same, as it is the path held within 1e-5 of the authors' outputs (reordered sums moved the
    fixture model's embeddings by ~5e-5).
    """
    batch, length, _ = hidden_states.shape
    heads, head_dim = self.num_heads, self.head_dim
    if position_bias is None:
        position_bias = _relative_position_bias(self, length)
    shared = position_bias  # handed on to the next layer as it came (a view keeps its _keys_flipped mark)
    flipped = getattr(position_bias, "_keys_flipped", False)
    position_bias = position_bias.view(-1, heads, length, length)  # also accepts the stock [B * heads, T, T]

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(batch, length, heads, head_dim).transpose(1, 2)

    # the gate's linear layer acts per (frame, head): apply it on the contiguous [B, T, heads, head_dim] view and
    # transpose the small result, rather than copying the transposed hidden states
    projected = self.gru_rel_pos_linear(hidden_states.view(batch, length, heads, head_dim))
    projected = projected.view(batch, length, heads, 2, 4).sum(-1).transpose(1, 2)  # [B, heads, T, 2]
    gate_a, gate_b = torch.sigmoid(projected).chunk(2, dim=-1)
    gate = gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0  # [B, heads, T, 1]
    query = split(self.q_proj(hidden_states))
    key = split(self.k_proj(hidden_states))
    value = split(self.v_proj(hidden_states))
    if flipped:
        key, value = key.flip(2), value.flip(2)
        attention_mask = None if attention_mask is None else attention_mask.flip(-1)
    if _unfused_wins(query, self.training):
        output = _bf16_cpu_attention(query, key, value, gate, position_bias, attention_mask)
    else:
        bias = _gated_bias(gate, position_bias, query.dtype)  # [B, heads, T, T], the only full-size tensor
        if attention_mask is not None:
            bias.masked_fill_(attention_mask.ne(1)[:, None, None, :], float("-inf"))
        output = F.scaled_dot_product_attention(query, key, value, attn_mask=bias,
                                                dropout_p=self.dropout if self.training else 0.0)
    output = output.transpose(1, 2).reshape(batch, length, heads * head_dim)
    return self.out_proj(output), None, shared


_SCRATCH = threading.local()


def _scratch(slot: str, shape: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised ``shape`` tensor backed by this thread's scratch storage ``slot``, which grows (never
    shrinks) and is reused by every later call until ``release_scratch``. Large tensors made afresh for each layer
    cost more in page faults than the arithmetic on them (a 25 MB block: ~5 ms fresh against ~1 ms reused on the
    Zen 3). A caller must be done with a slot's previous tensor before it asks for the slot again."""
    numel = math.prod(shape)
    key = (dtype, torch.device(device), torch.is_inference_mode_enabled())  # inference tensors stay in that mode
    held = getattr(_SCRATCH, slot, None)
    if held is None or held[0] != key or held[1].numel() < numel:
        setattr(_SCRATCH, slot, None)  # let the smaller one go first
        held = (key, torch.empty(numel, dtype=dtype, device=device))
        setattr(_SCRATCH, slot, held)
    return held[1][:numel].view(shape)


def _gated_bias(gate: torch.Tensor, position_bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``gate * position_bias`` in ``dtype``; without gradients into this thread's scratch tensor, which the next
    layer (and the next window of the same size) overwrites, until ``release_scratch``."""
    if torch.is_grad_enabled():
        return (gate * position_bias).to(dtype)
    shape = torch.broadcast_shapes(gate.shape, position_bias.shape)
    return torch.mul(gate, position_bias, out=_scratch("bias", shape, dtype, gate.device))


def _scratch_bytes(slot: str) -> int:
    held = getattr(_SCRATCH, slot, None)
    return 0 if held is None else held[1].numel() * held[1].element_size()


def _release_scratch_slots(*slots: str) -> None:
    for slot in slots:
        setattr(_SCRATCH, slot, None)


def release_scratch() -> None:
    """Let this thread's scratch tensors go (attention bias, conv blocks and layer outputs; the engine does after each
    call: windows of one long file share them, and an idle model holds nothing of that size)."""
    vars(_SCRATCH).clear()


def _unfused_wins(query: torch.Tensor, training: bool) -> bool:
    """bf16 inference on a CPU without AMX: two batched matmuls around a softmax beat SDPA's fused CPU kernel with a
    float bias (paper-size layers, 10 s clip, Zen 4 with AVX-512 BF16: ~6 ms against ~10 ms per layer; the whole
    tower 1.28 s against 1.49 s per clip). With AMX tiles SDPA's kernel wins (Intel Xeon, 10 s clip: 2.8 against
    3.4 ms per layer) and is closer to fp32. fp32 keeps SDPA (faster there, and the exact path); so does training."""
    return not training and query.dtype == torch.bfloat16 and query.device.type == "cpu" and not cpu_has_amx()


@functools.lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """Whether torch's CPU kernels can use AMX tiles here (its own detection, which also checks the OS allows them)."""
    check = getattr(getattr(torch, "cpu", None), "_is_amx_tile_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def _bf16_cpu_attention(query, key, value, gate, position_bias, attention_mask):
    """softmax(q k^T / sqrt(d) + gate * bias) v with the gated bias added in place into the scores (one full-size
    tensor for scores, one for probabilities). The matmuls accumulate in fp32 inside oneDNN and softmax reduces in
    fp32; the scores are held in bf16 (SDPA keeps them in fp32: ~3x its per-element error, BENCHMARKS.md)."""
    scale = query.shape[-1] ** -0.5
    # key as [B, heads, T, d] rows (a cheap copy) so that the matmul reads k^T through its transpose flag instead of
    # materialising the transposed [d, T] matrices (an element-wise transposing copy, slow in bf16)
    scores = torch.matmul(query * scale, key.contiguous().transpose(-1, -2))  # [B, heads, T, T]
    scores.addcmul_(gate.to(scores.dtype), position_bias.to(scores.dtype))
    if attention_mask is not None:
        scores.masked_fill_(attention_mask.ne(1)[:, None, None, :], float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), value)


def _cached(owner, attr: str, key, build):
    """``owner.<attr>`` holds ``(key, value)``; when ``key`` differs the old value is let go first and ``build()``
    makes the new one. The one cache of values derived from weights: position biases, conv kernels, the
    weight-normed positional kernel (per-thread working memory is ``_scratch``)."""
    cached = getattr(owner, attr, None)
    if cached is None or cached[0] != key:
        setattr(owner, attr, None)
        cached = (key, build())
        setattr(owner, attr, cached)
    return cached[1]


def _weights_key(weight: torch.Tensor) -> tuple:
    """What a value derived from ``weight`` depends on: its identity, in-place version, dtype and device."""
    return weight.data_ptr(), tensor_version(weight), weight.dtype, weight.device


def tensor_version(tensor: torch.Tensor) -> int | None:
    """torch's in-place version counter of ``tensor``; None for inference tensors (made under
    ``torch.inference_mode``), which keep no counter (and cannot be changed in place outside that mode)."""
    try:
        return tensor._version
    except RuntimeError:
        return None


def toeplitz_bias(module: nn.Module, length: int) -> torch.Tensor:
    """Exactly ``module.compute_bias(T, T)`` as ``[1, heads, T, T]``, built from the 2T-1 distinct relative distances
    instead of a T x T grid: the bias depends only on j - i, so the buckets and embeddings of 2T-1 distances are
    spread over the T x T matrix with one strided view and one copy. The stock version allocates about six T x T
    temporaries (positions, distances, logs, buckets), which for long windows of fine-stride towers is the peak."""
    values = _distance_embeddings(module, torch.arange(-(length - 1), length))  # j - i
    heads = values.shape[0]
    rows = values.as_strided((heads, length, length), (2 * length - 1, 1, 1))  # rows[h, r, j] = values[h, r + j]
    return rows.flip(1)[None]  # bias[h, i, j] = values[h, (T - 1 - i) + j] = embedding of distance j - i


def _distance_embeddings(module: nn.Module, distances: torch.Tensor) -> torch.Tensor:
    """``[heads, len(distances)]``: the bias of each relative distance ``j - i`` (its bucket's embedding)."""
    distances = distances.to(module.rel_attn_embed.weight.device)
    return module.rel_attn_embed(module._relative_positions_bucket(distances)).transpose(0, 1).contiguous()


def flipped_bias(module: nn.Module, length: int) -> torch.Tensor:
    """The first layer's relative-position bias for keys in reverse order, ``[1, heads, T, T]``:
    ``flipped[h, i, j'] = bias[h, i, T - 1 - j']``, which depends on ``i + j'`` only, so it is a strided view of the
    2T-1 values (no ``T x T`` tensor). The view carries ``_keys_flipped = True`` for the layers it is passed on to."""
    values = _distance_embeddings(module, torch.arange(length - 1, -length, -1))  # i + j' -> j - i
    heads, count = values.shape
    view = values.as_strided((1, heads, length, length), (heads * count, count, 1, 1))
    view._keys_flipped = True
    return view


def _relative_position_bias(module: nn.Module, length: int) -> torch.Tensor:
    """The first layer's relative-position bias: ``flipped_bias`` for bf16 on CPU without gradients (see
    ``_wavlm_sdpa_attention_forward``), else ``toeplitz_bias``. Without gradients it is cached per length
    (windows of a long file, and clips of one length, share it): building it costs more than a small tower's
    attention. The cache key includes the embedding weight's identity and in-place version, so new weights never
    meet an old bias."""
    weight = module.rel_attn_embed.weight
    if torch.is_grad_enabled() and weight.requires_grad:
        return toeplitz_bias(module, length)
    # measured on CPUs only: GPUs keep the keys in order
    build = flipped_bias if weight.dtype != torch.float32 and weight.device.type == "cpu" else toeplitz_bias
    return _cached(module, "_bias_cache", (length, *_weights_key(weight)),
                   torch.inference_mode()(lambda: build(module, length)))


CONV_CHUNK_ROWS = 4096  # output frames per block of the no-gradient conv path (see _layer_norm_conv_forward)
CONV_SCRATCH_KEEP_BYTES = 160 << 20  # conv layer outputs kept for the next clip up to this size (15 s in fp32)


def _layer_norm_conv_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """Drop-in for WavLM's/wav2vec2's ``LayerNormConvLayer.forward`` (conv, layer norm over channels, activation)
    without the layout copies of the stock version, which transposes ``[B, C, T]`` to ``[B, T, C]`` for the norm and
    back, so that every next convolution first copies its whole input (the largest copies of the speech tower).

    Here the activations stay in ``[B, T, C]`` memory and are handed on as a ``[B, C, T]`` view (channels last).
    A convolution without padding is a matrix product of the input's windows with the kernel, and in channels-last
    memory each window (``kernel`` frames of all channels) is one contiguous run, so the windows are a strided view
    of the input. Without gradients on CPU the layer runs in blocks of ``CONV_CHUNK_ROWS`` output frames: window rows,
    matrix product, norm and activation of one block while it is in cache (the first layers' outputs are tens of
    megabytes: on the Intel Xeon with AMX, bf16, the second layer of a 15 s clip took 60 ms as oneDNN's
    convolution plus a whole-tensor norm and GELU, 26 ms in blocks of 4,096 frames; 512-1,024-frame blocks were
    slower). Otherwise (gradients, GPUs) the single-channel first layer is the same product on the wave's
    ``unfold`` and later layers run ``conv2d`` on the channels-last view. Same maths; float rounding differs only by
    summation order."""
    if not torch.is_grad_enabled() and hidden_states.device.type == "cpu" and (
            hidden_states.shape[1] == 1 or hidden_states.transpose(1, 2).is_contiguous()):
        return _blocked_conv_forward(self, hidden_states).transpose(1, 2)
    conv = self.conv
    (kernel,), (stride,) = conv.kernel_size, conv.stride
    if hidden_states.shape[1] == 1:
        frames = hidden_states[:, 0].unfold(-1, kernel, stride)  # [B, T', kernel]
        out = F.linear(frames, conv.weight.view(conv.out_channels, kernel), conv.bias)  # [B, T', C']
    else:
        out = F.conv2d(hidden_states.unsqueeze(2), conv.weight.unsqueeze(2), conv.bias, stride=(1, stride))
        out = out.squeeze(2).transpose(1, 2)  # [B, T', C']: contiguous when conv2d wrote channels last
    return self.activation(self.layer_norm(out)).transpose(1, 2)


def _window_weight(conv: nn.Conv1d) -> torch.Tensor:
    """The kernel as ``[out, kernel * in]`` in window order (frame-major, channels inner), cached per weight
    identity and in-place version like the position bias."""
    weight = conv.weight
    return _cached(conv, "_window_weight", _weights_key(weight),
                   lambda: weight.detach().permute(0, 2, 1).reshape(conv.out_channels, -1).contiguous())


def _blocked_conv_forward(self, hidden_states: torch.Tensor, slot: str | None = None) -> torch.Tensor:
    """``activation(layer_norm(conv(x)))`` as ``[B, T', C']``, block by block of output frames (no gradients);
    ``hidden_states`` is ``[B, 1, T]`` or a channels-last ``[B, C, T]`` view. The blocks' window rows are copied
    into a scratch tensor; the output is a new tensor, or scratch ``slot`` when given (``_feature_encoder_forward``)."""
    conv = self.conv
    (kernel,), (stride,) = conv.kernel_size, conv.stride
    batch, channels, length = hidden_states.shape
    frames = (length - kernel) // stride + 1
    base = hidden_states if channels == 1 else hidden_states.transpose(1, 2)  # [B, 1, T] or [B, T, C]: contiguous
    base = base.contiguous()
    windows = base.as_strided((batch, frames, kernel * channels),
                              (length * channels, stride * channels, 1), base.storage_offset())
    weight = _window_weight(conv)
    dtype, device = hidden_states.dtype, hidden_states.device
    shape = (batch, frames, conv.out_channels)
    out = torch.empty(shape, dtype=dtype, device=device) if slot is None else _scratch(slot, shape, dtype, device)
    blocks = _scratch("conv_block", (min(frames, CONV_CHUNK_ROWS), kernel * channels), dtype, device)
    gelu = _exact_gelu(self.activation)
    for row in range(batch):
        for start in range(0, frames, CONV_CHUNK_ROWS):
            block = blocks[:min(CONV_CHUNK_ROWS, frames - start)]
            block.copy_(windows[row, start:start + len(block)])
            normed = self.layer_norm(_linear_weights(block, weight, conv.bias))
            out[row, start:start + len(block)] = torch.ops.aten.gelu_(normed) if gelu else self.activation(normed)
    return out


def _feature_encoder_forward(self, input_values: torch.Tensor) -> torch.Tensor:
    """Drop-in for WavLM's/wav2vec2's ``FeatureEncoder.forward``: the same conv layers in order. Without gradients on
    CPU, when every layer runs ``_layer_norm_conv_forward``, the layers in between write their outputs into two
    per-thread scratch tensors in turn (each layer reads one and writes the other; the first layers' outputs are
    the tower's largest tensors, 65 MB for 10 s in fp32, made afresh for every clip otherwise), and the last layer's
    output is a new tensor as before. Slots over ``CONV_SCRATCH_KEEP_BYTES`` together (windows over ~15 s in fp32)
    are let go before the transformer layers run, which keeps the peak of a 30 s window where it was."""
    layers = self.conv_layers
    if torch.is_grad_enabled() or input_values.device.type != "cpu" or not all(
            getattr(vars(layer).get("forward"), "__func__", None) is _layer_norm_conv_forward for layer in layers):
        return type(self).forward(self, input_values)
    hidden = input_values[:, None]
    for index, layer in enumerate(layers):
        slot = None if index == len(layers) - 1 else f"conv_out{index % 2}"
        hidden = _blocked_conv_forward(layer, hidden, slot).transpose(1, 2)
    slots = ("conv_out0", "conv_out1")
    if sum(_scratch_bytes(slot) for slot in slots) > CONV_SCRATCH_KEEP_BYTES:
        _release_scratch_slots(*slots)  # long windows: not held through the transformer layers (peak memory)
    return hidden


def _weight_norm_originals(conv: nn.Module) -> tuple | None:
    """The parameters of ``conv``'s weight-norm parametrization (magnitude, direction), or None without one."""
    parametrization = getattr(getattr(conv, "parametrizations", None), "weight", None)
    if parametrization is None or not hasattr(parametrization, "original1"):
        return None
    return parametrization.original0, parametrization.original1


def _positional_conv_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """Drop-in for WavLM's/wav2vec2's ``PositionalConvEmbedding.forward`` (weight-normed grouped conv, same-padding
    trim, activation). Without gradients the weight-normed kernel is computed once per version of its two
    parameters and cached; the stock module recomputes it at every forward (33 MB for WavLM-Large: 3-95 ms a clip on
    the Zen 3, mostly page faults). The same kernel values, so the same output."""
    conv = self.conv
    originals = _weight_norm_originals(conv)
    if torch.is_grad_enabled() or originals is None:
        return type(self).forward(self, hidden_states)
    weight = _cached(conv, "_normed_weight", tuple(_weights_key(p) for p in originals), lambda: conv.weight.detach())
    out = conv._conv_forward(hidden_states.transpose(1, 2), weight, conv.bias)
    return self.activation(self.padding(out)).transpose(1, 2)


def _plain_conv(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv1d) and conv.padding == (0,) and conv.dilation == (1,) and conv.groups == 1
            and conv.padding_mode == "zeros")


def _switch(model: nn.Module, forward, matches) -> int:
    """Give every module inside ``model`` for which ``matches(module)`` holds ``forward`` as its own (instance-level)
    forward, which ``use_stock_paths`` removes again; returns how many modules were switched."""
    switched = 0
    for module in model.modules():
        if matches(module):
            module.forward = types.MethodType(forward, module)
            switched += 1
    return switched


def use_fast_feature_encoder(model: nn.Module) -> int:
    """Switch every layer-norm conv layer of a WavLM/wav2vec2 feature encoder inside ``model`` to
    ``_layer_norm_conv_forward`` and the encoders themselves to ``_feature_encoder_forward``; returns how many
    modules were switched."""
    layers = _switch(model, _layer_norm_conv_forward, lambda m: type(m).__name__.endswith("LayerNormConvLayer")
                     and _plain_conv(getattr(m, "conv", None)))
    return layers + _switch(model, _feature_encoder_forward, lambda m: type(m).__name__.endswith("FeatureEncoder")
                            and isinstance(getattr(m, "conv_layers", None), nn.ModuleList))


def use_cached_positional_kernel(model: nn.Module) -> int:
    """Switch every weight-normed positional conv embedding inside ``model`` to ``_positional_conv_forward``."""
    return _switch(model, _positional_conv_forward, lambda m: type(m).__name__.endswith("PositionalConvEmbedding")
                   and _weight_norm_originals(getattr(m, "conv", None)) is not None and hasattr(m, "padding"))


def use_sdpa_attention(model: nn.Module) -> int:
    """Switch every WavLM attention module inside ``model`` to SDPA; returns how many were switched."""
    return _switch(model, _wavlm_sdpa_attention_forward,
                   lambda m: type(m).__name__ == "WavLMAttention" and hasattr(m, "gru_rel_pos_linear"))


def _have_onednn_linear() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


_ONEDNN_LINEAR = _have_onednn_linear()
_ONEDNN_DTYPES: dict[torch.dtype, bool] = {}


def onednn_linear_supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN's matmul runs in ``dtype`` on this CPU, probed once per dtype: bf16 needs the ISA oneDNN
    asks for (AVX-512 or AVX2-VNNI-2; an AVX2-only CPU has no bf16 primitive and torch falls back to its own
    kernels there), so a bf16 model on such a CPU keeps ``F.linear``."""
    if dtype not in _ONEDNN_DTYPES:
        ok = _ONEDNN_LINEAR and dtype in (torch.float32, torch.bfloat16)
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


LINEAR_BACKEND_ENV = "PARASPEECHCLAP_CPU_LINEAR"  # "onednn", "torch", or unset / "auto" (see onednn_linear_wins)


@functools.lru_cache(maxsize=None)
def onednn_linear_wins(dtype: torch.dtype) -> bool:
    """Whether the no-gradient CPU linear layers of ``dtype`` go through oneDNN rather than torch's own ``F.linear``.

    bf16: oneDNN wherever it runs bf16 (torch's bf16 CPU matmul is oneDNN too; this path fuses GELU into it). fp32:
    only where torch's kernels use AVX-512. On the AVX-512 Zen 4 measured here oneDNN's fp32 GEMM was ~1.25x MKL's;
    on the AVX2-only Zen 3 it was no faster and its fused exact GELU ran the feed-forward matmul ~15 % slower, so
    the whole fp32 tower was ~1.2x faster through ``F.linear`` (MKL) there (BENCHMARKS.md). A timed probe at load
    was tried and dropped: on a shared 2-core machine one run's medians swapped from one second to the next.
    ``PARASPEECHCLAP_CPU_LINEAR=onednn|torch`` fixes the choice. The answers agree up to summation order (fp32:
    within 1e-7 on the paper-size tower)."""
    if not onednn_linear_supports(dtype):
        return False
    choice = os.environ.get(LINEAR_BACKEND_ENV, "auto").strip().lower()
    if choice in ("onednn", "torch"):
        return choice == "onednn"
    if choice not in ("", "auto"):
        raise ValueError(f"{LINEAR_BACKEND_ENV}={choice!r}: expected onednn, torch or auto")
    return dtype != torch.float32 or torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def _linear(x: torch.Tensor, module: nn.Linear, gelu: bool = False) -> torch.Tensor:
    """``F.linear`` (then exact GELU when ``gelu``); without gradients on CPU, through oneDNN's matmul with the GELU
    fused where that is faster (``onednn_linear_wins``). oneDNN's op has no autograd formula, so anything that may
    need gradients takes ``F.linear``."""
    return _linear_weights(x, module.weight, module.bias, gelu)


def _linear_weights(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    gelu: bool = False) -> torch.Tensor:
    """``_linear`` on bare weights."""
    no_grad_cpu = not torch.is_grad_enabled() and x.device.type == "cpu"
    if no_grad_cpu and x.dtype == weight.dtype and onednn_linear_wins(x.dtype):
        if gelu:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    out = F.linear(x, weight, bias)
    if not gelu:
        return out
    return torch.ops.aten.gelu_(out) if no_grad_cpu else F.gelu(out)  # in place: one allocation fewer


def _onednn_linear_forward(self, x: torch.Tensor) -> torch.Tensor:
    """Drop-in for ``nn.Linear.forward`` (see ``_linear``)."""
    return _linear(x, self)


def _feed_forward_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """Drop-in for WavLM's/wav2vec2's ``FeedForward.forward`` with exact GELU fused into the first matmul."""
    hidden = self.intermediate_dropout(_linear(hidden_states, self.intermediate_dense, gelu=True))
    return self.output_dropout(self.output_dense(hidden))


def _exact_gelu(activation) -> bool:
    return activation is F.gelu or (getattr(activation, "act", None) is F.gelu) or (
        isinstance(activation, nn.GELU) and activation.approximate == "none")


def _fusable_feed_forward(module: nn.Module) -> bool:
    return (type(module).__name__.endswith("FeedForward") and isinstance(getattr(module, "intermediate_dense", None), nn.Linear)
            and _exact_gelu(getattr(module, "intermediate_act_fn", None)))


def use_onednn_linear(model: nn.Module) -> int:
    """Route every ``nn.Linear`` inside ``model`` through ``_linear`` and fuse exact GELU into WavLM's feed-forward
    blocks; returns how many modules were switched (0 where torch has no oneDNN)."""
    if not _ONEDNN_LINEAR:
        return 0
    return (_switch(model, _onednn_linear_forward, lambda m: type(m) is nn.Linear)
            + _switch(model, _feed_forward_forward, _fusable_feed_forward))


_FAST_FORWARDS = (_wavlm_sdpa_attention_forward, _layer_norm_conv_forward, _feature_encoder_forward,
                  _positional_conv_forward, _onednn_linear_forward, _feed_forward_forward)


def use_fast_paths(model: nn.Module) -> dict[str, int]:
    """This project's drop-in forwards (same maths) for the modules inside ``model``: WavLM's SDPA attention and
    copy-free feature encoder, the cached positional kernel, oneDNN linear layers. Returns how many modules of each
    kind were switched."""
    return {"attention": use_sdpa_attention(model), "feature_encoder": use_fast_feature_encoder(model),
            "positional_conv": use_cached_positional_kernel(model), "linear": use_onednn_linear(model)}


def use_stock_paths(model: nn.Module, forwards: tuple = _FAST_FORWARDS) -> int:
    """Back to the classes' own forwards (the reference code) for every module switched by ``use_fast_paths`` (or
    only those switched to one of ``forwards``); returns how many were restored."""
    restored = 0
    for module in model.modules():
        forward = vars(module).get("forward")
        if isinstance(forward, types.MethodType) and forward.__func__ in forwards:
            del module.forward
            restored += 1
    return restored


def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of the speech tower's ``nn.Linear`` layers (CPU only), in place.

    The text tower stays fp32: its embeddings are cached per string, so it is rarely the bottleneck, and int8
    moved text rankings far more than audio ones (BENCHMARKS.md).
    """
    from torch.ao.quantization import quantize_dynamic

    # the quantized modules take over the float modules' attributes; the oneDNN forwards read float weights
    use_stock_paths(model.audio_branch, (_onednn_linear_forward, _feed_forward_forward))
    quantize_dynamic(model.audio_branch, {nn.Linear}, dtype=torch.qint8, inplace=True)
    release_freed_memory()  # the replaced fp32 weights stay in the heap otherwise (~1.3 GB for WavLM-Large)
    return model


MALLOC_ENV = "PARASPEECHCLAP_MALLOC"  # "0": leave glibc's malloc settings alone
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
MMAP_THRESHOLD_BYTES = 32 << 20  # the ceiling of glibc's own dynamic mmap threshold on 64-bit


@functools.lru_cache(maxsize=1)
def keep_freed_blocks() -> bool:
    """Put glibc's malloc in the state it reaches by itself once a 32 MB block has been freed: blocks under 32 MB
    come from the heap and up to 64 MB of freed memory stays at its top (``mallopt``; process-wide, once; the
    engine calls it on CPU). Until glibc gets there, every tensor over 128 KB is a fresh ``mmap`` whose pages fault
    in on first touch, and whether it gets there depends on what happened to be freed before: on the 2-core Zen 3
    VM one 8 MB feed-forward output cost 27 ms of page faults (its GELU 1.4 ms), and the paper-size tower embedded
    the benchmark's clips ~1.2x faster in this state (BENCHMARKS.md). ``PARASPEECHCLAP_MALLOC=0`` leaves malloc
    alone; False there and where the C library is not glibc."""
    if os.environ.get(MALLOC_ENV, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False


def release_freed_memory() -> bool:
    """Give freed heap pages back to the OS (glibc ``malloc_trim``); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # musl and other libcs have no malloc_trim
        return False
