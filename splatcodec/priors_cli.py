"""``splatcodec train-priors``: learn dataset priors for .gsplat 1.1 files (like a zstd dictionary).

Registered on the ``splatcodec`` click group by ``cli.py``. Inputs are image files, directories of
images, or tar shards (e.g. webdataset) whose image members are used.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Iterator

import click

from .errors import SplatcodecError

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm", ".pnm"}


def iter_images(inputs: tuple[str, ...], limit: int | None = None) -> Iterator:
    """Pixel arrays from image files, directories (sorted, not recursive) and tar shards, in order."""
    from .image_io import read_image

    count = 0
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES]
        elif path.is_file() and path.suffix.lower() == ".tar":
            sources = [path]
        elif path.is_file():
            sources = [path]
        else:
            raise SplatcodecError(f"{item}: no such file or directory")
        for source in sources:
            if source.suffix.lower() == ".tar":
                try:
                    with tarfile.open(source) as tar:
                        for member in tar:
                            if member.isfile() and Path(member.name).suffix.lower() in _IMAGE_SUFFIXES:
                                fh = tar.extractfile(member)
                                if fh is None:
                                    continue
                                yield read_image(fh.read())[0]
                                count += 1
                                if limit and count >= limit:
                                    return
                except tarfile.TarError as exc:
                    raise SplatcodecError(f"{source}: not a readable tar shard ({exc})") from None
                continue
            yield read_image(source)[0]
            count += 1
            if limit and count >= limit:
                return


@click.command("train-priors")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="priors file to write (e.g. priors.bin)")
@click.option("-q", "--quality", type=click.FloatRange(0, 100), default=75, show_default=True)
@click.option("-g", "--gaussians", type=click.IntRange(1), default=None, help="Gaussians per image")
@click.option("-e", "--effort", type=click.IntRange(1, 9), default=4, show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="use at most this many images")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True)
@click.option("-f", "--force", is_flag=True, help="overwrite the output")
def train_priors(inputs: tuple[str, ...], output: str, quality: float, gaussians: int | None, effort: int,
                 limit: int | None, threads: int, force: bool) -> None:
    """Learn entropy models from IMAGES|DIRS|SHARDS for `encode(..., priors=FILE)` (format 1.1).

    Files encoded with the priors name them by id and can only be decoded with the same file.
    Use the same quality / Gaussian count as the encodes that will use them.
    """
    from .fileio import atomic_write
    from .codec.priors_train import train_from_images

    if os.path.exists(output) and not force:
        raise SplatcodecError(f"{output} exists (use --force to overwrite)")
    priors, summary = train_from_images(iter_images(inputs, limit), quality=quality, num_gaussians=gaussians,
                                        effort=effort, threads=threads)
    atomic_write(output, priors.to_bytes())
    click.echo(f"{output}: priors {summary['id']} from {summary['images']} images ({summary['gaussians']} Gaussians"
               f"{', %d skipped: too large' % summary['skipped'] if summary['skipped'] else ''}); coded Gaussians "
               f"on these images: {summary['builtin_bytes_per_image']:.1f} -> "
               f"{summary['dataset_bytes_per_image']:.1f} bytes per image (in-sample)")
