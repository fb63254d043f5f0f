"""Training of GS-CLIP in three stages (``splatcodec clip train``, ``python -m splatcodec.clip train``).

* ``rgb``: contrastive RGB CLIP (visual tower + text projection) against the frozen text tower.
* ``distill`` (paper stage 1): splat stem + resampler learn to reproduce, from Gaussians, the frozen
  RGB teacher's embedding of the same image: loss = mean over images of ||s - t||^2 of the
  L2-normalised student (s) and teacher (t) embeddings (= 2 - 2 cos); with ``token_distill`` w > 0,
  plus w * the mean squared difference of the trunk's input tokens (latent i vs the teacher's patch
  token i, after ``ln_pre``: :func:`token_distill_loss`), which tells the resampler what each latent
  should carry instead of leaving it to the single embedding's gradient.
* ``contrastive`` (paper stage 2): the GS path against the frozen text tower, optionally with the
  first ``unfreeze_blocks`` backbone blocks and the final norm/projection unfrozen.

The contrastive loss: on labelled data, cross-entropy of ``exp(logit_scale) * image @ classes^T``
against the label, where ``classes`` holds each class name in a template drawn per step (CLIP's loss
with the batch's duplicate prompts merged); on captioned data, the symmetric InfoNCE loss over the
batch with one caption per image drawn per epoch. AdamW (weight decay on matrices only), linear
warm-up then cosine decay to zero per step, gradient-norm clipping. Everything random comes from
``seed``: model init (torch), the order of each epoch and the drawn prompts/captions
(numpy ``default_rng([seed, epoch])``); the split comes from hashed keys (:func:`data.split`).

A run directory holds ``checkpoint.pt`` (the model, loadable by ``splatcodec.clip.load``), ``resume.pt``
(model, optimizer, schedule and RNG state after the last finished epoch), ``split.json``, ``args.json``
and ``log.jsonl`` (the JSON line printed after each epoch). ``--resume`` continues from
``resume.pt``; a finished run is not redone.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cache import GaussianCache, GaussianSettings, default_cache_dir, gaussians_for
from .data import load_pixels, open_dataset, per_class_subset, split
from .errors import CheckpointError, ClipInputError, require_torch
from .prompts import DEFAULT_TEMPLATES, load_templates, prompts

STAGES = ("rgb", "distill", "contrastive")
#: args that may differ when a run is resumed (they do not change what is computed).
RESUME_FREE = ("resume", "quiet", "stop_after", "cache_dir", "device", "threads")


@dataclass
class TrainArgs:
    """All settings of a training run (the CLI's options)."""

    stage: str
    data: str
    out: str
    images: str | None = None
    model: str = "tiny"
    param: str | None = None
    init: str | None = None
    open_clip_weights: str | None = None
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    val_fraction: float = 0.1
    per_class: int | None = None
    classes: list[str] | None = None
    exclude_classes: list[str] = field(default_factory=list)
    templates: str | None = None
    unfreeze_blocks: int = 0
    token_distill: float = 0.0
    gaussians: dict | None = None
    cache_dir: str | None = None
    device: str = "cpu"
    threads: int | None = None
    resume: bool = False
    stop_after: int | None = None
    quiet: bool = False

    def check(self) -> None:
        if self.stage not in STAGES:
            raise ClipInputError(f"stage must be one of {STAGES}, got {self.stage!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ClipInputError(f"{name} must be >= 1")
        if self.token_distill < 0 or (self.token_distill > 0 and self.stage != "distill"):
            raise ClipInputError("token_distill is a weight >= 0 of the distill stage's loss")
        if self.stage != "rgb" and self.init is None and self.open_clip_weights is None:
            raise ClipInputError(f"the {self.stage} stage needs a trained RGB teacher: --init CKPT "
                                 "(e.g. from the rgb stage) or --open-clip-weights FILE")


def build_model(args: TrainArgs) -> tuple[Any, dict]:
    """The model to train and the extra of the checkpoint it came from (empty when new)."""
    torch = require_torch()
    from .checkpoint import load_checkpoint, load_open_clip_weights
    from .config import GSClipConfig, StemConfig
    from .model import GSClip

    if args.init is not None:
        model, extra = load_checkpoint(args.init, device="cpu")
        if args.param is not None and args.param != model.config.stem.param:
            # A new splat stem for the other covariance parameterisation (its input width differs); every
            # other weight is kept, so one RGB teacher serves both in a comparison.
            config = GSClipConfig.from_dict(model.config.to_dict())
            config.stem = StemConfig(**{**asdict(config.stem), "param": args.param})
            torch.manual_seed(args.seed)
            fresh = GSClip(config)
            kept = {k: v for k, v in model.state_dict().items() if not k.startswith("splat_stem.")}
            result = fresh.load_state_dict(kept, strict=False)
            if result.unexpected_keys or any(not k.startswith("splat_stem.") for k in result.missing_keys):
                raise CheckpointError(f"{args.init}: weights do not fit a model with --param {args.param}")
            model, extra = fresh, {k: v for k, v in extra.items() if k != "encode_settings"}
        return model, extra
    if args.model.lower().endswith(".json"):
        try:
            with open(args.model, encoding="utf-8") as fh:
                config = GSClipConfig.from_dict(json.load(fh))
        except (OSError, ValueError) as exc:
            raise ClipInputError(f"{args.model}: cannot read the model config: {exc}") from None
    else:
        config = GSClipConfig.from_name(args.model)
    if args.param is not None:
        config.stem = StemConfig(**{**asdict(config.stem), "param": args.param})
        config.validate()
    torch.manual_seed(args.seed)
    model = GSClip(config)
    if args.open_clip_weights is not None:
        load_open_clip_weights(model, args.open_clip_weights)
    return model, {}


def _schedule(total_steps: int, warmup: float):
    warm = max(1, int(round(warmup * total_steps)) if warmup < 1 else int(warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def make_optimizer(model: Any, args: TrainArgs, total_steps: int) -> tuple[Any, Any]:
    """AdamW over the trainable parameters (decay on >= 2-d weights only) and its LambdaLR schedule."""
    torch = require_torch()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ClipInputError(f"the {args.stage} stage leaves no parameter to train")
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=args.lr)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, _schedule(total_steps, args.warmup))


class _Data:
    """The prepared training data: pixels and/or Gaussians of the train and validation items."""

    def __init__(self, args: TrainArgs, model: Any, extra: dict) -> None:
        dataset = open_dataset(args.data, images=args.images, classes=args.classes, exclude=args.exclude_classes)
        if args.per_class is not None:
            dataset = per_class_subset(dataset, args.per_class)
        if not (dataset.labelled or dataset.captioned) and args.stage != "distill":
            raise ClipInputError(f"{args.data}: the {args.stage} stage needs class labels or captions")
        self.dataset = dataset
        self.templates = load_templates(args.templates) if args.templates else list(DEFAULT_TEMPLATES)
        train_idx, val_idx = split(dataset, args.val_fraction)
        self.train, self.val = dataset.subset(train_idx), dataset.subset(val_idx)
        self.split = {"method": "per class, first round(fraction*n) by sha256('split:'+key) are validation",
                      "val_fraction": args.val_fraction, "per_class": args.per_class,
                      "train": [it.key for it in self.train.items], "val": [it.key for it in self.val.items]}
        size = model.config.vision.image_size
        gs = args.stage != "rgb"
        self.settings: GaussianSettings | None = None
        if gs:
            base = extra.get("encode_settings") if args.gaussians is None else None
            self.settings = GaussianSettings.from_dict(base or args.gaussians or {})
        need_px = args.stage in ("rgb", "distill") or any(it.gsplat is None for it in dataset.items)
        self.pixels = {name: load_pixels(part.items, size) if need_px else None
                       for name, part in (("train", self.train), ("val", self.val))}
        self.gaussians: dict[str, list | None] = {"train": None, "val": None}
        if gs:
            cache = GaussianCache(self.settings, args.cache_dir or default_cache_dir())  # type: ignore[arg-type]
            for name, part in (("train", self.train), ("val", self.val)):
                with _bar(len(part), f"Gaussians ({name})", args.quiet) as bar:
                    self.gaussians[name] = gaussians_for(part.items, self.pixels[name], cache, bar.update)
        if args.stage != "distill" and dataset.labelled:  # load the text tower now, not in epoch 1's timing
            with require_torch().no_grad():
                model.encode_text([t for per_class in prompts(dataset.classnames or [], self.templates)
                                   for t in per_class])
        self.has_bytes = gs and all(e.nbytes is not None for e in self.gaussians["train"] or [])


class _bar:
    """A click progress bar on stderr (nothing when quiet)."""

    def __init__(self, length: int, label: str, quiet: bool) -> None:
        import click

        self.bar = None if quiet or length == 0 else click.progressbar(length=length, label=label, file=sys.stderr)

    def __enter__(self) -> "_bar":
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _loss(model: Any, args: TrainArgs, data: _Data, idx: np.ndarray, rng: np.random.Generator,
          captions: list[str] | None) -> Any:
    torch = require_torch()
    from .evaluate import pixels_tensor, splat_tensors

    F = torch.nn.functional
    if args.stage == "rgb":
        emb = model.encode_image(pixels_tensor(model, data.pixels["train"][idx], args.device))
    else:
        splats = [data.gaussians["train"][i].splats for i in idx]  # type: ignore[index]
        tokens = model.gaussian_tokens(*splat_tensors(model, splats, args.device))
        emb = F.normalize(model.visual.encode_tokens(tokens), dim=-1)
    if args.stage == "distill":
        with torch.no_grad():
            teacher_tokens = model.visual.embed_pixels(pixels_tensor(model, data.pixels["train"][idx], args.device))
            teacher = F.normalize(model.visual.encode_tokens(teacher_tokens), dim=-1)
        loss = ((emb - teacher) ** 2).sum(dim=-1).mean()
        if args.token_distill > 0:
            loss = loss + args.token_distill * token_distill_loss(tokens, teacher_tokens)
        return loss
    scale = model.logit_scale.exp().clamp(max=100.0)
    if data.train.labelled:
        names = data.train.classnames or []
        per_class = prompts(names, data.templates)
        texts = [per_class[c][rng.integers(len(data.templates))] for c in range(len(names))]
        classes = F.normalize(model.encode_text(texts), dim=-1)
        labels = torch.as_tensor(np.array([data.train.items[i].label for i in idx]), device=emb.device)
        return F.cross_entropy(scale * emb @ classes.T, labels)
    text = F.normalize(model.encode_text([captions[i] for i in idx]), dim=-1)  # type: ignore[index]
    logits = scale * emb @ text.T
    target = torch.arange(len(idx), device=emb.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def token_distill_loss(student_tokens: Any, teacher_tokens: Any) -> Any:
    """Mean squared difference of the patch tokens (after ``ln_pre``, CLS excluded), per element.

    Latent ``i`` is compared with patch ``i``: it carries that patch's positional embedding, so
    the resampler learns which Gaussians make up which patch. Needs as many latents as patches."""
    if student_tokens.shape != teacher_tokens.shape:
        raise ClipInputError(f"token distillation needs as many latents as patches: student tokens "
                             f"{list(student_tokens.shape)}, teacher tokens {list(teacher_tokens.shape)}")
    return ((student_tokens[:, 1:] - teacher_tokens[:, 1:]) ** 2).mean()


def validate(model: Any, args: TrainArgs, data: _Data) -> dict[str, Any]:
    """The validation metric: zero-shot top-1 (labelled) or mean recall@1 (captions), or the distill loss."""
    torch = require_torch()
    from . import evaluate as ev

    if len(data.val) == 0:
        return {}
    model.eval()
    with torch.no_grad():
        if args.stage == "rgb":
            emb = ev.embed_pixels(model, data.pixels["val"], args.batch_size, args.device)
        else:
            emb = ev.embed_splats(model, [e.splats for e in data.gaussians["val"]], args.batch_size, args.device)
        out: dict[str, Any] = {}
        if args.stage == "distill":
            teacher = ev.embed_pixels(model, data.pixels["val"], args.batch_size, args.device)
            out["val_distill_loss"] = float(((emb - teacher) ** 2).sum(-1).mean())
            out["val_cosine"] = float((emb * teacher).sum(-1).mean())
        if data.val.labelled:
            scores = ev.zeroshot_scores(emb, ev.class_text_embeddings(model, data.val.classnames or [],
                                                                       data.templates),
                                        data.val.labels(), data.val.classnames or [])
            out.update(val_top1=scores["top1"], val_top5=scores["top5"])
        elif data.val.captioned:
            texts = [c for it in data.val.items for c in it.captions]
            owner = np.array([i for i, it in enumerate(data.val.items) for _ in it.captions])
            text = torch.nn.functional.normalize(model.encode_text(texts).float(), dim=-1)
            r = ev.retrieval_scores(emb, text, owner)
            out.update(val_i2t_r1=r["i2t_r@1"], val_t2i_r1=r["t2i_r@1"])
    return out


def _write_json(path: Path, obj: Any) -> None:
    from ..fileio import atomic_write

    atomic_write(path, (json.dumps(obj, indent=1) + "\n").encode())


def _args_dict(args: TrainArgs) -> dict:
    return {k: v for k, v in asdict(args).items() if k not in RESUME_FREE}


def train(args: TrainArgs) -> dict[str, Any]:
    """Runs (or resumes) a training run; returns the last epoch's log record."""
    torch = require_torch()
    from .checkpoint import save_checkpoint

    args.check()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    resume_path, ckpt_path = out / "resume.pt", out / "checkpoint.pt"
    state = None
    if resume_path.exists() or ckpt_path.exists():
        if not args.resume:
            raise ClipInputError(f"{out} already holds a run: pass --resume to continue it, or another --out")
        if not resume_path.exists():
            raise CheckpointError(f"{resume_path} is missing: the run in {out} cannot be resumed")
        try:
            state = torch.load(resume_path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise CheckpointError(f"{resume_path}: unreadable resume state: {exc}") from None
        if state.get("args") != _args_dict(args):
            changed = sorted(k for k in _args_dict(args) if state.get("args", {}).get(k) != _args_dict(args)[k])
            raise ClipInputError(f"--resume with different settings than the run in {out}: {', '.join(changed)}")
        if state["epoch"] >= args.epochs:
            if not args.quiet:
                print(f"{out}: all {args.epochs} epochs are done", file=sys.stderr)
            return state["history"][-1] if state["history"] else {}
    out.mkdir(parents=True, exist_ok=True)
    model, extra = build_model(args)
    model.set_stage(args.stage, unfreeze_blocks=args.unfreeze_blocks)
    model.to(args.device)
    data = _Data(args, model, extra)
    if len(data.train) < 1:
        raise ClipInputError(f"{args.data}: no training items after the split")
    steps_per_epoch = math.ceil(len(data.train) / args.batch_size)
    opt, sched = make_optimizer(model, args, steps_per_epoch * args.epochs)
    start, history = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start, history = state["epoch"], state["history"]
    else:
        _write_json(out / "split.json", data.split)
        _write_json(out / "args.json", asdict(args))
    captions_of = [list(it.captions) for it in data.train.items]
    end = args.epochs if args.stop_after is None else min(args.epochs, start + args.stop_after)
    record: dict[str, Any] = history[-1] if history else {}
    for epoch in range(start, end):
        rng = np.random.default_rng([args.seed, epoch])
        order = rng.permutation(len(data.train))
        captions = [c[rng.integers(len(c))] if c else "" for c in captions_of]
        model.train()
        t0, total, seen = time.perf_counter(), 0.0, 0
        with _bar(steps_per_epoch, f"{args.stage} epoch {epoch + 1}/{args.epochs}", args.quiet) as bar:
            for step in range(steps_per_epoch):
                idx = order[step * args.batch_size:(step + 1) * args.batch_size]
                loss = _loss(model, args, data, idx, rng, captions)
                if not torch.isfinite(loss):
                    raise ClipInputError(f"the loss became {float(loss)} at epoch {epoch + 1}; lower --lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if args.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                   args.grad_clip)
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                bar.update(1)
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch + 1, "stage": args.stage, "loss": total / seen, "lr": sched.get_last_lr()[0],
                  "images_per_s": seen / seconds, "seconds": round(seconds, 3), **validate(model, args, data)}
        history.append(record)
        extra_out = {"stage": args.stage, "epoch": epoch + 1, "epochs": args.epochs, "templates": data.templates,
                     "classnames": data.dataset.classnames, "train_args": _args_dict(args),
                     "trainable_fraction": float(model.trainable_fraction()), "last": record}
        if data.settings is not None:
            extra_out["encode_settings"] = data.settings.to_dict()
        elif "encode_settings" in extra:
            extra_out["encode_settings"] = extra["encode_settings"]
        tmp = resume_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "torch_rng": torch.get_rng_state(), "epoch": epoch + 1, "history": history,
                    "args": _args_dict(args)}, tmp)
        os.replace(tmp, resume_path)
        save_checkpoint(ckpt_path, model, extra=extra_out)
        line = json.dumps(record)
        with open(out / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        print(line, flush=True)
    return record
