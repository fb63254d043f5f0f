"""A whole dataset run: plan the shards, skip finished ones, run an engine, write the run summary."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..codec.batch import available_cores
from ..codec.container import DEFAULT_MAX_PIXELS
from ..codec.priors import load as load_priors
from ..errors import InvalidInputError
from .engines import Outcome, import_ray, run_local, run_ray
from .layout import SUMMARY_NAME, Job, locked, plan, remove_partials, split_done
from .progress import Progress
from .shard import _encode_option_names, priors_sha256, stats_path

ENGINES = ("local", "ray")


def _read_stats(job: Job) -> dict[str, Any] | None:
    try:
        return json.loads(stats_path(job.output).read_text())
    except (OSError, ValueError):
        return None


def _totals(stats: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("count", "successes", "failed", "bytes_in", "bytes_out", "resized")
    out: dict[str, Any] = {k: sum(int(s.get(k) or 0) for s in stats) for k in keys}
    ok = out["successes"]
    for name in ("mean_bpp", "mean_psnr"):  # weighted by each shard's successes
        weighted = sum((s.get(name) or 0.0) * (s.get("successes") or 0) for s in stats)
        out[name] = weighted / ok if ok else None
    return out


def encode_dataset(input: str, output: str, *, engine: str = "local", workers: int | None = None,
                   threads: int = 0, address: str | None = "local", ray_cpus: int | None = None,
                   task_cpus: int = 1, max_in_flight: int | None = None, shard_size: int = 1000,
                   keep: bool = False, resize_longest: int | None = None,
                   max_pixels: int | None = DEFAULT_MAX_PIXELS, max_retries: int = 2, progress: bool = True,
                   log_every: float = 30.0, **encode_options: Any) -> dict[str, Any]:
    """Encode a dataset into WebDataset shards of ``.gsplat`` samples; returns the run summary (also
    written to ``OUTPUT/_summary.json``). See docs/datasets.md.

    Args:
        input: a folder of ``*.tar`` shards (img2dataset / DataComp layout), one ``.tar``, or a folder
            of images (searched recursively, cut into shards of ``shard_size``).
        output: the output folder: one shard per input shard with the same name, each with its
            ``_stats.json``. Finished shards are skipped, so a rerun resumes.
        engine: ``"local"`` (a process pool over shards) or ``"ray"``.
        workers, threads: local engine: worker processes (default: one per core, at most one per
            shard) and total threads (0: all cores); each worker gets ``threads // workers``.
        address, ray_cpus, task_cpus, max_in_flight: Ray engine: cluster address (``"local"``: start
            one with ``ray_cpus`` CPUs), CPUs (threads) per shard task, tasks in flight at most.
        keep, resize_longest, max_pixels: see :func:`~splatcodec.datasets.encode_shard`.
        max_retries: retries of a shard whose worker process died.
        encode_options: :func:`splatcodec.encode` options (quality, target_bpp, num_gaussians, effort,
            priors: dataset priors from ``splatcodec train-priors``, a path, bytes or ``Priors``, loaded
            once here and sent to every worker; the stats and summary record their SHA-256).
    """
    if engine not in ENGINES:
        raise InvalidInputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    unknown = set(encode_options) - _encode_option_names()
    if unknown:
        raise InvalidInputError(f"unknown encode option(s): {', '.join(sorted(unknown))}")
    if engine == "ray":
        import_ray()  # fail before anything is written when Ray is missing
    recorded = dict(encode_options)
    if encode_options.get("priors") is not None:  # a bad file fails here, before anything is written
        priors = load_priors(encode_options["priors"])
        encode_options["priors"] = priors.to_bytes()  # what travels to every worker / task (29 KB)
        recorded["priors"] = priors_sha256(priors)
    jobs = plan(input, output, shard_size=shard_size)
    cores = threads or available_cores()
    with locked(output):
        remove_partials(output)
        todo, skipped = split_done(jobs)
        base = {"keep": keep, "resize_longest": resize_longest, "max_pixels": max_pixels, **encode_options}
        shown = {**base, **recorded}  # the options as the summary records them (priors by their hash)
        _refuse_other_options(output, skipped, shown)
        known = [job.images for job in todo]
        bar = Progress(len(todo), sum(known) if None not in known else None, enabled=progress, log_every=log_every)
        if skipped:
            bar.message(f"{len(skipped)} of {len(jobs)} shards are already done in {output}; skipping them")
        outcomes: dict[str, Outcome] = {}

        def on_outcome(job: Job, outcome: Outcome) -> None:
            outcomes[job.name] = outcome
            if outcome["ok"]:
                stats = outcome["stats"]
                bar.shard_finished(stats["count"], stats["failed"])
            else:
                bar.shard_finished(outcome.get("images", 0), 0, ok=False)
                bar.message(f"{job.name}: FAILED: {outcome['error']}")

        start = time.perf_counter()
        startup = 0.0
        interrupted = False
        setup: dict[str, Any] = {"engine": engine}
        try:
            if engine == "local" and todo:
                workers = max(1, min(workers or cores, len(todo)))
                setup.update(workers=workers, threads_per_worker=max(1, cores // workers))
                run_local(todo, {**base, "threads": setup["threads_per_worker"]}, workers=workers,
                          on_outcome=on_outcome, progress=bar, max_retries=max_retries)
            elif engine == "ray" and todo:
                setup.update(address=address, task_cpus=task_cpus)
                startup = run_ray(todo, {**base, "threads": task_cpus}, address=address, on_outcome=on_outcome,
                                  progress=bar, cpus=ray_cpus, task_cpus=task_cpus, max_retries=max_retries,
                                  max_in_flight=max_in_flight)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            bar.close()
            summary = _summary(input, output, jobs, skipped, outcomes, shown, setup, time.perf_counter() - start,
                               startup, interrupted)
            _write_json(Path(output) / SUMMARY_NAME, summary)
    return summary


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _refuse_other_options(output: str, done: list[Job], options: dict[str, Any]) -> None:
    """A rerun resumes a run: finished shards written with other codec options would make one
    dataset of two encodings, so that is refused (shards whose stats record no options pass)."""
    want = _as_json(options)
    for job in done:
        had = (_read_stats(job) or {}).get("options")
        if had is None or _as_json(had) == want:
            continue
        changes = ", ".join(f"{k} {had.get(k)!r} -> {want.get(k)!r}" for k in sorted(set(had) | set(want))
                            if had.get(k) != want.get(k))
        raise InvalidInputError(f"{output} holds finished shards encoded with other options ({job.name}: "
                                f"{changes}); encode into a new folder, or delete those shards to re-encode them")


def _summary(input: str, output: str, jobs: list[Job], skipped: list[Job], outcomes: dict[str, Outcome],
             options: dict[str, Any], setup: dict[str, Any], seconds: float, startup: float,
             interrupted: bool) -> dict[str, Any]:
    now = [o["stats"] for o in outcomes.values() if o["ok"]]
    complete = now + [s for s in map(_read_stats, skipped) if s is not None]
    failed = [{"name": name, "error": o["error"]} for name, o in outcomes.items() if not o["ok"]]
    run = _totals(now)
    return {
        "input": str(input), "output": str(output), **setup, "options": options,
        "shards": {"total": len(jobs), "encoded_now": len(now), "skipped_done": len(skipped),
                   "failed": len(failed), "not_done": len(jobs) - len(complete)},
        "failed_shards": failed,
        "this_run": {**run, "seconds": round(seconds, 3), "startup_seconds": round(startup, 3),
                     "images_per_second": round(run["count"] / seconds, 4) if seconds > 0 else None,
                     "interrupted": interrupted},
        "dataset": _totals(complete),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from ..fileio import atomic_write

    atomic_write(path, (json.dumps(data, indent=1, default=str) + "\n").encode())
