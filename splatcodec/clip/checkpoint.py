"""GS-CLIP checkpoints, and loading real open_clip weights into the model.

A GS-CLIP checkpoint is one ``torch.save`` file holding a dict::

    {"format": "splatcodec.clip", "version": 1, "config": GSClipConfig.to_dict(),
     "state_dict": GSClip.state_dict(), "extra": {...}}

read back with ``torch.load(weights_only=True)`` (no pickled code runs), so ``extra`` may hold only
tensors, numbers, strings, booleans, None, and lists / tuples / dicts of them (an optimiser's
``state_dict()`` qualifies). Writes are atomic: a temporary file in the same folder, then a rename.
The frozen MiniLM text encoder is not stored (it comes from its package); everything else is.

:func:`load_open_clip_weights` reads an open_clip ``CLIP`` state dict (a ``.pt`` / ``.bin`` state dict,
a training checkpoint ``{"state_dict": ...}`` with or without DDP's ``module.`` prefix, or a
``.safetensors`` file), with or without the text tower, into a :class:`GSClip`.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .config import GSClipConfig, TextConfig, VisionConfig
from .errors import CheckpointError, ClipError, MissingExtraError
from .model import GSClip
from .text import OpenClipTextTransformer

FORMAT = "splatcodec.clip"
VERSION = 1

_SAFE_SCALARS = (str, int, float, bool, type(None), torch.Tensor, torch.dtype, torch.device)
#: Keys of open_clip's text tower in a CLIP state dict (top level; ``text.`` in CustomTextCLIP).
_TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
#: open_clip / OpenAI keys that carry no weights we use.
_IGNORED_KEYS = ("logit_bias", "attn_mask", "input_resolution", "context_length", "vocab_size")


def _check_extra(value: Any, where: str = "extra") -> None:
    if isinstance(value, _SAFE_SCALARS):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_extra(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"{where} has a key of type {type(key).__name__}; use str or int")
            _check_extra(item, f"{where}[{key!r}]")
        return
    raise CheckpointError(f"{where} holds a {type(value).__name__}, which a safe checkpoint load cannot "
                          "read back; store tensors, numbers, strings or containers of them")


def save_checkpoint(path: str | os.PathLike, model: GSClip, *, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (config + state dict) and ``extra`` to ``path`` atomically; returns the path."""
    if not isinstance(model, GSClip):
        raise CheckpointError(f"save_checkpoint needs a GSClip, got {type(model).__name__}")
    extra = dict(extra or {})
    _check_extra(extra)
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
               "state_dict": state, "extra": extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _torch_load(path: Path, device: str | torch.device) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file (UnpicklingError, RuntimeError, ...)
        first = (str(exc).strip().splitlines() or [""])[0]  # torch's unpickler messages run for pages
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {first}") from exc


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[GSClip, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(model in eval mode on device, extra)``.

    Raises :class:`CheckpointError` for a missing or unreadable file, another format or version, a
    bad config, or a state dict that does not fit the config.
    """
    path = Path(path)
    data = _torch_load(path, device)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a splatcodec.clip checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {data.get('version')!r}; this splatcodec "
                              f"reads version {VERSION}")
    for key in ("config", "state_dict", "extra"):
        if not isinstance(data.get(key), dict):
            raise CheckpointError(f"{path} lacks a valid {key!r} entry")
    try:
        config = GSClipConfig.from_dict(data["config"])
        model = GSClip(config)
    except ClipError as exc:
        raise CheckpointError(f"{path} has an invalid model config: {exc}") from exc
    _load_strict(model, data["state_dict"], str(path))
    return model.to(device).eval(), data["extra"]


def _load_strict(module: torch.nn.Module, state: Mapping[str, Any], what: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state)
                   if not isinstance(state[k], torch.Tensor) or state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(f"{what} does not fit the model: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, wrong shape {wrong[:5]}")
    module.load_state_dict(state, strict=True)


# -- open_clip weights -----------------------------------------------------------------------------
def read_open_clip_state_dict(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """An open_clip CLIP state dict from a file or mapping, unwrapped (``state_dict`` entry, ``module.``)."""
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(source)
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError as exc:
                raise MissingExtraError("reading .safetensors needs the safetensors package") from exc
            if not path.is_file():
                raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
            try:
                state = load_file(str(path))
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                raise CheckpointError(f"cannot read {path}: {first}") from exc
        else:
            state = _torch_load(path, "cpu")
    if isinstance(state.get("state_dict"), Mapping):
        state = dict(state["state_dict"])
    if not state or not all(isinstance(k, str) for k in state):
        raise CheckpointError("not an open_clip state dict (no string keys)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _split(state: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    visual, text, rest = {}, {}, {}
    for key, value in state.items():
        if key.startswith("visual."):
            visual[key[len("visual."):]] = value
        elif key.startswith("text."):
            text[key[len("text."):]] = value  # open_clip's CustomTextCLIP keeps its tower under text.
        elif key.startswith(_TEXT_PREFIXES):
            text[key] = value
        else:
            rest[key] = value
    return visual, text, rest


def config_from_open_clip_state_dict(source, *, text: str = "minilm", quick_gelu: bool = False,
                                     head_width: int = 64) -> GSClipConfig:
    """A config whose backbone (and, with ``text="open_clip"``, text tower) fits an open_clip state dict.
    Head counts and the activation are not visible in the weights: open_clip's ViTs use 64-wide heads
    (``head_width``), OpenAI's original weights QuickGELU (``quick_gelu=True``)."""
    visual, text_sd, _ = _split(read_open_clip_state_dict(source))
    try:
        width, _, patch, _ = visual["conv1.weight"].shape
        grid = math.isqrt(visual["positional_embedding"].shape[0] - 1)
        layers = len({k.split(".")[2] for k in visual if k.startswith("transformer.resblocks.")})
        mlp_ratio = visual["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width
        embed_dim = visual["proj"].shape[1]
        vision = VisionConfig(image_size=grid * patch, patch_size=patch, width=width, layers=layers,
                              head_width=head_width, mlp_ratio=mlp_ratio, quick_gelu=quick_gelu)
        text_cfg = TextConfig(tower=text)
        if text == "open_clip":
            t_vocab, t_width = text_sd["token_embedding.weight"].shape
            t_layers = len({k.split(".")[2] for k in text_sd if k.startswith("transformer.resblocks.")})
            text_cfg = TextConfig(tower=text, context_length=text_sd["positional_embedding"].shape[0],
                                  vocab_size=t_vocab, width=t_width, heads=max(1, t_width // 64),
                                  layers=t_layers, quick_gelu=quick_gelu,
                                  mlp_ratio=text_sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / t_width)
    except (KeyError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"not an open_clip ViT state dict{' with a text tower' if text == 'open_clip' else ''}"
                              f" (missing or odd {exc})") from exc
    return GSClipConfig(name="open_clip", embed_dim=int(embed_dim), vision=vision, text=text_cfg)


def resize_positional_embedding(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """[1 + g*g, width] -> [1 + grid*grid, width]: the patch part resized bicubically (antialiased),
    as open_clip does when a checkpoint meets another image size; the CLS row is kept."""
    old = math.isqrt(pos.shape[0] - 1)
    if old * old != pos.shape[0] - 1:
        raise CheckpointError(f"positional_embedding of {pos.shape[0]} rows is not 1 + a square grid")
    patches = pos[1:].reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", antialias=True, align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(grid * grid, -1).to(pos.dtype)
    return torch.cat([pos[:1], patches], dim=0)


def load_open_clip_weights(model: GSClip, source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """Copy an open_clip CLIP state dict into ``model``: the image tower into ``model.visual`` (its
    positional embedding resized if the grid differs), the text tower (if the file has one and the
    model's text tower is open_clip's) into ``model.text``, and ``logit_scale``. The splat stem and
    resampler are untouched. Returns a report: ``{"visual": True, "text": bool, "logit_scale": bool,
    "resized_positional_embedding": bool, "ignored": [keys]}``; raises :class:`CheckpointError` when
    the image tower (or a present text tower the model should take) does not fit the model's config.
    """
    visual, text_sd, rest = _split(read_open_clip_state_dict(source))
    if not visual:
        raise CheckpointError("the state dict has no image tower (no 'visual.' keys)")
    report: dict[str, Any] = {"visual": True, "text": False, "logit_scale": False,
                              "resized_positional_embedding": False, "ignored": []}
    grid = model.visual.grid_size
    pos = visual.get("positional_embedding")
    if isinstance(pos, torch.Tensor) and pos.ndim == 2 and pos.shape[0] != grid * grid + 1 \
            and pos.shape[1] == model.visual.width:
        visual["positional_embedding"] = resize_positional_embedding(pos, grid)
        report["resized_positional_embedding"] = True
    _load_strict(model.visual, visual, "the open_clip image tower")
    if text_sd:
        if isinstance(model.text, OpenClipTextTransformer):
            _load_strict(model.text, text_sd, "the open_clip text tower")
            report["text"] = True
        else:
            report["ignored"] += sorted(text_sd)  # the model's text tower is MiniLM
    for key, value in rest.items():
        if key == "logit_scale" and isinstance(value, torch.Tensor) and value.numel() == 1:
            with torch.no_grad():
                model.logit_scale.copy_(value.reshape(()))
            report["logit_scale"] = True
        elif key in _IGNORED_KEYS:
            report["ignored"].append(key)
        else:
            raise CheckpointError(f"unsupported key {key!r} in the open_clip state dict (a non-ViT or "
                                  "non-default tower?)")
    return report
