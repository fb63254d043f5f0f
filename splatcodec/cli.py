"""The ``splatcodec`` command: encode images to ``.gsplat``, decode them, and describe them.

User mistakes (missing files, unreadable images, corrupt ``.gsplat`` data, bad option values) end
with one ``splatcodec: error: ...`` line on stderr and a non-zero exit status, never a traceback:
1 for errors while working, 2 for bad usage, 130 after Ctrl-C (SIGINT), 143 after SIGTERM (the group
class and helpers: :mod:`splatcodec.cli_errors`). How inputs are read and which outputs may be
replaced: :mod:`splatcodec.cli_io`.
"""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import click

from .cli_errors import OneLineErrorGroup, fail
from .errors import SplatcodecError
from .limits import DEFAULT_MAX_PIXELS

#: File extensions a directory input contributes (case-insensitive).
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pnm",
                    ".tga"}
SUFFIX = ".gsplat"

#: ``--device`` of encode and decode: where the fits / renders run (splatcodec._native.resolve_device).
_device_option = click.option(
    "--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
    help="Where to fit and render: the CPU, the GPU (needs splatcodec._core_cuda, see docs/cuda.md) or "
         "the GPU when usable.")


def _resolve_device(device: str) -> str:
    """The device of ``--device``, checked before any input is read (an unusable GPU is a one-line error)."""
    from ._native import resolve_device

    return resolve_device(device)


@click.group(cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="splatcodec", message="%(prog)s %(version)s")
def main() -> None:
    """Compress images as coloured 2D Gaussians (.gsplat files)."""


# ---------------------------------------------------------------------------------------- encode
def _expand_inputs(inputs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for item in inputs:
        if item != "-" and os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise click.UsageError(f"directory {item} holds no images")
            out.extend(found)
        elif item != "-" and not os.path.exists(item):
            raise SplatcodecError(f"{item}: no such file")
        else:
            out.append(item)
    return out


def _plan(inputs: list[str], output: str | None, suffix: str) -> list[tuple[str, str]]:
    """(input, output) pairs: one input -> -o file (or beside it), several -> -o directory (or beside each)."""
    if len(inputs) == 1:
        src = inputs[0]
        if output is None:
            if src == "-":
                raise click.UsageError("reading from stdin needs -o (a file or - for stdout)")
            output = str(Path(src).with_suffix(suffix))
        elif output != "-" and os.path.isdir(output):
            output = os.path.join(output, Path("stdin" if src == "-" else src).with_suffix(suffix).name)
        return [(src, output)]
    if "-" in inputs:
        raise click.UsageError("stdin (-) can only be used as the only input")
    if output == "-":
        raise click.UsageError("several inputs cannot all go to stdout")
    if output is not None and not os.path.isdir(output):
        raise click.UsageError(f"with several inputs, -o must be an existing directory: {output}")
    pairs = []
    for src in inputs:
        dst = Path(src).with_suffix(suffix)
        pairs.append((src, str(Path(output) / dst.name) if output else str(dst)))
    targets = [d for _, d in pairs]
    if len(set(targets)) != len(targets):
        raise click.UsageError("two inputs would be written to the same output file")
    return pairs


def _check_overwrite(pairs: list[tuple[str, str]], force: bool) -> None:
    from .cli_io import check_output_target

    for src, dst in pairs:
        if dst == "-":
            continue
        if src != "-" and os.path.exists(dst) and os.path.samefile(src, dst):
            raise click.UsageError(f"refusing to overwrite the input {src}")
        check_output_target(dst, force)


def _write_output(dst: str, data: bytes, force: bool) -> None:
    from .fileio import atomic_write

    if dst == "-":
        stream = click.get_binary_stream("stdout")
        stream.write(data)
        stream.flush()
        return
    from .cli_io import check_output_target

    check_output_target(dst, force)  # again: it may have appeared or changed while we worked
    try:
        atomic_write(dst, data, overwrite=force)
    except FileExistsError:
        raise click.UsageError(f"{dst} exists (use --force to overwrite)") from None


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file (one input), directory (several), or - for stdout.")
@click.option("-q", "--quality", type=click.FloatRange(0, 100), help="0..100, higher = bigger and better [75].")
@click.option("--target-bpp", type=click.FloatRange(min=0, min_open=True), help="Aim at this many bits per pixel.")
@click.option("--target-psnr", type=click.FloatRange(min=0, min_open=True), help="Aim at this PSNR in dB.")
@click.option("--gaussians", type=click.IntRange(min=1),
              help="Fit this many Gaussians (at most the pixel count; on small images the stage pruning "
                   "may store fewer).")
@click.option("-e", "--effort", type=click.IntRange(1, 9), default=4, show_default=True,
              help="Time spent fitting, 1 (fast) .. 9 (slow, better).")
@click.option("--levels", type=click.IntRange(1, 64),
              help="Progressive groups (1 = not progressive) [default: 1 for images of at most 512x512 "
                   "pixels, else 4].")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True, help="0 = all cores.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--priors", "priors_path", metavar="FILE",
              help="Dataset priors from `splatcodec train-priors` (1.1 files need the same FILE to decode).")
@_device_option
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def encode(inputs: tuple[str, ...], output: str | None, quality: float | None, target_bpp: float | None,
           target_psnr: float | None, gaussians: int | None, effort: int, levels: int | None, threads: int, seed: int,
           priors_path: str | None, device: str, force: bool, quiet: bool) -> None:
    """Encode images (files, directories of images, or - for stdin) to .gsplat."""
    from .cli_io import read_image_input
    from .codec.api import encode as encode_image

    if sum(x is not None for x in (quality, target_bpp, target_psnr, gaussians)) > 1 and \
            not (quality is not None and gaussians is not None and target_bpp is None and target_psnr is None):
        raise click.UsageError("choose one of --quality, --target-bpp, --target-psnr (--gaussians may go with -q)")
    pairs = _plan(_expand_inputs(inputs), output, SUFFIX)
    _check_overwrite(pairs, force)
    priors = _load_priors(priors_path)  # before any work: a bad FILE fails up front
    device = _resolve_device(device)
    show = not quiet and len(pairs) > 1
    steps = _StepBar(enabled=not quiet and len(pairs) == 1)
    with click.progressbar(pairs, label="encoding", file=sys.stderr, show_pos=True) if show \
            else _nullbar(pairs) as bar:
        for src, dst in bar:
            pixels, metadata = read_image_input(src, max_pixels=DEFAULT_MAX_PIXELS)
            data, stats = encode_image(pixels, quality, target_bpp=target_bpp, target_psnr=target_psnr,
                                       num_gaussians=gaussians, effort=effort, levels=levels, threads=threads,
                                       seed=seed, metadata=metadata or None, return_stats=True,
                                       progress=steps.update, priors=priors, device=device)
            steps.close()
            _write_output(dst, data, force)
            if not quiet and dst != "-" and len(pairs) == 1:
                click.echo(f"{src} -> {dst}: {stats.bytes} bytes, {stats.bpp:.3f} bpp, "
                           f"{stats.psnr:.2f} dB, {stats.num_gaussians} Gaussians, {stats.seconds:.1f} s", err=True)


def _load_priors(path: str | None) -> Any:
    """The dataset priors of ``--priors FILE`` (None without it); a bad file is a one-line error."""
    if path is None:
        return None
    from .codec.priors import load

    return load(path)


class _StepBar:
    """Progress of one (long) encode on stderr: a bar over the fitting steps of each attempt."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.attempt = 0

    def update(self, step: int, total: int, label: str) -> None:
        if not self.enabled:
            return
        if self.bar is None or self.bar.pos >= self.bar.length:
            self.close()
            self.attempt += 1
            self.bar = click.progressbar(length=total, label=f"encoding (attempt {self.attempt})"
                                         if self.attempt > 1 else "encoding", file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(step - self.bar.pos, label)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class _nullbar:
    def __init__(self, items: list) -> None:
        self.items = items

    def __enter__(self) -> Iterator:
        return iter(self.items)

    def __exit__(self, *exc: object) -> None:
        return None


# ---------------------------------------------------------------------------------------- decode
@main.command()
@click.argument("input")
@click.option("-o", "--output", help="Output image (format from the extension) or - for PNG on stdout.")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), help="Render at this scale.")
@click.option("--width", type=click.IntRange(min=1), help="Output width (height keeps the aspect if not given).")
@click.option("--height", type=click.IntRange(min=1), help="Output height.")
@click.option("--max-gaussians", type=click.IntRange(min=0), help="Decode only a progressive prefix.")
@click.option("--max-pixels", type=click.IntRange(min=1), help="Raise the decoded-pixel safety limit.")
@click.option("--priors", "priors_path", metavar="FILE",
              help="Dataset priors from `splatcodec train-priors` the file was encoded with.")
@_device_option
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output.")
def decode(input: str, output: str | None, scale: float | None, width: int | None, height: int | None,
           max_gaussians: int | None, max_pixels: int | None, priors_path: str | None, device: str,
           force: bool) -> None:
    """Decode a .gsplat file (or - for stdin) to an image."""
    from .cli_io import read_gsplat
    from .codec import api
    from .image_io import write_image
    from .limits import Limits

    if scale is not None and (width is not None or height is not None):
        raise click.UsageError("--scale cannot be combined with --width/--height")
    if not os.path.exists(input) and input != "-":
        raise SplatcodecError(f"{input}: no such file")
    [(src, dst)] = _plan([input], output, ".png")
    _check_overwrite([(src, dst)], force)
    device = _resolve_device(device)
    limit = max_pixels or DEFAULT_MAX_PIXELS
    data = read_gsplat(src, Limits.for_decode(max_pixels=limit))
    pixels = api.decode(data, width=width, height=height, scale=scale, max_gaussians=max_gaussians, max_pixels=limit,
                        priors=_load_priors(priors_path), device=device)
    buf = io.BytesIO()
    ext = "png" if dst == "-" else Path(dst).suffix.lstrip(".").lower()
    from PIL import Image
    fmt = Image.registered_extensions().get("." + ext)
    if fmt is None:
        raise click.UsageError(f"unknown output image format: .{ext}")
    write_image(pixels, buf, format=fmt, metadata=api.metadata(data))
    _write_output(dst, buf.getvalue(), force)


# ---------------------------------------------------------------------------------------- info
@main.command()
@click.argument("input")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--priors", "priors_path", metavar="FILE",
              help="Dataset priors from `splatcodec train-priors` the file was encoded with.")
@click.option("--header-only", is_flag=True,
              help="Read only the header (no bits per attribute; works without the file's priors).")
def info(input: str, as_json: bool, priors_path: str | None, header_only: bool) -> None:
    """Describe a .gsplat file: size, Gaussians, bpp, bits per Gaussian by attribute, version."""
    from .cli_io import read_gsplat
    from .codec import api
    from .limits import Limits

    if not os.path.exists(input) and input != "-":
        raise SplatcodecError(f"{input}: no such file")
    facts = api.info(read_gsplat(input, Limits.for_decode(max_pixels=None)), coded_bits=not header_only,
                     priors=_load_priors(priors_path))
    if as_json:
        click.echo(json.dumps(facts.to_dict(), indent=2))
        return
    click.echo(f"file:        {input}")
    click.echo(f"version:     {facts.version}")
    click.echo(f"size:        {facts.width}x{facts.height}, {facts.channels} channel(s)")
    click.echo(f"gaussians:   {facts.num_gaussians} in {len(facts.progressive_groups)} progressive group(s) "
               f"{facts.progressive_groups}")
    click.echo(f"bytes:       {facts.bytes} ({facts.bpp:.4f} bpp)")
    click.echo("bit depths:  " + ", ".join(f"{k} {v}" for k, v in facts.bit_depths.items()))
    if facts.bits_per_gaussian is not None:
        total = sum(facts.bits_per_gaussian.values())
        click.echo(f"bits per Gaussian: {total:.2f} = " +
                   ", ".join(f"{k} {v:.2f}" for k, v in facts.bits_per_gaussian.items()))
    if facts.metadata_keys:
        click.echo("metadata:    " + ", ".join(facts.metadata_keys))


@main.group()
def bench() -> None:
    """Benchmarks (need a source checkout: they live in benchmarks/, not in the installed package)."""


@bench.command("rd", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                       "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_rd(args: tuple[str, ...]) -> None:
    """Rate-distortion benchmark against JPEG/WebP/AVIF/JPEG XL: python -m benchmarks.rd (its --help
    lists the options)."""
    sys.exit(_benchmark_module("rd").main(list(args)))


def _benchmark_module(name: str) -> Any:
    """``benchmarks.<name>`` of the source checkout this package runs from (benchmarks are not installed)."""
    import importlib

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__init__.py").is_file():
        raise click.ClickException(f"benchmarks not found beside {root / 'splatcodec'}: they ship with the source "
                                   "tree, not the installed package; run from a checkout (pip install -e .)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"benchmarks.{name}")


from .datasets.cli import encode_dataset as _encode_dataset  # noqa: E402  (light: heavy imports are lazy)

main.add_command(_encode_dataset)

try:  # `splatcodec clip ...`: GS-CLIP; torch is imported only when one of its commands runs
    from .clip.cli import clip as _clip
except ImportError as _missing:  # the extra is not installed: the command says how to get it
    _clip = click.Command("clip", help=f"GS-CLIP (unavailable: {_missing})", callback=lambda m=str(_missing): fail(m, 1),
                          context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
main.add_command(_clip)

from .priors_cli import train_priors  # noqa: E402  (its own module; heavy imports stay lazy)

main.add_command(train_priors)


if __name__ == "__main__":  # pragma: no cover
    main()
