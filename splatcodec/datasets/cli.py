"""``splatcodec encode-dataset IN OUT``: registered on the ``splatcodec`` command group by splatcodec/cli.py."""
from __future__ import annotations

import signal
import sys
from typing import Any

import click

from ..codec.container import DEFAULT_MAX_PIXELS


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: stop the workers, remove temporary files, keep finished shards."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


@click.command("encode-dataset")
@click.argument("input", type=click.Path(exists=True))
@click.argument("output", type=click.Path(file_okay=False))
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a process pool on this machine; ray: Ray tasks on a cluster (pip install 'splatcodec[ray]').")
@click.option("--workers", type=click.IntRange(min=1), help="local: worker processes [one per core, <= shards].")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="local: total threads, split over the workers (0 = all cores).")
@click.option("--address", default="local", show_default=True, help="ray: cluster address, or local to start one.")
@click.option("--ray-cpus", type=click.IntRange(min=1), help="ray, --address local: CPUs of the local Ray [all].")
@click.option("--task-cpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="ray: CPUs (threads) per shard task.")
@click.option("--max-in-flight", type=click.IntRange(min=1), help="ray: shard tasks in flight [2 x CPUs / task-cpus].")
@click.option("--shard-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples per output shard for a folder of images.")
@click.option("--keep", is_flag=True, help="Keep each image entry beside its .gsplat.")
@click.option("--resize-longest", type=click.IntRange(min=1), help="Downscale images whose longer side is larger.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse (as a failed sample) larger input images.")
@click.option("-q", "--quality", type=click.FloatRange(0, 100), help="0..100, higher = bigger and better [75].")
@click.option("--target-bpp", type=click.FloatRange(min=0, min_open=True), help="Aim at this many bits per pixel.")
@click.option("--target-psnr", type=click.FloatRange(min=0, min_open=True), help="Aim at this PSNR in dB.")
@click.option("--gaussians", type=click.IntRange(min=1), help="Use exactly this many Gaussians per image.")
@click.option("-e", "--effort", type=click.IntRange(1, 9), default=4, show_default=True,
              help="Time spent fitting, 1 (fast) .. 9 (slow, better).")
@click.option("--levels", type=click.IntRange(1, 64),
              help="Progressive groups [default: 1 for images of at most 512x512 pixels, else 4].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--priors", "priors_path", metavar="FILE",
              help="Dataset priors from `splatcodec train-priors` for every image (decoding needs the same FILE).")
@click.option("--max-retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries of a shard whose worker process died.")
@click.option("--log-every", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds between progress lines when stderr is not a terminal.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def encode_dataset(input: str, output: str, engine: str, workers: int | None, threads: int, address: str,
                   ray_cpus: int | None, task_cpus: int, max_in_flight: int | None, shard_size: int, keep: bool,
                   resize_longest: int | None, max_pixels: int, quality: float | None, target_bpp: float | None,
                   target_psnr: float | None, gaussians: int | None, effort: int, levels: int | None, seed: int,
                   priors_path: str | None, max_retries: int, log_every: float, quiet: bool) -> None:
    """Encode a dataset to WebDataset shards of .gsplat samples.

    INPUT is a folder of .tar shards (img2dataset / DataComp layout), one .tar, or a folder of images
    (recursively; cut into shards of --shard-size). OUTPUT gets one shard per input shard with the
    same name, each with a _stats.json, and a _summary.json of the run. Finished shards are skipped,
    so rerunning resumes; failed images are listed in the stats and never stop the run.
    """
    from . import encode_dataset as run

    if sum(x is not None for x in (quality, target_bpp, target_psnr, gaussians)) > 1 and \
            not (quality is not None and gaussians is not None and target_bpp is None and target_psnr is None):
        raise click.UsageError("choose one of --quality, --target-bpp, --target-psnr (--gaussians may go with -q)")
    options = {k: v for k, v in dict(quality=quality, target_bpp=target_bpp, target_psnr=target_psnr,
                                     num_gaussians=gaussians, priors=priors_path, levels=levels).items() if v is not None}
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        summary = run(input, output, engine=engine, workers=workers, threads=threads, address=address,
                      ray_cpus=ray_cpus, task_cpus=task_cpus, max_in_flight=max_in_flight, shard_size=shard_size,
                      keep=keep, resize_longest=resize_longest, max_pixels=max_pixels, max_retries=max_retries,
                      progress=not quiet, log_every=log_every, effort=effort, seed=seed, **options)
    except KeyboardInterrupt as exc:
        click.echo(f"splatcodec: {'terminated' if isinstance(exc, _Terminated) else 'interrupted'}: finished "
                   "shards are kept; run the same command again to resume", err=True)
        sys.exit(143 if isinstance(exc, _Terminated) else 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    shards, run_ = summary["shards"], summary["this_run"]
    if not quiet:
        bpp = f"{run_['mean_bpp']:.3f} bpp, " if run_["mean_bpp"] is not None else ""
        psnr = f"{run_['mean_psnr']:.2f} dB, " if run_["mean_psnr"] is not None else ""
        click.echo(f"{shards['encoded_now']} shards encoded, {shards['skipped_done']} already done, "
                   f"{shards['failed']} failed; {run_['successes']} images encoded, {run_['failed']} failed; "
                   f"{bpp}{psnr}{run_['images_per_second'] or 0:.2f} img/s; summary in {output}/_summary.json",
                   err=True)
    if shards["failed"]:
        raise click.ClickException(f"{shards['failed']} shard(s) failed: "
                                   + "; ".join(f"{f['name']}: {f['error']}" for f in summary["failed_shards"][:3]))
