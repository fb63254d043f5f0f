"""The trainable GS front end: splat stem (features -> tokens) and Perceiver resampler (tokens -> latents).

* :class:`SplatStem`: fixed per-feature normalisation (constants from :mod:`.tokens`, kept as buffers so
  a checkpoint carries them) -> Fourier features ``[f, sin(pi 2^k f), cos(pi 2^k f)]`` per feature ->
  ``stem.layers`` linear layers (GELU between) to the resampler width. Applied to every Gaussian on
  its own, so it cannot depend on the order of the Gaussians.
* :class:`PerceiverResampler`: ``latents`` learned queries; each block (Flamingo's layout) lets the
  normalised latents attend to ``[normalised tokens; normalised latents]`` and adds an MLP, both
  residual; then ``ln_out`` and a linear map to the backbone width. Padded Gaussians are removed from
  the attention by a FLOAT additive mask (0 for keys to keep, -inf for padding); the latents are
  always among the keys, so no row is ever fully masked, even for an image without Gaussians.
  Attention over a set is order-independent, which makes the whole GS path permutation invariant.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .config import GSClipConfig
from .errors import ClipInputError
from .tokens import FEATURE_DIM, FEATURE_SCALE, FEATURE_SHIFT


class SplatStem(nn.Module):
    """Per-Gaussian features [B, N, F] -> tokens [B, N, width]."""

    def __init__(self, param: str, fourier_bands: int, layers: int, width: int):
        super().__init__()
        self.param = param
        self.feature_dim = FEATURE_DIM(param)
        self.register_buffer("feature_shift", torch.tensor(FEATURE_SHIFT[param], dtype=torch.float32))
        self.register_buffer("feature_scale", torch.tensor(FEATURE_SCALE[param], dtype=torch.float32))
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(fourier_bands, dtype=torch.float32))
        fourier_dim = self.feature_dim * (1 + 2 * fourier_bands)
        mods: list[tuple[str, nn.Module]] = []
        dims = [fourier_dim] + [width] * layers
        for i in range(layers):
            mods.append((f"fc{i}", nn.Linear(dims[i], dims[i + 1])))
            if i < layers - 1:
                mods.append((f"act{i}", nn.GELU()))
        self.mlp = nn.Sequential(OrderedDict(mods))

    def fourier(self, features: torch.Tensor) -> torch.Tensor:
        """Normalised features and their sin/cos at the stem's frequencies: [B, N, F * (1 + 2K)]."""
        f = (features - self.feature_shift) / self.feature_scale
        angles = (f.unsqueeze(-1) * self.frequencies).flatten(-2)
        return torch.cat([f, torch.sin(angles), torch.cos(angles)], dim=-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.fourier(features))


class CrossAttention(nn.Module):
    """Multi-head attention of queries [B, L, d] over keys/values [B, M, d] with an additive bias."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(width, width)
        self.to_kv = nn.Linear(width, 2 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, q_in: torch.Tensor, kv_in: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, l, d = q_in.shape
        h = self.heads
        q = self.to_q(q_in).view(b, l, h, d // h).transpose(1, 2)
        k, v = self.to_kv(kv_in).view(b, kv_in.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        # bias [B, 1, 1, M] float, in q's dtype (under autocast q may be half while the tokens are not)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.out_proj(out.transpose(1, 2).reshape(b, l, d))


class ResamplerBlock(nn.Module):
    """latents += attn(ln(latents), [ln_media(tokens); ln(latents)]); latents += mlp(ln_2(latents))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.ln_media = nn.LayerNorm(width)
        self.ln_latents = nn.LayerNorm(width)
        self.attn = CrossAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, hidden)), ("gelu", nn.GELU()), ("c_proj", nn.Linear(hidden, width))]))

    def forward(self, latents: torch.Tensor, tokens: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        q = self.ln_latents(latents)
        kv = torch.cat([self.ln_media(tokens), q], dim=1)
        latents = latents + self.attn(q, kv, bias)
        return latents + self.mlp(self.ln_2(latents))


class PerceiverResampler(nn.Module):
    """Gaussian tokens [B, N, d] + valid mask [B, N] -> latents [B, L, out_width]."""

    def __init__(self, width: int, out_width: int, num_latents: int, blocks: int, heads: int,
                 mlp_ratio: float):
        super().__init__()
        self.latents = nn.Parameter(0.02 * torch.randn(num_latents, width))
        self.blocks = nn.ModuleList(ResamplerBlock(width, heads, mlp_ratio) for _ in range(blocks))
        self.ln_out = nn.LayerNorm(width)
        self.proj_out = nn.Linear(width, out_width)

    @staticmethod
    def key_bias(valid: torch.Tensor, num_latents: int, dtype: torch.dtype) -> torch.Tensor:
        """Float additive mask [B, 1, 1, N + L]: 0 for valid Gaussians and the latents, -inf for
        padding. Built with masked_fill on a float tensor: a bool mask cast with ``.to(dtype)`` would
        become 0/1 and silently let padding through."""
        b, n = valid.shape
        bias = torch.zeros(b, n + num_latents, dtype=dtype, device=valid.device)
        bias[:, :n].masked_fill_(~valid, float("-inf"))
        return bias.view(b, 1, 1, n + num_latents)

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        latents = self.latents.to(tokens.dtype).unsqueeze(0).expand(b, -1, -1)
        bias = self.key_bias(valid, latents.shape[1], tokens.dtype)
        for block in self.blocks:
            latents = block(latents, tokens, bias)
        return self.proj_out(self.ln_out(latents))


def build_stem(cfg: GSClipConfig) -> SplatStem:
    """The stem of a config (output width = resampler width)."""
    return SplatStem(cfg.stem.param, cfg.stem.fourier_bands, cfg.stem.layers, cfg.resampler_width)


def build_resampler(cfg: GSClipConfig) -> PerceiverResampler:
    """The resampler of a config (output width = backbone width)."""
    width = cfg.resampler_width
    heads = width // cfg.resampler.head_width
    if heads < 1:
        raise ClipInputError(f"resampler width {width} is below its head width {cfg.resampler.head_width}")
    return PerceiverResampler(width, cfg.vision.width, cfg.num_latents, cfg.resampler.blocks, heads,
                              cfg.resampler.mlp_ratio)
