"""Engines: run :func:`~splatcodec.datasets.shard.encode_shard` over many shards.

``local``: a ``ProcessPoolExecutor`` (spawn start: forking a process that has run OpenMP is unsafe) with
one shard per worker process; ``max_tasks_per_child`` is not used (it hangs on Python 3.11). A worker
that dies (killed, out of memory, a crash in native code) breaks the pool: it is rebuilt and the
shards that were running are queued again; the shard whose worker died is charged an attempt (all of
them when that cannot be told) and is failed after ``max_retries`` retries, so one poisonous shard
never stops the run. ``ray``: the same function as Ray tasks (``num_cpus``, ``max_retries``) with a
bounded number in flight (``ray.wait``), on an existing cluster or a local one.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from ..errors import SplatcodecError
from ._wds import OWNED_PROCESS_ENV, MissingDependencyError
from .layout import Job
from .progress import Progress
from .shard import encode_shard, partial_paths

Outcome = dict[str, Any]
OnOutcome = Callable[[Job, Outcome], None]

# Shared with the local engine's workers (set by _init_worker): per job, samples done and worker pid.
_COUNTS: Any = None
_PIDS: Any = None


def run_job(job: Job, options: dict[str, Any], owned: bool = False) -> Outcome:
    """Runs one job; never raises for a bad shard: ``{"ok": True, "stats": ...}`` or ``{"ok": False,
    "error": ...}``. ``owned``: this process belongs to the engine (webdataset is imported without torch)."""
    if owned:
        os.environ[OWNED_PROCESS_ENV] = "1"
    if _PIDS is not None:
        _PIDS[job.index] = os.getpid()
    done = 0

    def on_sample(ok: bool) -> None:
        nonlocal done
        done += 1
        if _COUNTS is not None:
            _COUNTS[job.index] = done

    try:
        return {"ok": True, "stats": encode_shard(job.source, job.output, on_sample=on_sample, **options)}
    except SplatcodecError as exc:
        return {"ok": False, "error": str(exc), "images": done}
    except Exception as exc:  # a bug must not stop the other shards; it is reported with its type
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "images": done}


def _init_worker(counts: Any, pids: Any) -> None:
    global _COUNTS, _PIDS
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops us
    os.environ[OWNED_PROCESS_ENV] = "1"
    _COUNTS, _PIDS = counts, pids


def _remove_partials(job: Job) -> None:
    for path in partial_paths(job.output):
        path.unlink(missing_ok=True)


def _failed(error: str) -> Outcome:
    return {"ok": False, "error": error, "images": 0}


def run_local(jobs: list[Job], options: dict[str, Any], *, workers: int, on_outcome: OnOutcome,
              progress: Progress, max_retries: int = 2) -> None:
    """Runs ``jobs`` in ``workers`` processes (each job's options carry its threads)."""
    ctx = multiprocessing.get_context("spawn")
    size = max((job.index for job in jobs), default=0) + 1
    counts, pids = ctx.RawArray("q", size), ctx.RawArray("q", size)
    queue = deque(jobs)
    attempts: Counter[int] = Counter()
    running: dict[Future, Job] = {}
    processes: dict[int, Any] = {}  # pid -> Process of the current pool (for exit codes after a break)
    pool: ProcessPoolExecutor | None = None
    try:
        while queue or running:
            if pool is None:
                pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(counts, pids))
                processes = {}
            while queue and len(running) < workers:  # at most one job per worker: all submitted jobs run
                job = queue.popleft()
                counts[job.index] = pids[job.index] = 0
                running[pool.submit(run_job, job, options)] = job
            processes.update(getattr(pool, "_processes", None) or {})
            finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            broken: list[Job] = []
            for future in finished:
                job = running.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken.append(job)
                    continue
                progress.running_images = sum(counts[j.index] for j in running.values())
                on_outcome(job, outcome)
            if broken:  # every running job fails with the pool: collect them all, then rebuild
                wait(running)
                for future, job in list(running.items()):
                    running.pop(future)
                    try:
                        on_outcome(job, future.result())
                    except BrokenProcessPool:
                        broken.append(job)
                pool.shutdown(wait=True, cancel_futures=True)
                pool = None
                _requeue(broken, _culprits(broken, processes, pids), attempts, queue, max_retries, on_outcome,
                         progress)
            progress.update(sum(counts[job.index] for job in running.values()))
    except BaseException:
        if pool is not None:  # Ctrl-C / SIGTERM: stop the workers now, leave no partial file
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                if process.is_alive():
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
        for job in running.values():
            _remove_partials(job)
        raise


def _culprits(broken: list[Job], processes: dict[int, Any], pids: Any) -> set[int]:
    """Indices of the broken jobs whose own worker died (the pool terminates the others with SIGTERM)."""
    dead = set()
    for pid, process in processes.items():
        process.join(timeout=5)
        code = process.exitcode
        if code is not None and code not in (0, -signal.SIGTERM):
            dead.add(pid)
    return {job.index for job in broken if pids[job.index] in dead}


def _requeue(broken: list[Job], culprits: set[int], attempts: Counter, queue: deque, max_retries: int,
             on_outcome: OnOutcome, progress: Progress) -> None:
    for job in sorted(broken, key=lambda j: j.index, reverse=True):
        _remove_partials(job)
        if not culprits or job.index in culprits:
            attempts[job.index] += 1
        if attempts[job.index] > max_retries:
            on_outcome(job, _failed(f"its worker process died {attempts[job.index]} times"))
        else:
            if job.index in culprits or not culprits:
                progress.message(f"{job.name}: worker process died; retrying "
                                 f"({attempts[job.index]}/{max_retries})")
            queue.appendleft(job)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("--engine ray needs Ray, which is not installed: "
                                     "pip install 'splatcodec[ray]'") from None
    return ray


def run_ray(jobs: list[Job], options: dict[str, Any], *, address: str | None, on_outcome: OnOutcome,
            progress: Progress, cpus: int | None = None, task_cpus: int = 1, max_retries: int = 2,
            max_in_flight: int | None = None) -> float:
    """Runs ``jobs`` as Ray tasks; ``address`` "local" (or None) starts a local Ray with ``cpus`` CPUs
    unless one is already initialised. Returns the seconds spent starting/connecting to Ray."""
    ray = import_ray()
    start = time.perf_counter()
    started_here = not ray.is_initialized()
    if started_here:
        settings = dict(include_dashboard=False, logging_level="WARNING", configure_logging=True)
        if address in (None, "local"):
            ray.init(num_cpus=cpus, **settings)
        else:
            ray.init(address=address, **settings)
    startup = time.perf_counter() - start
    try:
        task = ray.remote(num_cpus=task_cpus, max_retries=max_retries)(run_job)
        if max_in_flight is None:
            max_in_flight = max(1, 2 * int(ray.cluster_resources().get("CPU", 1) // task_cpus))
        queue = deque(jobs)
        running: dict[Any, Job] = {}
        try:
            while queue or running:
                while queue and len(running) < max_in_flight:
                    job = queue.popleft()
                    running[task.remote(job, options, True)] = job
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in ready:
                    job = running.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # worker died max_retries + 1 times, or Ray failed
                        _remove_partials(job)
                        outcome = _failed(f"Ray task failed: {str(exc).splitlines()[0]}")
                    on_outcome(job, outcome)
                progress.update()
        except BaseException:
            for ref, job in running.items():
                ray.cancel(ref, force=True)
                _remove_partials(job)
            raise
    finally:
        if started_here:
            ray.shutdown()
    return startup
