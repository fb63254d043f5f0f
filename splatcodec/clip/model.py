"""GS-CLIP: a CLIP image tower that reads Gaussians, next to its RGB teacher and a text tower.

::

    pixels   -> visual.embed_pixels ---------------------------------\\
                                                                     +-> visual.encode_tokens -> embedding
    Gaussians -> splat_stem -> resampler -> [CLS; latents] + pos ---/     (shared blocks, ln_post, proj)
                                            -> visual.ln_pre

The student (GS path) and the RGB teacher share every module of ``visual`` except ``conv1``: the
class embedding, positional embedding (added to the latents when their count equals the patch count,
to the CLS token only otherwise), ``ln_pre``, the transformer blocks, ``ln_post`` and ``proj``. What
each training stage updates is set by :meth:`GSClip.set_stage`.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import GSClipConfig
from .errors import ClipInputError
from .resampler import build_resampler, build_stem
from .text import build_text_tower
from .tokens import FEATURE_DIM
from .vit import VisionTransformer

STAGES = ("rgb", "distill", "contrastive")


def normalize_pixels(images, config: GSClipConfig, device: str | torch.device | None = None) -> torch.Tensor:
    """uint8 RGB images ``[B, H, W, 3]`` or ``[B, 3, H, W]`` (numpy or torch; floats are taken as
    [0, 1]) -> float32 ``[B, 3, H, W]`` normalised with ``config.vision.mean`` / ``std``, on ``device``
    (default: where a tensor input is, else the CPU). A single image (3 dims) gets a batch axis.
    Resizing is the caller's job (H = W = vision.image_size)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or 3 not in (x.shape[1], x.shape[3]):
        raise ClipInputError(f"images must be [B, H, W, 3] or [B, 3, H, W], got {list(x.shape)}")
    if x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        x = x.to(torch.float32) / 255.0
    elif x.is_floating_point():
        x = x.to(torch.float32)
    else:
        raise ClipInputError(f"images must be uint8 or float, got {x.dtype}")
    x = x.to(device or x.device)
    mean = torch.tensor(config.vision.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(config.vision.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


class GSClip(nn.Module):
    """The whole model: ``visual`` (RGB teacher, open_clip ViT), ``splat_stem`` + ``resampler`` (GS
    student front end), ``text`` (text tower) and ``logit_scale`` (open_clip's init, log(1/0.07))."""

    def __init__(self, config: GSClipConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.visual = VisionTransformer(config.vision, config.embed_dim)
        self.splat_stem = build_stem(config)
        self.resampler = build_resampler(config)
        self.text = build_text_tower(config.text, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.stage: str | None = None

    # -- encoders ------------------------------------------------------------------------------
    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """RGB teacher: normalised pixels [B, 3, S, S] (see :func:`normalize_pixels`) -> [B, embed_dim]."""
        if not isinstance(pixels, torch.Tensor):
            raise ClipInputError(f"pixels must be a torch tensor, got {type(pixels).__name__}")
        out = self.visual(pixels.to(self._device()))
        return F.normalize(out, dim=-1) if normalize else out

    def encode_gaussians(self, features, valid, normalize: bool = True) -> torch.Tensor:
        """GS student: ``features`` [B, N, F] and ``valid`` bool [B, N] from
        :func:`splatcodec.clip.tokens.splat_features` (numpy or torch) -> [B, embed_dim]. Padded rows
        (valid False) never change the result."""
        out = self.visual.encode_tokens(self.gaussian_tokens(features, valid))
        return F.normalize(out, dim=-1) if normalize else out

    def gaussian_tokens(self, features, valid) -> torch.Tensor:
        """The GS path's input to the shared trunk, [B, 1 + latents, width] after ``ln_pre``: the
        counterpart of ``visual.embed_pixels`` (what token-level distillation compares). Inputs as
        :meth:`encode_gaussians`."""
        device = self._device()
        features = torch.as_tensor(features).to(device=device, dtype=torch.float32)
        valid = torch.as_tensor(valid).to(device)
        dim = FEATURE_DIM(self.config.stem.param)
        if features.ndim != 3 or features.shape[2] != dim:
            raise ClipInputError(f"features must be [B, N, {dim}] for stem.param={self.config.stem.param!r}, "
                                 f"got {list(features.shape)}")
        if valid.dtype != torch.bool or valid.shape != features.shape[:2]:
            raise ClipInputError(f"valid must be a bool [B, N] = {list(features.shape[:2])} mask, got "
                                 f"{valid.dtype} {list(valid.shape)}")
        if features.shape[0] == 0:
            raise ClipInputError("encode_gaussians needs a batch of at least one image")
        # Padding may hold anything; zero it so that no inf/NaN there can leak through 0 * x.
        features = torch.where(valid.unsqueeze(-1), features, torch.zeros((), device=device))
        latents = self.resampler(self.splat_stem(features), valid)
        return self._student_tokens(latents)

    def _student_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        v = self.visual
        cls = v.class_embedding.to(latents.dtype).view(1, 1, -1).expand(latents.shape[0], -1, -1)
        pos = v.positional_embedding.to(latents.dtype)
        if latents.shape[1] + 1 == pos.shape[0]:
            x = torch.cat([cls, latents], dim=1) + pos
        else:
            x = torch.cat([cls + pos[:1], latents], dim=1)
        return v.ln_pre(x)

    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Text tower: list of strings -> [B, embed_dim]."""
        out = self.text.encode(texts)
        return F.normalize(out, dim=-1) if normalize else out

    def _device(self) -> torch.device:
        return self.visual.proj.device

    # -- stages and parameter accounting ---------------------------------------------------------
    def gs_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Every parameter the GS path (``encode_gaussians``) uses: stem, resampler and ``visual``
        except ``conv1``. The denominator of :meth:`trainable_fraction`."""
        for name, p in self.named_parameters():
            if name.startswith(("splat_stem.", "resampler.")) or (
                    name.startswith("visual.") and not name.startswith("visual.conv1.")):
                yield name, p

    def set_stage(self, stage: str, unfreeze_blocks: int = 0, unfreeze_head: bool = True) -> None:
        """Set ``requires_grad`` for a training stage (and nothing else; train()/eval() is the caller's):

        * ``"rgb"``: all of ``visual``, the text projection (MiniLM's linear map, or the open_clip
          tower's ``text_projection``) and ``logit_scale``;
        * ``"distill"``: ``splat_stem`` and ``resampler`` only;
        * ``"contrastive"``: ``splat_stem``, ``resampler``, the first ``unfreeze_blocks`` transformer
          blocks, ``ln_post`` and ``proj`` (unless ``unfreeze_head=False``) and ``logit_scale``; the
          text tower stays frozen. Blocks, ``ln_post`` and ``proj`` are shared with the RGB teacher,
          so unfreezing them changes ``encode_image`` too.
        """
        if stage not in STAGES:
            raise ClipInputError(f"stage must be one of {STAGES}, got {stage!r}")
        layers = len(self.visual.transformer.resblocks)
        if isinstance(unfreeze_blocks, bool) or not isinstance(unfreeze_blocks, int) or not 0 <= unfreeze_blocks <= layers:
            raise ClipInputError(f"unfreeze_blocks must be an integer in [0, {layers}], got {unfreeze_blocks!r}")
        for p in self.parameters():
            p.requires_grad_(False)
        train: list[nn.Parameter] = []
        if stage == "rgb":
            train += list(self.visual.parameters()) + self.text.projection_parameters() + [self.logit_scale]
        else:
            train += list(self.splat_stem.parameters()) + list(self.resampler.parameters())
        if stage == "contrastive":
            for block in self.visual.transformer.resblocks[:unfreeze_blocks]:
                train += list(block.parameters())
            if unfreeze_head:
                train += list(self.visual.ln_post.parameters()) + [self.visual.proj]
            train.append(self.logit_scale)
        for p in train:
            p.requires_grad_(True)
        self.stage = stage

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters with ``requires_grad`` (what an optimiser should get)."""
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_fraction(self) -> float:
        """Trainable share of the GS path's parameters: trainable parameters among
        :meth:`gs_named_parameters` / all of them (text tower, ``conv1`` and ``logit_scale`` are
        outside both counts)."""
        total = trainable = 0
        for _, p in self.gs_named_parameters():
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        return trainable / total

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts per part (``backbone_shared``: visual without conv1)."""
        def count(module_or_params) -> int:
            params = module_or_params.parameters() if isinstance(module_or_params, nn.Module) else module_or_params
            return sum(p.numel() for p in params)
        visual_total = count(self.visual)
        conv1 = count(self.visual.conv1)
        return {"stem": count(self.splat_stem), "resampler": count(self.resampler),
                "backbone_shared": visual_total - conv1, "conv1": conv1, "text": count(self.text),
                "gs_path": sum(p.numel() for _, p in self.gs_named_parameters())}
