"""A compact ViT whose parameter names and arithmetic match open_clip's ``VisionTransformer``.

Only open_clip's default ViT path is implemented (no layer scale, patch dropout, attentional pooler,
sin-cos positions or custom blocks): ``conv1`` (no bias) -> prepend ``class_embedding`` -> add
``positional_embedding`` -> ``ln_pre`` -> ``transformer.resblocks`` (pre-norm blocks: ``ln_1``,
``attn`` = ``nn.MultiheadAttention`` with ``in_proj_weight`` / ``out_proj``, ``ln_2``,
``mlp.c_fc`` -> GELU -> ``mlp.c_proj``) -> ``ln_post`` on every token -> the CLS token -> ``@ proj``.
So a state dict saved by open_clip for such a model (its keys under ``visual.``) loads with
``load_state_dict`` as is; ``tests/clip/test_open_clip_compat.py`` checks outputs against open_clip's.

The splat path reuses :meth:`VisionTransformer.encode_tokens` with its own token sequence
(CLS + resampled latents), so student and teacher share the same blocks, ``ln_post`` and ``proj``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .config import VisionConfig
from .errors import ClipInputError


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the activation of OpenAI's original CLIP weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block with open_clip's parameter names."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = False):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, hidden)),
            ("gelu", QuickGELU() if quick_gelu else nn.GELU()),
            ("c_proj", nn.Linear(hidden, width)),
        ]))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` (batch-first, [B, L, width])."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0,
                 quick_gelu: bool = False):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu) for _ in range(layers))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x


class VisionTransformer(nn.Module):
    """open_clip-compatible ViT image tower: pixels [B, 3, S, S] -> features [B, output_dim]."""

    def __init__(self, cfg: VisionConfig, output_dim: int):
        super().__init__()
        self.image_size = cfg.image_size
        self.patch_size = cfg.patch_size
        self.grid_size = cfg.grid_size
        self.width = cfg.width
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        scale = cfg.width ** -0.5  # open_clip's init of the embeddings and the projection
        self.class_embedding = nn.Parameter(scale * torch.randn(cfg.width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(cfg.num_patches + 1, cfg.width))
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.quick_gelu)
        self.ln_post = nn.LayerNorm(cfg.width)
        self.proj = nn.Parameter(scale * torch.randn(cfg.width, output_dim))

    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch tokens with CLS and positions, after ``ln_pre``: [B, 1 + grid^2, width]."""
        if pixels.ndim != 4 or pixels.shape[1] != 3 or pixels.shape[2:] != (self.image_size, self.image_size):
            raise ClipInputError(f"pixels must be [B, 3, {self.image_size}, {self.image_size}], "
                                 f"got {list(pixels.shape)}")
        x = self.conv1(pixels.to(self.conv1.weight.dtype))
        x = x.flatten(2).transpose(1, 2)  # [B, grid^2, width], row-major patches as open_clip
        cls = self.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)

    def encode_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The shared trunk: blocks -> ``ln_post`` -> CLS token (index 0) -> ``@ proj``."""
        x = self.ln_post(self.transformer(x))
        return x[:, 0] @ self.proj

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalised image features [B, output_dim] (open_clip's ``visual(image)``)."""
        return self.encode_tokens(self.embed_pixels(pixels))
