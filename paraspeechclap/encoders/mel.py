"""Small log-mel + transformer speech encoder, trained from scratch (the `mini` model's speech tower).

It behaves like a Hugging Face speech model, so the core's speech tower uses it unchanged:
``base(input_values, attention_mask=mask).last_hidden_state`` is ``[B, T, hidden_size]`` and
``base._get_feat_extract_output_lengths(sample_lengths)`` gives the number of real frames per clip.

Input is a raw 16 kHz waveform ``[B, L]`` (right-padded, with a sample-level attention mask).
Inside: STFT (zero-padded, not reflected, so padding never leaks into real frames) -> log-mel, plus
(``pitch_bins`` > 0) a cepstral pitch map: the real cepstrum of each frame's log power spectrum read at
log-spaced quefrencies for F0 in [pitch_f_min, pitch_f_max], where a voiced frame shows one peak at its
period (F0 and its movement become a position to track; whisper shows no peak), plus (``modulation_hz``)
the local modulation energy of the loudness envelope at syllable-rate frequencies (Gabor filters over
``modulation_window_s``: speaking rate becomes which band is strongest), plus (``spectral_lags``) the
utterance's spectral correlation at those frame lags over its active frames (within ``activity_range`` of
the loudest), broadcast over frames: slow speech keeps its spectrum longer, so this tracks the speaking
rate without counting pauses -> per-utterance normalisation of all but the stationarity channels (one
scalar mean and std over the real frames and all bins: removes level, keeps spectral shape) -> optional
SpecAugment (train mode only) -> conv stack (stride to 40 ms) -> masked depthwise positional conv ->
pre-LN transformer layers with a key padding mask -> LayerNorm.
Padded positions are zeroed after every step, so a clip padded inside a batch gives the same real
frames as the clip alone (up to float rounding).

Level: per-utterance normalisation makes the encoder level-invariant (pair it with
``do_normalize=True`` in the feature extractor); the mini model does not model loudness.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.audio_utils import mel_filter_bank
from transformers.modeling_outputs import BaseModelOutput

MODEL_TYPE = "paraspeechclap_mel"
#: channels added by ``pitch_stats``: utterance log-F0 (mean, 20th and 80th percentile) and per-frame log-F0,
#: from each frame's autocorrelation (see ``LogMelFrontEnd._autocorrelation_f0``).
PITCH_STATS_CHANNELS = 4


class MelEncoderConfig(PretrainedConfig):
    """Configuration of :class:`MelEncoderModel` (front end, conv stack, transformer sizes)."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        sampling_rate: int = 16000,
        n_fft: int = 1024,
        win_length: int = 1024,
        hop_length: int = 160,
        n_mels: int = 80,
        f_min: float = 40.0,
        f_max: float = 8000.0,
        log_floor: float = 1e-6,
        utterance_normalization: bool = True,
        pitch_bins: int = 0,
        pitch_f_min: float = 60.0,
        pitch_f_max: float = 500.0,
        modulation_hz: tuple[float, ...] | list[float] = (),
        modulation_window_s: float = 0.8,
        spectral_lags: tuple[int, ...] | list[int] = (),
        activity_range: float = 5.0,
        pitch_stats: bool = False,
        pitch_skip: bool = False,
        conv_channels: int = 256,
        conv_kernel: int = 5,
        conv_strides: tuple[int, ...] | list[int] = (2, 2),
        position_conv_kernel: int = 15,
        hidden_size: int = 256,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int = 1024,
        hidden_dropout: float = 0.0,
        attention_dropout: float = 0.0,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        apply_spec_augment: bool = True,
        spec_time_masks: int = 2,
        spec_time_width: int = 20,
        spec_freq_masks: int = 2,
        spec_freq_width: int = 8,
        **kwargs,
    ) -> None:
        self.sampling_rate = int(sampling_rate)
        self.n_fft = int(n_fft)
        self.win_length = int(win_length)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.f_min = float(f_min)
        self.f_max = float(f_max)
        self.log_floor = float(log_floor)
        self.utterance_normalization = bool(utterance_normalization)
        self.pitch_bins = int(pitch_bins)
        self.pitch_f_min = float(pitch_f_min)
        self.pitch_f_max = float(pitch_f_max)
        self.modulation_hz = [float(f) for f in modulation_hz]
        self.modulation_window_s = float(modulation_window_s)
        self.spectral_lags = [int(lag) for lag in spectral_lags]
        self.activity_range = float(activity_range)
        self.pitch_stats = bool(pitch_stats)
        self.pitch_skip = bool(pitch_skip)
        self.conv_channels = int(conv_channels)
        self.conv_kernel = int(conv_kernel)
        self.conv_strides = [int(s) for s in conv_strides]
        self.position_conv_kernel = int(position_conv_kernel)
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.intermediate_size = int(intermediate_size)
        self.hidden_dropout = float(hidden_dropout)
        self.attention_dropout = float(attention_dropout)
        self.layer_norm_eps = float(layer_norm_eps)
        self.initializer_range = float(initializer_range)
        self.apply_spec_augment = bool(apply_spec_augment)
        self.spec_time_masks = int(spec_time_masks)
        self.spec_time_width = int(spec_time_width)
        self.spec_freq_masks = int(spec_freq_masks)
        self.spec_freq_width = int(spec_freq_width)
        super().__init__(**kwargs)
        self._check()

    def _check(self) -> None:
        problems = []
        if self.win_length > self.n_fft:
            problems.append(f"win_length ({self.win_length}) must be <= n_fft ({self.n_fft})")
        if not 0 <= self.f_min < self.f_max <= self.sampling_rate / 2:
            problems.append(f"need 0 <= f_min < f_max <= sampling_rate/2, got {self.f_min}, {self.f_max}")
        if self.pitch_bins and not 0 < self.pitch_f_min < self.pitch_f_max:
            problems.append(f"need 0 < pitch_f_min < pitch_f_max, got {self.pitch_f_min}, {self.pitch_f_max}")
        if self.pitch_bins and self.sampling_rate / self.pitch_f_min >= self.n_fft // 2:
            problems.append(f"pitch_f_min ({self.pitch_f_min} Hz) needs a period shorter than n_fft/2 samples")
        frame_rate = self.sampling_rate / self.hop_length
        if any(not 0 < f < frame_rate / 2 for f in self.modulation_hz):
            problems.append(f"modulation_hz must lie in (0, {frame_rate / 2}) Hz, got {self.modulation_hz}")
        if self.pitch_stats and not self.pitch_bins:
            problems.append("pitch_stats needs pitch_bins > 0")
        if self.pitch_skip and not self.pitch_stats:
            problems.append("pitch_skip needs pitch_stats")
        if any(lag < 1 for lag in self.spectral_lags):
            problems.append(f"spectral_lags must be positive frame counts, got {self.spectral_lags}")
        if self.conv_kernel % 2 != 1 or self.position_conv_kernel % 2 != 1:
            problems.append("conv_kernel and position_conv_kernel must be odd")
        if not self.conv_strides or any(s < 1 for s in self.conv_strides):
            problems.append(f"conv_strides must be a non-empty list of positive ints, got {self.conv_strides}")
        if self.hidden_size % self.num_attention_heads:
            problems.append(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})"
            )
        if problems:
            raise ValueError("MelEncoderConfig: " + "; ".join(problems))

    @property
    def feature_size(self) -> int:
        """Channels the front end hands to the conv stack (log-mel, cepstral pitch, modulation, spectral lags)."""
        return (self.n_mels + self.pitch_bins + len(self.modulation_hz) + len(self.spectral_lags)
                + (PITCH_STATS_CHANNELS if self.pitch_stats else 0))

    @property
    def frame_duration_s(self) -> float:
        """Seconds per output frame."""
        return self.hop_length * math.prod(self.conv_strides) / self.sampling_rate


def output_lengths(config: MelEncoderConfig, sample_lengths: torch.Tensor | int) -> torch.Tensor | int:
    """Number of encoder frames for clips of ``sample_lengths`` samples (tensor or int)."""
    frames = sample_lengths // config.hop_length + 1
    pad = config.conv_kernel // 2
    for stride in config.conv_strides:
        frames = (frames + 2 * pad - config.conv_kernel) // stride + 1
    return frames


def masked_quantiles(values: torch.Tensor, keep: torch.Tensor, qs: tuple[float, ...]) -> list[torch.Tensor]:
    """Per row, ``torch.quantile`` (linear interpolation) of ``values[row][keep[row]]`` at each of ``qs``, 0 for a row
    that keeps nothing: one sort over the batch, no per-row loop or data-dependent shape (so the tower exports to
    ONNX), and the same numbers as the per-row calls (the kept values sort first, dropped ones are set to +inf)."""
    count = keep.sum(dim=1)
    ordered = values.masked_fill(~keep, float("inf")).sort(dim=1).values
    quantiles = []
    for q in qs:
        rank = q * (count - 1).clamp_min(0).to(values.dtype)
        below = rank.floor()
        lower = ordered.gather(1, below.long()[:, None])[:, 0]
        upper = ordered.gather(1, rank.ceil().long()[:, None])[:, 0]
        value = torch.lerp(lower, upper, rank - below)
        quantiles.append(torch.where(count > 0, value, torch.zeros_like(value)))
    return quantiles


def _lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class LogMelFrontEnd(nn.Module):
    """Waveform -> per-utterance normalised log-mel ``[B, n_mels, frames]`` (no trainable weights)."""

    def __init__(self, config: MelEncoderConfig) -> None:
        super().__init__()
        self.config = config
        # Plain attributes, not buffers: derived from the config, never stored in checkpoints.
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _window_and_filters(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (device.type, device.index)
        if key not in self._cache:
            c = self.config
            window = torch.hann_window(c.win_length, periodic=True, dtype=torch.float32, device=device)
            filters = mel_filter_bank(
                num_frequency_bins=c.n_fft // 2 + 1,
                num_mel_filters=c.n_mels,
                min_frequency=c.f_min,
                max_frequency=c.f_max,
                sampling_rate=c.sampling_rate,
                norm="slaney",
                mel_scale="slaney",
            )
            self._cache[key] = (window, torch.tensor(np.asarray(filters).T, dtype=torch.float32, device=device))
        return self._cache[key]

    def _quefrency_filters(self, device: torch.device) -> tuple[int, torch.Tensor]:
        """(first quefrency index, triangular filters [pitch_bins, n_quefrencies]) on a log-period axis."""
        key = ("quefrency", device.type, device.index)
        if key not in self._cache:
            c = self.config
            q_lo = int(np.floor(c.sampling_rate / c.pitch_f_max))
            q_hi = int(np.ceil(c.sampling_rate / c.pitch_f_min))
            q = np.arange(q_lo, q_hi + 1, dtype=np.float64)
            centres = np.geomspace(q_lo, q_hi, c.pitch_bins + 2)
            bank = np.zeros((c.pitch_bins, len(q)))
            for i in range(c.pitch_bins):
                left, mid, right = centres[i], centres[i + 1], centres[i + 2]
                rise = (q - left) / (mid - left)
                fall = (right - q) / (right - mid)
                bank[i] = np.clip(np.minimum(rise, fall), 0.0, None)
                if bank[i].sum() == 0:  # narrower than one quefrency step: take the nearest one
                    bank[i, int(np.argmin(np.abs(q - mid)))] = 1.0
            bank /= bank.sum(axis=1, keepdims=True)
            self._cache[key] = (q_lo, torch.tensor(bank, dtype=torch.float32, device=device))
        return self._cache[key]

    def _modulation_filters(self, device: torch.device) -> torch.Tensor:
        """Cosine and sine Gabor kernels ``[2 * len(modulation_hz), 1, width]`` at the frame rate."""
        key = ("modulation", device.type, device.index)
        if key not in self._cache:
            c = self.config
            frame_rate = c.sampling_rate / c.hop_length
            half = int(round(c.modulation_window_s * frame_rate / 2))
            t = np.arange(-half, half + 1) / frame_rate
            taper = np.hanning(2 * half + 3)[1:-1]
            kernels = []
            for f in c.modulation_hz:
                for phase in (np.cos, np.sin):
                    k = taper * phase(2 * np.pi * f * t)
                    kernels.append(k / np.abs(k).sum())
            self._cache[key] = torch.tensor(np.stack(kernels)[:, None, :], dtype=torch.float32, device=device)
        return self._cache[key]

    @staticmethod
    def _spectral_stationarity(raw_logmel: torch.Tensor, mask: torch.Tensor, lags: list[int],
                               activity_range: float) -> torch.Tensor:
        """Per-utterance spectral correlation at each frame lag over active speech, Fisher-z ``[B, lags]``.

        How fast the spectrum changes tracks the speaking rate (phones per second) far better than the loudness
        envelope does, and does not depend on level, pitch or voice. Only frames within ``activity_range`` (natural
        log units of mean mel energy) of the loudest real frame count, so pauses do not dilute it; spectra are
        centred per mel bin over those frames. Padding never counts: a clip alone and padded in a batch agree.
        """
        real = mask[:, 0] > 0  # [B, frames]
        energy = raw_logmel.mean(dim=1).masked_fill(~real, float("-inf"))
        active = (energy > energy.max(dim=1, keepdim=True).values - activity_range) & real
        weight = active[:, None, :].float()
        count = weight.sum(dim=2, keepdim=True).clamp_min(1.0)
        centred = (raw_logmel - (raw_logmel * weight).sum(dim=2, keepdim=True) / count) * weight
        stats = []
        for lag in lags:
            a, b = centred[:, :, :-lag], centred[:, :, lag:]
            pair = (active[:, :-lag] & active[:, lag:])[:, None, :].float()
            a, b = a * pair, b * pair
            r = (a * b).sum(dim=(1, 2)) / (a.norm(dim=(1, 2)) * b.norm(dim=(1, 2))).clamp_min(1e-6)
            stats.append(torch.atanh(r.clamp(-0.999, 0.999)))
        return torch.stack(stats, dim=1)

    def _autocorrelation_f0(self, power: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log-F0 as numbers from each frame's normalised autocorrelation -> ``[B, 4, frames]``.

        Per frame: the autocorrelation of the magnitude spectrum (inverse FFT of |X|, which weights harmonics more
        evenly than |X|^2 and so survives the telephone band, divided by the window's own so long lags
        are not penalised) over lags for F0 in [pitch_f_min, pitch_f_max]; the pitch is the *shortest* lag whose
        value is within 10 % of the best (octave-down errors avoided), the voicing its normalised value. Frames are
        voiced when real and their normalised autocorrelation exceeds 0.45. Channels, on [-1, 1] with +1 at
        pitch_f_max and -1 at pitch_f_min on a log scale: the voicing-weighted mean over voiced frames, its 20th and
        80th percentile (broadcast over frames) and the per-frame value on voiced frames (0 elsewhere). Raising a
        voice moves all four up, whatever its level, spectrum or formants.
        """
        c = self.config
        key = ("acf", power.device.type, power.device.index)
        if key not in self._cache:
            window = torch.hann_window(c.win_length, periodic=True, dtype=torch.float32, device=power.device)
            wacf = torch.fft.irfft(torch.fft.rfft(window, n=c.n_fft).abs().square(), n=c.n_fft)
            lo = int(np.floor(c.sampling_rate / c.pitch_f_max))
            hi = int(np.ceil(c.sampling_rate / c.pitch_f_min))
            lags = torch.arange(lo, hi + 1, device=power.device, dtype=torch.float32)
            level = (torch.log(c.sampling_rate / lags) - math.log(c.pitch_f_min)) / math.log(c.pitch_f_max / c.pitch_f_min)
            self._cache[key] = (lo, hi, (wacf[lo:hi + 1] / wacf[0]).clamp_min(1e-3), 2.0 * level - 1.0)
        lo, hi, wnorm, lag_level = self._cache[key]
        acf = torch.fft.irfft(power.sqrt(), n=c.n_fft, dim=1)  # of the magnitude spectrum: robust to band-limiting
        r = acf[:, lo:hi + 1] / (acf[:, :1].clamp_min(1e-10) * wnorm[None, :, None])  # normalised, [B, lags, frames]
        best = r.max(dim=1, keepdim=True).values
        first = (r >= 0.9 * best).float().argmax(dim=1)  # shortest lag near the best
        value = r.gather(1, first[:, None, :])[:, 0]
        level = lag_level[first]  # [B, frames]
        real = mask[:, 0] > 0
        voiced = real & (value > 0.45)
        weight = value.clamp(0, 1) * voiced
        mean = (level * weight).sum(1) / weight.sum(1).clamp_min(1e-6)
        utter = torch.stack([mean, *masked_quantiles(level, voiced, (0.2, 0.8))], dim=1)
        utter = utter[:, :, None].expand(-1, -1, level.shape[-1])
        return torch.cat([utter, (level * voiced)[:, None, :]], dim=1)

    @staticmethod
    def _normalise(feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One scalar mean and std per utterance over its real frames and all bins."""
        count = mask.sum(dim=(1, 2), keepdim=True) * feats.shape[1]
        mean = (feats * mask).sum(dim=(1, 2), keepdim=True) / count
        var = ((feats - mean).square() * mask).sum(dim=(1, 2), keepdim=True) / count
        return (feats - mean) / torch.sqrt(var + 1e-5)

    def forward(self, waveform: torch.Tensor, sample_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (features [B, feature_size, frames], frame_lengths [B]); padded frames are zero."""
        c = self.config
        window, filters = self._window_and_filters(waveform.device)
        # No trainable weights here: no graph, and float32 whatever the surrounding autocast says.
        with torch.no_grad(), torch.autocast(device_type=waveform.device.type, enabled=False):
            x = waveform.float() * _lengths_to_mask(sample_lengths, waveform.shape[1]).float()
            # Zero padding (not reflect) on both sides: a clip alone and the same clip padded in a batch
            # see identical samples in every real frame.
            x = F.pad(x, (c.n_fft // 2, c.n_fft // 2))
            spec = torch.stft(
                x, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=window,
                center=False, return_complex=True,
            )
            power = spec.real.square() + spec.imag.square()  # [B, F, frames]
            mel = torch.matmul(filters, power)  # [B, n_mels, frames]
            logmel = torch.log(mel + c.log_floor)
            raw_logmel = logmel
            frame_lengths = sample_lengths // c.hop_length + 1
            mask = _lengths_to_mask(frame_lengths, logmel.shape[-1])[:, None, :].float()  # [B, 1, frames]
            if c.utterance_normalization:
                logmel = self._normalise(logmel, mask)
            if c.pitch_bins:
                q_lo, bank = self._quefrency_filters(waveform.device)
                cepstrum = torch.fft.irfft(torch.log(power + c.log_floor), n=c.n_fft, dim=1)  # [B, n_fft, frames]
                pitch_map = torch.matmul(bank, cepstrum[:, q_lo:q_lo + bank.shape[1]])  # [B, pitch_bins, frames]
                if c.utterance_normalization:
                    pitch_map = self._normalise(pitch_map, mask)
                logmel = torch.cat([logmel, pitch_map], dim=1)
            if c.modulation_hz:
                kernels = self._modulation_filters(waveform.device)
                envelope = (logmel[:, : c.n_mels] * mask).mean(dim=1, keepdim=True)  # [B, 1, frames], zero in padding
                response = F.conv1d(envelope, kernels, padding=kernels.shape[-1] // 2)  # [B, 2 * bands, frames]
                energy = torch.log(response[:, 0::2].square() + response[:, 1::2].square() + 1e-4)
                if c.utterance_normalization:
                    energy = self._normalise(energy, mask)
                logmel = torch.cat([logmel, energy], dim=1)
            if c.spectral_lags:
                # Utterance-level statistics broadcast over frames, like the normalisation; never normalised
                # themselves (mean removal would erase the cue).
                stationarity = self._spectral_stationarity(raw_logmel, mask, c.spectral_lags, c.activity_range)
                logmel = torch.cat([logmel, stationarity[:, :, None].expand(-1, -1, logmel.shape[-1])], dim=1)
            if c.pitch_stats:
                pitch_numbers = self._autocorrelation_f0(power, mask)
                # Last, so a model trained without them keeps its channel layout (new input weights start at 0).
                logmel = torch.cat([logmel, pitch_numbers], dim=1)
            return logmel * mask, frame_lengths


class MaskedConv1d(nn.Conv1d):
    """'Same'-padded Conv1d whose output frames beyond each clip's length are zeroed."""

    def forward_masked(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = super().forward(x)
        new_lengths = (lengths + 2 * self.padding[0] - self.kernel_size[0]) // self.stride[0] + 1
        return y * _lengths_to_mask(new_lengths, y.shape[-1])[:, None, :].to(y.dtype), new_lengths


class ConvStack(nn.Module):
    """Conv1d + LayerNorm + GELU blocks that stride log-mel frames down to encoder frames."""

    def __init__(self, config: MelEncoderConfig) -> None:
        super().__init__()
        channels = [config.feature_size] + [config.conv_channels] * (len(config.conv_strides) - 1) + [config.hidden_size]
        self.convs = nn.ModuleList(
            MaskedConv1d(channels[i], channels[i + 1], config.conv_kernel, stride=s, padding=config.conv_kernel // 2)
            for i, s in enumerate(config.conv_strides)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(channels[i + 1], eps=config.layer_norm_eps) for i in range(len(self.convs)))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for conv, norm in zip(self.convs, self.norms):
            x, lengths = conv.forward_masked(x, lengths)
            x = F.gelu(norm(x.transpose(1, 2)).transpose(1, 2))
            x = x * _lengths_to_mask(lengths, x.shape[-1])[:, None, :].to(x.dtype)
        return x, lengths


class EncoderLayer(nn.Module):
    """Pre-LayerNorm transformer layer with scaled-dot-product attention and a key padding mask."""

    def __init__(self, config: MelEncoderConfig) -> None:
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.attention_dropout = config.attention_dropout
        self.attn_norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.qkv = nn.Linear(h, 3 * h)
        self.out = nn.Linear(h, h)
        self.ff_norm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.ff_in = nn.Linear(h, config.intermediate_size)
        self.ff_out = nn.Linear(config.intermediate_size, h)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.num_heads, h // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask[:, None, None, :], dropout_p=self.attention_dropout if self.training else 0.0
        )
        x = x + self.dropout(self.out(attn.transpose(1, 2).reshape(b, t, h)))
        x = x + self.dropout(self.ff_out(self.dropout(F.gelu(self.ff_in(self.ff_norm(x))))))
        return x


class MelEncoderPreTrainedModel(PreTrainedModel):
    """Shared Hugging Face plumbing (config class, weight init)."""

    config_class = MelEncoderConfig
    base_model_prefix = "mel_encoder"
    main_input_name = "input_values"
    supports_gradient_checkpointing = False

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)


class MelEncoderModel(MelEncoderPreTrainedModel):
    """Log-mel conv-transformer speech encoder; ``forward`` returns ``BaseModelOutput(last_hidden_state=...)``."""

    # The inference engine keeps this tower's weights in fp32: its STFT/cepstrum front end needs fp32, and the tower
    # is too small for bf16 to pay. ``precision="auto"`` therefore resolves to fp32 for models built on it.
    bf16_weights = False
    # Clips per forward pass on CPU when none is given (the engine's default is 1 for transformer towers): this
    # tower's STFT front end and small matrices make one clip at a time about 4x slower than batches of 8.
    cpu_batch_size = 8

    def __init__(self, config: MelEncoderConfig) -> None:
        super().__init__(config)
        self.front_end = LogMelFrontEnd(config)
        self.conv_stack = ConvStack(config)
        self.position_conv = MaskedConv1d(
            config.hidden_size, config.hidden_size, config.position_conv_kernel,
            padding=config.position_conv_kernel // 2, groups=config.hidden_size,
        )
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # pitch_skip: the utterance log-F0 statistics (mean, 20th, 80th percentile) added to every output frame through
        # one linear map, past the transformer: the pooled vector then moves monotonically with the voice's F0
        # along a learned direction, whatever the rest of the tower makes of formants or gender. Starts at zero.
        self.pitch_skip = nn.Linear(3, config.hidden_size, bias=False) if getattr(config, "pitch_skip", False) else None
        self.post_init()
        if self.pitch_skip is not None:
            nn.init.zeros_(self.pitch_skip.weight)

    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor | int) -> torch.Tensor | int:
        """Encoder frames for clips of ``input_lengths`` samples (same formula as the forward pass)."""
        return output_lengths(self.config, input_lengths)

    def _get_feature_vector_attention_mask(self, feature_vector_length: int, attention_mask: torch.Tensor) -> torch.Tensor:
        """Frame-level mask ``[B, feature_vector_length]`` from a sample-level ``attention_mask``."""
        lengths = self._get_feat_extract_output_lengths(attention_mask.sum(-1).long())
        return _lengths_to_mask(lengths, feature_vector_length).to(attention_mask.dtype)

    def _spec_augment(self, feats: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        c = self.config
        b = feats.shape[0]
        keep = torch.ones_like(feats)
        for i in range(b):
            length = int(frame_lengths[i])
            for _ in range(c.spec_time_masks):
                width = int(torch.randint(0, c.spec_time_width + 1, ()).item())
                width = min(width, length // 5)
                if width > 0:
                    start = int(torch.randint(0, length - width + 1, ()).item())
                    keep[i, :, start:start + width] = 0
            for _ in range(c.spec_freq_masks):
                width = int(torch.randint(0, c.spec_freq_width + 1, ()).item())
                if width > 0:
                    start = int(torch.randint(0, c.n_mels - width + 1, ()).item())  # log-mel bins only
                    keep[i, start:start + width, :] = 0
        return feats * keep

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        """Encode waveforms ``[B, L]`` (sample-level ``attention_mask`` 1 = real) to ``[B, T, hidden_size]``."""
        if input_values.dim() != 2:
            raise ValueError(f"MelEncoderModel expects input_values of shape [batch, samples], got {tuple(input_values.shape)}")
        if attention_mask is None:
            sample_lengths = torch.full((input_values.shape[0],), input_values.shape[1], device=input_values.device)
        else:
            sample_lengths = attention_mask.sum(-1).long()
        feats, frame_lengths = self.front_end(input_values, sample_lengths)
        # utterance F0 statistics: the last pitch_stats channels but one, broadcast over frames (taken before
        # SpecAugment, which may mask the first frame)
        pitch = feats[:, -PITCH_STATS_CHANNELS:-1, 0] if self.pitch_skip is not None else None
        if self.training and self.config.apply_spec_augment:
            feats = self._spec_augment(feats, frame_lengths)
        feats = feats.to(self.final_norm.weight.dtype)
        x, lengths = self.conv_stack(feats, frame_lengths)
        pos, _ = self.position_conv.forward_masked(x, lengths)
        x = (x + pos).transpose(1, 2)  # [B, T, H]
        key_mask = _lengths_to_mask(lengths, x.shape[1])
        frame_mask = key_mask[:, :, None].to(x.dtype)
        hidden_states = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, key_mask) * frame_mask
            if output_hidden_states:
                hidden_states.append(x)
        x = self.final_norm(x)
        if pitch is not None:
            x = x + self.pitch_skip(pitch.to(x.dtype))[:, None, :]
        x = x * frame_mask
        if return_dict is False:
            return (x,) + ((tuple(hidden_states),) if output_hidden_states else ())
        return BaseModelOutput(last_hidden_state=x, hidden_states=tuple(hidden_states) if output_hidden_states else None)


def feature_extractor_config(config: MelEncoderConfig) -> dict:
    """The ``preprocessor_config.json`` that goes next to the encoder config (Wav2Vec2FeatureExtractor)."""
    return {
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "sampling_rate": config.sampling_rate,
        "padding_value": 0.0,
        "padding_side": "right",
        "do_normalize": True,
        "return_attention_mask": True,
    }
