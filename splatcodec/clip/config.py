"""Configurations of the GS-CLIP model: backbone, text tower, splat stem and Perceiver resampler.

Field names of :class:`VisionConfig` and :class:`TextConfig` follow open_clip's ``CLIPVisionCfg`` /
``CLIPTextCfg`` so that a config can be read next to an open_clip model config JSON; only the fields
our ViT implements exist. The named configs carry the values of open_clip's published
``model_configs/<name>.json`` (checked against open_clip 3.3.0); ``"tiny"`` is our own small model
for 32x32 images on a CPU. Everything here is plain data (no torch), JSON-safe via
:meth:`GSClipConfig.to_dict` / :meth:`GSClipConfig.from_dict`, and stored in every checkpoint.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ClipInputError

#: RGB normalisation open_clip uses for its ViT models (OPENAI_DATASET_MEAN / _STD).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

#: Covariance parameterisations of the splat tokens (see :mod:`splatcodec.clip.tokens`).
COV_PARAMS = ("log_ab_shear", "scale_rotation")
#: Text towers: a frozen all-MiniLM-L6-v2 plus a trained projection, or open_clip's text transformer.
TEXT_TOWERS = ("minilm", "open_clip")


@dataclass
class VisionConfig:
    """The ViT backbone (open_clip ``VisionTransformer`` with default options: CLS pooling, learnable
    positional embedding, ln_pre, no layer scale, no attentional pooler)."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 768
    layers: int = 12
    head_width: int = 64
    mlp_ratio: float = 4.0
    #: OpenAI's original weights use QuickGELU (open_clip's ``-quickgelu`` configs); default GELU.
    quick_gelu: bool = False
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD

    @property
    def heads(self) -> int:
        """Attention heads, as open_clip derives them: width // head_width."""
        return self.width // self.head_width

    @property
    def grid_size(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patch tokens (without CLS): the default latent count of the resampler."""
        return self.grid_size ** 2


@dataclass
class TextConfig:
    """The text tower. ``tower="minilm"``: frozen all-MiniLM-L6-v2 (384-d sentence embeddings) plus a
    trained linear projection; the transformer fields are unused. ``tower="open_clip"``: open_clip's
    ``TextTransformer`` (causal mask, argmax-EOT pooling, linear projection without bias) with a BPE
    tokenizer read from ``vocab_path`` (open_clip's ``bpe_simple_vocab_16e6.txt.gz`` format)."""

    tower: str = "minilm"
    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0
    quick_gelu: bool = False
    vocab_path: str | None = None


@dataclass
class StemConfig:
    """The splat stem: per-Gaussian features -> fixed per-feature normalisation -> Fourier features
    -> MLP to the resampler width."""

    #: Covariance parameterisation: "log_ab_shear" (log l11, log l22, asinh(l21 / l11) of the
    #: Cholesky factor) or "scale_rotation" (log sigma_1, log sigma_2, cos 2theta, sin 2theta).
    param: str = "log_ab_shear"
    #: Octaves of sin/cos per feature: frequencies pi * 2**k, k = 0 .. bands - 1 (raw value kept too).
    fourier_bands: int = 6
    #: Linear layers after the Fourier features (1: a single linear map; 2: linear-GELU-linear).
    layers: int = 2


@dataclass
class ResamplerConfig:
    """The Perceiver resampler (Flamingo style: latents attend to [tokens; latents], then an MLP)."""

    blocks: int = 4
    #: Learned latent queries; None -> the backbone's patch-token count (196 for ViT-*-16 at 224).
    latents: int | None = None
    #: Inner width; None -> half the backbone width (keeps the trainable share in the paper's 7-14 %).
    width: int | None = None
    head_width: int = 64
    mlp_ratio: float = 4.0


@dataclass
class GSClipConfig:
    """Everything needed to build a :class:`splatcodec.clip.model.GSClip`."""

    name: str = "custom"
    embed_dim: int = 512
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    stem: StemConfig = field(default_factory=StemConfig)
    resampler: ResamplerConfig = field(default_factory=ResamplerConfig)

    def __post_init__(self) -> None:
        self.validate()

    # -- derived values ------------------------------------------------------------------------
    @property
    def num_latents(self) -> int:
        """Latent count of the resampler (resolved default)."""
        return self.resampler.latents or self.vision.num_patches

    @property
    def resampler_width(self) -> int:
        """Inner width of the resampler (resolved default)."""
        return self.resampler.width or max(self.resampler.head_width, self.vision.width // 2)

    def validate(self) -> None:
        """Raise :class:`ClipInputError` for values no model can be built from."""
        v, t, s, r = self.vision, self.text, self.stem, self.resampler
        positive = {"embed_dim": self.embed_dim, "vision.image_size": v.image_size,
                    "vision.patch_size": v.patch_size, "vision.width": v.width,
                    "vision.layers": v.layers, "vision.head_width": v.head_width,
                    "text.context_length": t.context_length, "text.vocab_size": t.vocab_size,
                    "text.width": t.width, "text.heads": t.heads, "text.layers": t.layers,
                    "stem.layers": s.layers, "resampler.blocks": r.blocks,
                    "resampler.head_width": r.head_width}
        for key, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ClipInputError(f"config {key} must be a positive integer, got {value!r}")
        if v.image_size % v.patch_size:
            raise ClipInputError(f"vision.image_size {v.image_size} is not a multiple of patch_size {v.patch_size}")
        if v.width % v.head_width:
            raise ClipInputError(f"vision.width {v.width} is not a multiple of head_width {v.head_width}")
        if t.width % t.heads:
            raise ClipInputError(f"text.width {t.width} is not a multiple of text.heads {t.heads}")
        if t.tower not in TEXT_TOWERS:
            raise ClipInputError(f"text.tower must be one of {TEXT_TOWERS}, got {t.tower!r}")
        if s.param not in COV_PARAMS:
            raise ClipInputError(f"stem.param must be one of {COV_PARAMS}, got {s.param!r}")
        if isinstance(s.fourier_bands, bool) or not isinstance(s.fourier_bands, int) or s.fourier_bands < 0:
            raise ClipInputError(f"stem.fourier_bands must be an integer >= 0, got {s.fourier_bands!r}")
        for key, value in (("resampler.latents", r.latents), ("resampler.width", r.width)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ClipInputError(f"config {key} must be None or a positive integer, got {value!r}")
        if self.resampler_width % r.head_width:
            raise ClipInputError(f"resampler width {self.resampler_width} is not a multiple of "
                                 f"resampler.head_width {r.head_width}")
        for key, value in (("vision.mlp_ratio", v.mlp_ratio), ("text.mlp_ratio", t.mlp_ratio),
                           ("resampler.mlp_ratio", r.mlp_ratio)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ClipInputError(f"config {key} must be a positive number, got {value!r}")

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists)."""
        def plain(value: Any) -> Any:
            if isinstance(value, tuple):
                return [plain(x) for x in value]
            if isinstance(value, dict):
                return {k: plain(x) for k, x in value.items()}
            return value
        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GSClipConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ClipInputError`."""
        if not isinstance(data, Mapping):
            raise ClipInputError(f"a GSClipConfig dict is needed, got {type(data).__name__}")
        parts = {"vision": VisionConfig, "text": TextConfig, "stem": StemConfig,
                 "resampler": ResamplerConfig}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in parts:
                kwargs[key] = _build(parts[key], value, key)
            elif key in ("name", "embed_dim"):
                kwargs[key] = value
            else:
                raise ClipInputError(f"unknown GSClipConfig key {key!r}")
        return cls(**kwargs)

    @classmethod
    def from_name(cls, name: str, *, text: str = "minilm", **overrides: Any) -> "GSClipConfig":
        """A named config: ``"ViT-B-32"``, ``"ViT-B-16"``, ``"ViT-M-16"`` (open_clip's values) or
        ``"tiny"`` (ours, 32x32 input). ``text`` picks the text tower; ``overrides`` replaces whole
        sub-configs or top-level fields (e.g. ``stem=StemConfig(param="scale_rotation")``)."""
        if name not in NAMED_CONFIGS:
            raise ClipInputError(f"unknown model config {name!r}; known: {sorted(NAMED_CONFIGS)}")
        data = NAMED_CONFIGS[name]
        text_cfg = TextConfig(tower=text, **data["text"])
        kwargs: dict[str, Any] = dict(name=name, embed_dim=data["embed_dim"],
                                      vision=VisionConfig(**data["vision"]), text=text_cfg,
                                      resampler=ResamplerConfig(**data.get("resampler", {})))
        kwargs.update(overrides)
        return cls(**kwargs)


def _build(kind: type, value: Any, key: str) -> Any:
    if not isinstance(value, Mapping):
        raise ClipInputError(f"config {key} must be a dict, got {type(value).__name__}")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(value) - names
    if unknown:
        raise ClipInputError(f"unknown {key} config keys: {sorted(unknown)}")
    value = dict(value)
    for tuple_field in ("mean", "std"):
        if tuple_field in value:
            value[tuple_field] = tuple(float(x) for x in value[tuple_field])
    return kind(**value)


# open_clip's text tower of the ViT-B/M configs: context 77, vocab 49408, width 512, 8 heads, 12 layers.
_OPENCLIP_TEXT = dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12)

#: Backbone values (open_clip model_configs/<name>.json) and our "tiny" config.
NAMED_CONFIGS: dict[str, dict[str, Any]] = {
    "ViT-B-32": dict(embed_dim=512, vision=dict(image_size=224, layers=12, width=768, patch_size=32),
                     text=_OPENCLIP_TEXT),
    "ViT-B-16": dict(embed_dim=512, vision=dict(image_size=224, layers=12, width=768, patch_size=16),
                     text=_OPENCLIP_TEXT),
    "ViT-M-16": dict(embed_dim=512, vision=dict(image_size=224, layers=12, width=512, patch_size=16),
                     text=_OPENCLIP_TEXT),
    # 32x32 input (CIFAR), 8x8 patches of 4 px, 4 blocks of width 192 (3 heads): ~1.9M visual parameters,
    # resampler width 96 in 3 heads of 32,
    # the size that reached 0.55 zero-shot top-1 on CIFAR-10 in the feasibility run. Its open_clip-style
    # text tower (if chosen) is small too; the MiniLM tower is the default here.
    "tiny": dict(embed_dim=256, vision=dict(image_size=32, layers=4, width=192, patch_size=4),
                 text=dict(context_length=32, vocab_size=49408, width=256, heads=4, layers=4),
                 resampler=dict(head_width=32)),
}
