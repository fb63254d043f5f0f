"""``splatcodec clip ...``: train, zeroshot, retrieval, embed. torch is imported only inside commands,
so ``splatcodec --help`` stays fast; errors end as one ``splatcodec: error: ...`` line."""
from __future__ import annotations

import json
from typing import Any, Sequence

import click

from ..cli_errors import OneLineErrorGroup

_RATE_HELP = "Rate for GS input made from images (default: the checkpoint's training settings)."


def _rate_options(fn: Any) -> Any:
    """--quality/--bpp/--bytes/--gaussians/--effort/--fit/--iterations/--cache: how images become Gaussians."""
    opts = [
        click.option("--quality", type=click.FloatRange(0, 100), help="Encode at this quality (0..100)."),
        click.option("--bpp", type=click.FloatRange(min=0, min_open=True), help="Encode at these bits per pixel."),
        click.option("--bytes", "target_bytes", type=click.IntRange(min=1), help="Encode at this many bytes per image."),
        click.option("--gaussians", type=click.IntRange(min=1), help="Encode (or fit) this many Gaussians."),
        click.option("--effort", type=click.IntRange(1, 9), help="Encoder effort 1..9 [4]."),
        click.option("--fit", "fit_mode", is_flag=True,
                     help="Fit unquantised Gaussians (fit_batch, needs --gaussians) instead of encoding files."),
        click.option("--iterations", type=click.IntRange(min=1), help="Fit iterations with --fit [500]."),
        click.option("--cache", "cache_dir", type=click.Path(file_okay=False),
                     help="Cache of made Gaussians [$SPLATCODEC_CLIP_CACHE or ~/.cache/splatcodec/clip]."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _settings(base: dict | None, quality: float | None, bpp: float | None, target_bytes: int | None,
              gaussians: int | None, effort: int | None, fit_mode: bool, iterations: int | None) -> Any:
    from .cache import GaussianSettings

    settings = GaussianSettings.from_dict(base) if base else GaussianSettings()
    if fit_mode:
        settings = settings.replace(mode="fit")
    rate = dict(quality=quality, target_bpp=bpp, target_bytes=target_bytes, num_gaussians=gaussians)
    if any(v is not None for v in rate.values()):
        settings = settings.replace(**rate)
    return settings.replace(effort=effort, iterations=iterations)


def _list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
def clip() -> None:
    """GS-CLIP: language-aligned embeddings of images and .gsplat files (needs splatcodec[clip])."""


@clip.command()
@click.argument("data")
@click.option("--stage", type=click.Choice(["rgb", "distill", "contrastive"]), required=True,
              help="rgb: RGB CLIP vs the frozen text tower; distill: GS student from the RGB teacher; "
                   "contrastive: GS path vs the text tower.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--images", type=click.Path(file_okay=False), help="Image folder of a captions CSV.")
@click.option("--model", default="tiny", show_default=True, help="Config name (tiny, ViT-M-16, ...) or a .json config.")
@click.option("--param", type=click.Choice(["log_ab_shear", "scale_rotation"]), help="Covariance parameterisation.")
@click.option("--init", type=click.Path(dir_okay=False), help="Start from this checkpoint (needed by distill/contrastive).")
@click.option("--open-clip-weights", type=click.Path(dir_okay=False), help="Initialise from an open_clip state dict.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.05, show_default=True)
@click.option("--warmup", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Warm-up steps (a value < 1: a fraction of all steps).")
@click.option("--grad-clip", type=click.FloatRange(min=0), default=1.0, show_default=True, help="0: no clipping.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--per-class", type=click.IntRange(min=1), help="Use at most this many images per class.")
@click.option("--classes", help="Comma-separated classes to use (ImageFolder).")
@click.option("--exclude-classes", help="Comma-separated classes to leave out (held-out zero-shot).")
@click.option("--templates", type=click.Path(dir_okay=False), help="Prompt templates file, one per line with {}.")
@click.option("--unfreeze-blocks", type=click.IntRange(min=0), default=0, show_default=True,
              help="contrastive: also train the first k backbone blocks (and ln_post/proj).")
@click.option("--token-distill", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="distill: weight of a token-level loss (each latent vs the teacher's patch token).")
@_rate_options
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads (default: torch's choice).")
@click.option("--resume", is_flag=True, help="Continue the run in --out (a finished run is not redone).")
@click.option("--stop-after", type=click.IntRange(min=1), help="Stop after this many epochs (resume later).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(data: str, stage: str, out: str, images: str | None, model: str, param: str | None, init: str | None,
          open_clip_weights: str | None, epochs: int, batch_size: int, lr: float, weight_decay: float,
          warmup: float, grad_clip: float, seed: int, val_fraction: float, per_class: int | None,
          classes: str | None, exclude_classes: str | None, templates: str | None, unfreeze_blocks: int,
          token_distill: float,
          quality: float | None, bpp: float | None, target_bytes: int | None, gaussians: int | None,
          effort: int | None, fit_mode: bool, iterations: int | None, cache_dir: str | None, device: str,
          threads: int | None, resume: bool, stop_after: int | None, quiet: bool) -> None:
    """Train a stage on DATA (class folders, a captions .csv, or WebDataset .tar shards); one JSON line
    per epoch on stdout."""
    from .train import TrainArgs, train as run

    rate_given = any(v is not None for v in (quality, bpp, target_bytes, gaussians, effort, iterations)) or fit_mode
    gs = _settings(None, quality, bpp, target_bytes, gaussians, effort, fit_mode, iterations).to_dict() \
        if rate_given and stage != "rgb" else None
    run(TrainArgs(stage=stage, data=data, out=out, images=images, model=model, param=param, init=init,
                  open_clip_weights=open_clip_weights, epochs=epochs, batch_size=batch_size, lr=lr,
                  weight_decay=weight_decay, warmup=warmup, grad_clip=grad_clip, seed=seed,
                  val_fraction=val_fraction, per_class=per_class, classes=_list(classes),
                  exclude_classes=_list(exclude_classes) or [], templates=templates,
                  unfreeze_blocks=unfreeze_blocks, token_distill=token_distill, gaussians=gs, cache_dir=cache_dir, device=device,
                  threads=threads, resume=resume, stop_after=stop_after, quiet=quiet))


def _load(checkpoint: str, device: str) -> Any:
    from .api import load

    return load(checkpoint, device=device)


def _gs_settings(model: Any, input: str, **rate: Any) -> Any:
    if input != "gs":
        return None
    base = model.encode_settings.to_dict() if model.encode_settings is not None else None
    return _settings(base, **rate)


def _print_scores(result: dict, as_json: bool, keys: Sequence[str]) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    for key in keys:
        if result.get(key) is not None:
            value = result[key]
            click.echo(f"{key:>16}: {value:.4f}" if isinstance(value, float) else f"{key:>16}: {value}")


@clip.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="A GS-CLIP checkpoint.")
@click.option("--input", "input_", type=click.Choice(["rgb", "gs"]), default="rgb", show_default=True,
              help="rgb: the teacher on pixels; gs: the student on Gaussians (.gsplat files or encoded images).")
@_rate_options
@click.option("--templates", type=click.Path(dir_okay=False), help="Prompt templates (default: the checkpoint's).")
@click.option("--per-class", type=click.IntRange(min=1), help="Use at most this many images per class.")
@click.option("--classes", help="Comma-separated classes (default: all folders).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def zeroshot(directory: str, checkpoint: str, input_: str, templates: str | None, per_class: int | None,
             classes: str | None, batch_size: int, device: str, as_json: bool, cache_dir: str | None,
             **rate: Any) -> None:
    """Zero-shot classification of an ImageFolder DIRECTORY: top-1, top-5, per class (and bytes for gs)."""
    from . import evaluate
    from .cache import default_cache_dir
    from .data import image_folder, per_class_subset
    from .prompts import load_templates

    model = _load(checkpoint, device)
    dataset = image_folder(directory, classes=_list(classes))
    if per_class:
        dataset = per_class_subset(dataset, per_class)
    result = evaluate.zeroshot(model.model, dataset, input_, templates=load_templates(templates) if templates
                               else model.templates, settings=_gs_settings(model, input_, **rate),
                               cache_dir=cache_dir or default_cache_dir(), batch_size=batch_size, device=model.device)
    _print_scores(result, as_json, ["input", "n", "classes", "top1", "top5", "chance_top1", "mean_gaussians",
                                    "mean_bytes", "compression"])
    if not as_json:
        for name, acc in result["per_class"].items():
            click.echo(f"{name:>16}: {acc:.4f}" if acc is not None else f"{name:>16}: -")


@clip.command()
@click.argument("captions", type=click.Path(exists=True, dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="A GS-CLIP checkpoint.")
@click.option("--images", type=click.Path(file_okay=False), help="Image folder [images/ beside the CSV].")
@click.option("--input", "input_", type=click.Choice(["rgb", "gs"]), default="rgb", show_default=True)
@_rate_options
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def retrieval(captions: str, checkpoint: str, images: str | None, input_: str, batch_size: int, device: str,
              as_json: bool, cache_dir: str | None, **rate: Any) -> None:
    """Text<->image retrieval on a captions CSV: image->text and text->image recall@1/5/10."""
    from . import evaluate
    from .cache import default_cache_dir
    from .data import captions_csv

    model = _load(checkpoint, device)
    result = evaluate.retrieval(model.model, captions_csv(captions, images), input_,
                                settings=_gs_settings(model, input_, **rate), cache_dir=cache_dir or default_cache_dir(),
                                batch_size=batch_size, device=model.device)
    _print_scores(result, as_json, ["input", "images", "texts"] + [f"{d}_r@{k}" for d in ("i2t", "t2i")
                                                                   for k in (1, 5, 10)] + ["mean_bytes", "compression"])


@clip.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="A GS-CLIP checkpoint.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Embeddings .npy [N, D].")
@click.option("--input", "input_", type=click.Choice(["auto", "rgb", "gs"]), default="auto", show_default=True,
              help="auto: .gsplat files through the GS path, images through the RGB teacher; "
                   "gs: images are encoded first (the checkpoint's settings).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the files, shape and path taken as JSON.")
def embed(files: tuple[str, ...], checkpoint: str, output: str, input_: str, batch_size: int, device: str,
          as_json: bool) -> None:
    """L2-normalised embeddings of FILES (.gsplat files and/or images), in order, to -o OUTPUT (.npy)."""
    import io

    import numpy as np

    from ..fileio import atomic_write
    from .data import GSPLAT_EXTENSION

    model = _load(checkpoint, device)
    is_gs = [f.lower().endswith(GSPLAT_EXTENSION) for f in files]
    if input_ == "rgb" and any(is_gs):
        raise click.UsageError("--input rgb needs image files, got .gsplat files")
    route = ["gs" if g or input_ == "gs" else "rgb" for g in is_gs]
    out = np.zeros((len(files), model.embed_dim), np.float32)
    gs_idx = [i for i, r in enumerate(route) if r == "gs"]
    rgb_idx = [i for i, r in enumerate(route) if r == "rgb"]
    if gs_idx:
        from_images = [i for i in gs_idx if not is_gs[i]]
        made = dict(zip(from_images, model.gaussians_from_images([files[i] for i in from_images]))) \
            if from_images else {}
        out[gs_idx] = model.encode_splats([made.get(i, files[i]) for i in gs_idx], batch_size=batch_size)
    if rgb_idx:
        out[rgb_idx] = model.encode_image([files[i] for i in rgb_idx], batch_size=batch_size)
    buf = io.BytesIO()
    np.save(buf, out, allow_pickle=False)
    atomic_write(output, buf.getvalue())
    if as_json:
        click.echo(json.dumps({"output": output, "shape": list(out.shape), "files": list(files), "input": route}))
    else:
        click.echo(f"{output}: {out.shape[0]} embeddings of dimension {out.shape[1]}", err=True)


__all__ = ["clip"]
